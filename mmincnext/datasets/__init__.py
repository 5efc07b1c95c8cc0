"""Datasets: layout-checked ADE20K and COCO, and the synthetic sets the demos generate on first use.

They need mmsegmentation, mmdet and mmpretrain; configs import this package through ``custom_imports``.
"""
from .ade20k import CheckedADE20KDataset, DatasetLayoutError
from .coco import CheckedCocoDataset
from .synthetic_coco import SyntheticCocoDataset, generate_synthetic_coco
from .synthetic_imagenet import SyntheticImageNet, generate_synthetic_imagenet
from .synthetic_scenes import SyntheticScenesDataset, generate_synthetic_scenes

__all__ = [
    'CheckedADE20KDataset', 'CheckedCocoDataset', 'DatasetLayoutError', 'SyntheticCocoDataset', 'SyntheticImageNet',
    'SyntheticScenesDataset', 'generate_synthetic_coco', 'generate_synthetic_imagenet', 'generate_synthetic_scenes'
]
