"""The detection datasets (they need mmdet), registered when a config imports this module."""
from ..compat import require

require('mmdet')  # names both families' distributions if it is missing

from .coco import CheckedCocoDataset
from .synthetic_coco import SyntheticCocoDataset, generate_synthetic_coco

__all__ = ['CheckedCocoDataset', 'SyntheticCocoDataset', 'generate_synthetic_coco']
