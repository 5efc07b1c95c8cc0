"""Device-specific implementations of the paper's modules, and the one place that picks them.

Each fast path is a drop-in subclass: the same parameters under the same names (so checkpoints load either way), the
same function, another op sequence. The backbone picks its classes once, at construction, through
:func:`select_block` and :func:`select_token_mixer`; nothing is re-decided per forward.

- :class:`GemmMetaNeXtBlock` (``fast_path='gemm'``; ``'auto'`` on CPU): the MLP as two GEMMs over a channels-last
  view. On CPU a GEMM (``F.linear``) is faster than oneDNN's 1x1 convolution, forward and backward, and the
  channels-last view costs no copy (docs/speed.md has the measurements).
- :class:`FusedInceptionDWConv2d` (``fused_mixer=True`` or ``MMINCNEXT_FUSED_MIXER=1``): the Inception depthwise
  mixer as one Triton kernel on CUDA (:mod:`mmincnext.ops.inception_dwconv`, beside its eager reference). Off
  unless asked for (:data:`FUSED_MIXER_DEFAULT`).
"""
import os
import warnings
from typing import Optional

import torch
import torch.nn.functional as F
from mmengine.registry import MODELS

from ...compat import TRITON_OP, TRITON_OP_TORCH, get_autocast_dtype, is_autocast_enabled, torch_requirement
from .metanext_block import MetaNeXtBlock
from .token_mixers import InceptionDWConv2d

FAST_PATHS = ('auto', 'gemm', 'reference')
FUSED_MIXER_DEFAULT = False
FUSED_MIXER_ENV = 'MMINCNEXT_FUSED_MIXER'


class GemmMetaNeXtBlock(MetaNeXtBlock):
    """:class:`MetaNeXtBlock` with its MLP as GEMMs over a channels-last view (the CPU fast path).

    ``fc1``/``fc2`` stay 1x1 convs, so their weights keep the released shapes; they run as ``F.linear`` on the
    (N, H, W, C) view of a channels-last tensor. In float32 the layer scale is folded into fc2's weight (one
    activation-sized multiply and its backward saved per block; never under autocast, where the product would be
    rounded to the half type: float16 turns 0.02 x 1e-6 into 0). When autograd is not recording, GELU and the
    residual add run in place: no second hidden-sized buffer to allocate and fault in, which on CPU costs more than
    the GELU itself.
    """

    channels_last = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fc1, fc2 = self.mlp.fc1, self.mlp.fc2
        weight, bias, gamma = fc2.weight.flatten(1), fc2.bias, self.gamma
        if gamma is not None and not is_autocast_enabled(x.device.type) and x.dtype in (torch.float32,
                                                                                         torch.float64):
            weight, bias, gamma = weight * gamma[:, None], bias * gamma, None
        y = self.norm(self.token_mixer(x)).permute(0, 2, 3, 1)
        y = F.linear(y, fc1.weight.flatten(1), fc1.bias)
        y = F.gelu(y) if torch.is_grad_enabled() else torch.ops.aten.gelu_(y)
        y = F.linear(y, weight, bias)
        if gamma is not None:
            y = y * gamma
        elif self.layer_scale_folded:
            y = y.to(torch.promote_types(y.dtype, fc2.weight.dtype))
        y = self.drop_path(y.permute(0, 3, 1, 2))
        # In place only where the branch already has the sum's dtype: the residual stream is never rounded to a half
        # type that timm's out-of-place ``x + branch`` would not round to.
        if not torch.is_grad_enabled() and y.dtype == torch.promote_types(y.dtype, x.dtype):
            return y.add_(x)
        return y + x


@MODELS.register_module()
class FusedInceptionDWConv2d(InceptionDWConv2d):
    """:class:`InceptionDWConv2d` (the paper's: all three branches, in parallel) as one Triton kernel on CUDA inputs:
    each tile read once and the whole output written once, instead of a split, three convolutions and a
    concatenation. CPU inputs, ONNX export and machines without Triton run the eager formula (the op falls back by
    itself). Same parameters, same function."""

    def __init__(self, channels: int, square_kernel_size: int = 3, band_kernel_size: int = 11,
                 branch_ratio: float = 0.125, **kwargs):
        super().__init__(channels, square_kernel_size, band_kernel_size, branch_ratio, **kwargs)
        if self.branches != self.BRANCHES or self.bands != 'parallel':
            raise ValueError('FusedInceptionDWConv2d runs the paper\'s mixer (branches=("hw", "w", "h"), bands='
                             f'"parallel"), got branches={self.branches!r}, bands={self.bands!r}')
        from ...ops import inception_dwconv  # imports Triton: only where the fused mixer is asked for
        self._op = inception_dwconv
        # Set by the block's switch_to_deploy once fc1 directly follows (its BN folded): under autocast the kernel
        # then writes the dtype fc1 casts its input to, instead of float32 that fc1 would cast (the same values).
        self.writes_autocast_dtype = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out_dtype = None
        if self.writes_autocast_dtype and is_autocast_enabled(x.device.type):
            out_dtype = get_autocast_dtype(x.device.type)
        return self._op(x, self.dwconv_hw.weight, self.dwconv_hw.bias, self.dwconv_w.weight, self.dwconv_w.bias,
                        self.dwconv_h.weight, self.dwconv_h.bias, out_dtype=out_dtype)


def default_device() -> str:
    """The device a model built now will run on, as mmengine's Runner decides it (``mmengine.device.get_device``)."""
    from mmengine.device import get_device
    return get_device()


def select_block(fast_path: str, device: Optional[str] = None) -> type:
    """The block class for ``fast_path``: ``'gemm'`` :class:`GemmMetaNeXtBlock`, ``'reference'`` timm's op sequence
    (:class:`MetaNeXtBlock`), ``'auto'`` the GEMM path where the model will run on a CPU (``device``, default
    :func:`default_device`) and the reference elsewhere: on CUDA the 1x1 convolutions run on cuDNN, at the
    precision its TF32 flag allows, in the input's memory format."""
    if fast_path not in FAST_PATHS:
        raise ValueError(f'fast_path must be one of {FAST_PATHS}, got {fast_path!r}')
    if fast_path == 'auto':
        fast_path = 'gemm' if (device or default_device()) == 'cpu' else 'reference'
    return GemmMetaNeXtBlock if fast_path == 'gemm' else MetaNeXtBlock


def resolve_fused_mixer(fused_mixer: Optional[bool]) -> bool:
    """True/False as given; None takes ``MMINCNEXT_FUSED_MIXER`` (1/0) from the environment, else
    :data:`FUSED_MIXER_DEFAULT`."""
    if fused_mixer is not None:
        return bool(fused_mixer)
    value = os.environ.get(FUSED_MIXER_ENV, '').strip().lower()
    if value in ('', 'auto'):
        return FUSED_MIXER_DEFAULT
    if value not in ('0', '1', 'false', 'true', 'off', 'on'):
        raise ValueError(f'{FUSED_MIXER_ENV}={value!r}: use 1 (fused Triton mixer on CUDA) or 0 (eager)')
    return value in ('1', 'true', 'on')


def select_token_mixer(token_mixer: dict, fused_mixer: Optional[bool]) -> dict:
    """``token_mixer`` with the paper's Inception mixer swapped for :class:`FusedInceptionDWConv2d` where the fused
    mixer is on (:func:`resolve_fused_mixer`) and this torch can run it; other mixers (the ablation's variants
    included) are returned as they are."""
    paper_mixer = token_mixer.get('type') in ('InceptionDWConv2d', InceptionDWConv2d) and tuple(
        token_mixer.get('branches', InceptionDWConv2d.BRANCHES)) == InceptionDWConv2d.BRANCHES and token_mixer.get(
            'bands', 'parallel') == 'parallel'
    if not paper_mixer or not resolve_fused_mixer(fused_mixer):  # the kernel runs the paper's mixer only
        return token_mixer
    if not TRITON_OP:
        warnings.warn(torch_requirement(*TRITON_OP_TORCH, 'fused_mixer (the fused Triton mixer)') +
                      ': the eager mixer runs instead')
        return token_mixer
    return dict(token_mixer, type=FusedInceptionDWConv2d)
