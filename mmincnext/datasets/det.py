"""The detection datasets (they need mmdet), registered when a config imports this module."""
from .coco import CheckedCocoDataset
from .synthetic_coco import SyntheticCocoDataset, generate_synthetic_coco

__all__ = ['CheckedCocoDataset', 'SyntheticCocoDataset', 'generate_synthetic_coco']
