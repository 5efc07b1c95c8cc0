"""Segmentation test-time augmentation on mmseg: needs mmsegmentation, so configs import this package through
``custom_imports`` and ``import mmincnext`` does not depend on it."""
from .seg_tta import SingleAndMultiScaleTTAModel

__all__ = ['SingleAndMultiScaleTTAModel']
