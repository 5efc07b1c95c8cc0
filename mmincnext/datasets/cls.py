"""The classification datasets (they need mmpretrain), registered when a config imports this module."""
from ..compat import require

require('mmpretrain')  # names both families' distributions if it is missing

from .synthetic_imagenet import SyntheticImageNet, generate_synthetic_imagenet

__all__ = ['SyntheticImageNet', 'generate_synthetic_imagenet']
