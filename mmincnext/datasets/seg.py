"""The segmentation datasets (they need mmsegmentation), registered when a config imports this module."""
from ..compat import require

require('mmseg')  # names both families' distributions if it is missing

from .ade20k import CheckedADE20KDataset, SyntheticScenesDataset
from .synthetic_scenes import generate_synthetic_scenes

__all__ = ['CheckedADE20KDataset', 'SyntheticScenesDataset', 'generate_synthetic_scenes']
