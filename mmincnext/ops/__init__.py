"""Fused kernels for the backbone (Triton). Each module imports without Triton and falls back to eager PyTorch."""
from .inception_dwconv import (fused_inception_dwconv_available, inception_dwconv,
                               inception_dwconv_reference)

__all__ = ['fused_inception_dwconv_available', 'inception_dwconv', 'inception_dwconv_reference']
