"""Device-specific implementations of the paper's modules, and the one place that picks them.

Each fast path is a drop-in subclass: the same parameters under the same names (so checkpoints load either way), the
same function, another op sequence. The backbone picks its classes once, at construction, through
:func:`select_block` and :func:`select_token_mixer`; nothing is re-decided per forward.

- :class:`OneDNNMetaNeXtBlock` (``fast_path='onednn'``; ``'auto'`` on CPU where PyTorch has oneDNN's fused linear
  ops): CPU inference with the MLP's biases, GELU and residual inside oneDNN's GEMMs, the MLP over slices of tokens.
- :class:`GemmMetaNeXtBlock` (``fast_path='gemm'``; ``'auto'`` on CPU without them): the MLP as two GEMMs over a
  channels-last view. On CPU a GEMM (``F.linear``) is faster than oneDNN's 1x1 convolution, forward and backward, and
  the channels-last view costs no copy (docs/speed.md has the measurements).
- :class:`FusedResidualMetaNeXtBlock` (``fast_path='fused_residual'``): timm's op sequence with the residual, layer
  scale and drop path as one op (a switch the GPU check times against the CUDA default).
- :class:`FusedInceptionDWConv2d` (``fused_mixer=True`` or ``MMINCNEXT_FUSED_MIXER=1``): the Inception depthwise
  mixer as one Triton kernel on CUDA (:mod:`mmincnext.ops.inception_dwconv`, beside its eager reference). Off
  unless asked for (:data:`FUSED_MIXER_DEFAULT`).
"""
import os
import warnings
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.registry import MODELS

from ...compat import (ONEDNN_LINEAR_POINTWISE, TRITON_OP, TRITON_OP_TORCH, get_autocast_dtype, is_autocast_enabled,
                       is_compiling, onednn_linear_dtypes, torch_requirement)
from .metanext_block import MetaNeXtBlock
from .token_mixers import InceptionDWConv2d

FAST_PATHS = ('auto', 'onednn', 'gemm', 'fused_residual', 'reference')
FUSED_MIXER_DEFAULT = False
FUSED_MIXER_ENV = 'MMINCNEXT_FUSED_MIXER'


def add_scaled_branch(shortcut: torch.Tensor, branch: torch.Tensor, gamma: Optional[torch.Tensor],
                      drop_path: nn.Module, branch_dtype: torch.dtype) -> torch.Tensor:
    """``shortcut + drop_path(branch * gamma)`` as one ``torch.addcmul``: the layer scale and, in training, drop
    path's per-sample mask (scaled by 1 / keep probability) folded into one (N, C, 1, 1) factor, instead of a
    multiply, a drop-path multiply and an add, each a pass over the activation.

    ``branch_dtype`` is the dtype of ``branch * gamma`` in the reference, the dtype mmcv's ``DropPath`` draws its
    random numbers in: the same call, so the same samples are dropped and a training run reproduces either way.
    ``gamma`` None (no layer scale, or folded into fc2) scales by the mask alone."""
    scale = None if gamma is None else gamma.view(-1, 1, 1)
    drop_prob = getattr(drop_path, 'drop_prob', 0.)
    if drop_path.training and drop_prob > 0:
        keep = 1 - drop_prob
        # mmcv's drop_path: floor(keep + U[0, 1)) per sample, the branch divided by keep
        mask = torch.rand((branch.shape[0], 1, 1, 1), dtype=branch_dtype, device=branch.device)
        mask = mask.add_(keep).floor_().div_(keep)
        scale = mask if scale is None else scale * mask
    if scale is None:  # a folded layer scale still gives the branch fc2's dtype, as in the reference
        return shortcut + branch.to(branch_dtype)
    return torch.addcmul(shortcut, branch, scale)


class FusedResidualMetaNeXtBlock(MetaNeXtBlock):
    """:class:`MetaNeXtBlock` (timm's op sequence) with the residual, the layer scale and drop path as one op
    (:func:`add_scaled_branch`, ``fast_path='fused_residual'``): one activation-sized pass instead of two or three,
    forward and backward. The same numbers up to rounding order (the product is not rounded before the sum)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch = self.mlp(self.norm(self.token_mixer(x)))
        gamma = self.gamma
        scale_dtype = gamma.dtype if gamma is not None else (
            self.mlp.fc2.weight.dtype if self.layer_scale_folded else branch.dtype)
        return add_scaled_branch(x, branch, gamma, self.drop_path, torch.promote_types(branch.dtype, scale_dtype))


class GemmMetaNeXtBlock(MetaNeXtBlock):
    """:class:`MetaNeXtBlock` with its MLP as GEMMs over a channels-last view (the CPU fast path).

    ``fc1``/``fc2`` stay 1x1 convs, so their weights keep the released shapes; they run as ``F.linear`` on the
    (tokens, C) view of a channels-last tensor, which is ``addmm`` with a 1-D bias: on CUDA, PyTorch runs that as one
    cuBLASLt GEMM with the bias added in its epilogue (unless ``DISABLE_ADDMM_CUDA_LT=1``); on CPU, ``addmm`` first
    copies the broadcast bias into its output. In float32 the layer scale is folded into fc2's weight (one
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
        shape = y.shape
        y = F.linear(y.reshape(-1, shape[-1]), fc1.weight.flatten(1), fc1.bias)  # 2-D: addmm on every torch
        y = F.gelu(y) if torch.is_grad_enabled() else torch.ops.aten.gelu_(y)
        y = F.linear(y, weight, bias).view(*shape[:-1], -1)
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


class OneDNNMetaNeXtBlock(GemmMetaNeXtBlock):
    """:class:`GemmMetaNeXtBlock` whose inference runs the MLP through oneDNN's fused linear ops (the CPU fast path
    where PyTorch has them, ``fast_path='onednn'``; ``'auto'`` on CPU).

    fc1 is one oneDNN GEMM with its bias and the (exact, erf) GELU applied to the accumulators, fc2 one with its bias
    and the residual added the same way (``torch.ops.mkldnn._linear_pointwise``), instead of ``addmm`` copying each
    broadcast bias into its output and GELU and the residual as separate passes. The MLP runs over the tokens in
    slices whose hidden activation stays within :attr:`hidden_slice_bytes`: glibc's malloc serves allocations above
    32 MiB with fresh pages from the kernel, zero-filled at their first touch on every forward (InceptionNeXt-T's
    stage-1 hidden activation is 38.5 MB in bfloat16 at batch 16), and reuses smaller ones.

    Under autocast the GEMMs run in the autocast dtype and the residual stream keeps timm's dtype (the branch,
    times the layer scale, is added in float32); in float32 the layer scale is folded into fc2 as in the parent.
    Training (autograd recording: these ops have no autograd formula), tracing (ONNX export, complexity counts),
    ``torch.compile`` (inductor fuses the parent's formula itself), tensors off the CPU and dtypes oneDNN does not
    run natively here (:func:`~mmincnext.compat.onednn_linear_dtypes`) take the parent's path.
    """

    # The largest hidden activation one slice of the MLP allocates (see the class docstring).
    hidden_slice_bytes = 8 * 2**20

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if is_compiling() or torch.jit.is_tracing() or torch.is_grad_enabled() or x.device.type != 'cpu':
            return super().forward(x)
        autocast = is_autocast_enabled(x.device.type)
        dtype = get_autocast_dtype(x.device.type) if autocast else x.dtype
        if dtype not in onednn_linear_dtypes():
            return super().forward(x)
        fc1, fc2 = self.mlp.fc1, self.mlp.fc2
        w2, b2, gamma = fc2.weight.flatten(1), fc2.bias, self.gamma
        # timm's stream dtype: the branch (the GEMM's dtype) times gamma (or cast to fc2's dtype where gamma is
        # folded into it), plus the input
        scale_dtype = gamma.dtype if gamma is not None else fc2.weight.dtype if self.layer_scale_folded else dtype
        out_dtype = torch.promote_types(x.dtype, torch.promote_types(dtype, scale_dtype))
        if gamma is not None and not autocast and dtype in (torch.float32, torch.float64):
            w2, b2, gamma = w2 * gamma[:, None], b2 * gamma, None
        weights = tuple(t.to(dtype) for t in (fc1.weight.flatten(1), fc1.bias, w2, b2))
        y = self.norm(self.token_mixer(x))
        n, c, h, w = y.shape
        tokens = y.permute(0, 2, 3, 1).reshape(-1, c)  # views of channels-last tensors
        shortcut = x.permute(0, 2, 3, 1).reshape(-1, c)
        rows = max(1, self.hidden_slice_bytes // (weights[0].shape[0] * weights[0].element_size()))
        if rows >= len(tokens):
            out = self._mlp_plus_residual(tokens, shortcut, weights, gamma, dtype, out_dtype)
        else:
            out = shortcut.new_empty(shortcut.shape, dtype=out_dtype)
            for start in range(0, len(tokens), rows):
                part = slice(start, start + rows)
                self._mlp_plus_residual(tokens[part], shortcut[part], weights, gamma, dtype, out_dtype, out[part])
        return out.view(n, h, w, c).permute(0, 3, 1, 2)

    @staticmethod
    def _mlp_plus_residual(tokens: torch.Tensor, residual: torch.Tensor, weights: tuple, gamma: Optional[torch.Tensor],
                           dtype: torch.dtype, out_dtype: torch.dtype,
                           out: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``residual + gamma * fc2(gelu(fc1(tokens)))`` on (tokens, C) rows, the GEMMs in ``dtype``, the sum in
        ``out_dtype`` (into ``out`` where given). The residual is added inside fc2's GEMM where all three dtypes
        agree; else (autocast: a float32 stream) afterwards, in ``out_dtype``, as timm adds it."""
        linear = torch.ops.mkldnn._linear_pointwise
        w1, b1, w2, b2 = weights
        hidden = linear(tokens.to(dtype), w1, b1, 'gelu', [], 'none')
        if gamma is None and residual.dtype == dtype == out_dtype:
            branch = linear.binary(hidden, residual, w2, b2, 'add')
            return branch if out is None else out.copy_(branch)
        branch = linear(hidden, w2, b2, 'none', [], '')
        out = residual.new_empty(residual.shape, dtype=out_dtype) if out is None else out
        if gamma is None:
            return torch.add(residual, branch, out=out)
        return torch.addcmul(residual, branch, gamma, out=out)


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


BLOCKS = dict(onednn=OneDNNMetaNeXtBlock, gemm=GemmMetaNeXtBlock, fused_residual=FusedResidualMetaNeXtBlock,
              reference=MetaNeXtBlock)


def default_device() -> str:
    """The device a model built now will run on, as mmengine's Runner decides it (``mmengine.device.get_device``)."""
    from mmengine.device import get_device
    return get_device()


def select_block(fast_path: str, device: Optional[str] = None) -> type:
    """The block class for ``fast_path``:

    - ``'onednn'``: :class:`OneDNNMetaNeXtBlock` (CPU inference through oneDNN's fused linear ops; falls back to
      ``'gemm'``, with a warning, where this PyTorch lacks them);
    - ``'gemm'``: :class:`GemmMetaNeXtBlock`;
    - ``'fused_residual'``: :class:`FusedResidualMetaNeXtBlock` (timm's op sequence, the residual in one op);
    - ``'reference'``: timm's op sequence (:class:`MetaNeXtBlock`);
    - ``'auto'``: where the model will run on a CPU (``device``, default :func:`default_device`), ``'onednn'`` where
      PyTorch has oneDNN's fused linear ops, else ``'gemm'``; elsewhere the reference: on CUDA the 1x1 convolutions
      run on cuDNN, at the precision its TF32 flag allows, in the input's memory format."""
    if fast_path not in FAST_PATHS:
        raise ValueError(f'fast_path must be one of {FAST_PATHS}, got {fast_path!r}')
    if fast_path == 'auto':
        if (device or default_device()) != 'cpu':
            return MetaNeXtBlock
        fast_path = 'onednn' if ONEDNN_LINEAR_POINTWISE else 'gemm'
    if fast_path == 'onednn' and not ONEDNN_LINEAR_POINTWISE:
        warnings.warn("fast_path='onednn' needs a PyTorch built with oneDNN (torch.ops.mkldnn._linear_pointwise); "
                      f"torch {torch.__version__} here has none: the 'gemm' path runs instead")
        fast_path = 'gemm'
    return BLOCKS[fast_path]


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
