"""Fused kernels for the backbone (Triton). Each module imports without Triton (and on a torch too old for its
``torch.library`` op) and falls back to eager PyTorch."""
from .inception_dwconv import (fused_inception_dwconv_available, fused_inception_dwconv_unavailable_reason,
                               inception_dwconv, inception_dwconv_reference)

__all__ = [
    'fused_inception_dwconv_available', 'fused_inception_dwconv_unavailable_reason', 'inception_dwconv',
    'inception_dwconv_reference'
]
