"""Datasets (need mmsegmentation; configs import this package through ``custom_imports``)."""
from .ade20k import CheckedADE20KDataset, DatasetLayoutError
from .synthetic_scenes import SyntheticScenesDataset, generate_synthetic_scenes
from .coco import CheckedCocoDataset
from .synthetic_coco import SyntheticCocoDataset, generate_synthetic_coco

__all__ = ['CheckedADE20KDataset', 'DatasetLayoutError', 'SyntheticScenesDataset', 'generate_synthetic_scenes']
__all__ += ['CheckedCocoDataset', 'SyntheticCocoDataset', 'generate_synthetic_coco']
from .synthetic_imagenet import SyntheticImageNet, generate_synthetic_imagenet
__all__ += ['SyntheticImageNet', 'generate_synthetic_imagenet']
