"""InceptionNeXt backbone (Yu et al., "InceptionNeXt: When Inception Meets ConvNeXt", CVPR 2024).

Module names follow the official release (and timm's ``inception_next_*``), so their checkpoints load as they are:
``stem.0``, ``stages.i.downsample.1``, ``stages.i.blocks.j.token_mixer.dwconv_hw``, ``...mlp.fc1``, ``...gamma``.
For dense prediction each returned stage output gets a new norm layer (``norm{i}``), as the authors did for their
segmentation experiments.
"""
import os
from typing import Dict, Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from mmcv.cnn import build_norm_layer
from mmcv.cnn.bricks import DropPath
from mmengine.model import BaseModule
from mmengine.registry import MODELS
from torch.nn.modules.batchnorm import _BatchNorm

from ...checkpoint import load_pretrained
from ...compat import is_autocast_enabled


def is_norm_foldable(norm: nn.Module) -> bool:
    """Batch norms (BN, SyncBN) with running statistics act per channel at inference, so they fold into a conv."""
    return isinstance(norm, _BatchNorm) and norm.track_running_stats


def bn_scale_shift(bn: _BatchNorm):
    """``bn(x) == x * scale + shift`` per channel, with the running statistics (eval mode)."""
    scale = torch.rsqrt(bn.running_var + bn.eps)
    shift = -bn.running_mean * scale
    if bn.affine:
        scale, shift = scale * bn.weight, shift * bn.weight + bn.bias
    return scale, shift


@torch.no_grad()
def fold_bn_into_next_conv(bn: _BatchNorm, conv: nn.Conv2d):
    """``conv(bn(x))`` as one conv (exact for an unpadded conv such as the 2x2 stride-2 downsample)."""
    scale, shift = bn_scale_shift(bn)
    conv.bias.add_((conv.weight * shift.view(1, -1, 1, 1)).sum((1, 2, 3)))
    conv.weight.mul_(scale.view(1, -1, 1, 1))


@torch.no_grad()
def fold_bn_into_previous_conv(conv: nn.Conv2d, bn: _BatchNorm):
    """``bn(conv(x))`` as one conv."""
    scale, shift = bn_scale_shift(bn)
    conv.weight.mul_(scale.view(-1, 1, 1, 1))
    conv.bias.mul_(scale).add_(shift)


# The fused Triton mixer (mmincnext/ops) is off unless asked for: it has not yet been measured faster on a GPU.
FUSED_MIXER_DEFAULT = False
FUSED_MIXER_ENV = 'MMINCNEXT_FUSED_MIXER'


def resolve_fused_mixer(fused_mixer: Optional[bool]) -> bool:
    """The backbone's ``fused_mixer``: True/False as given; None takes ``MMINCNEXT_FUSED_MIXER`` (1/0) from the
    environment, else :data:`FUSED_MIXER_DEFAULT`."""
    if fused_mixer is not None:
        return bool(fused_mixer)
    value = os.environ.get(FUSED_MIXER_ENV, '').strip().lower()
    if value in ('', 'auto'):
        return FUSED_MIXER_DEFAULT
    if value not in ('0', '1', 'false', 'true', 'off', 'on'):
        raise ValueError(f'{FUSED_MIXER_ENV}={value!r}: use 1 (fused Triton mixer on CUDA) or 0 (eager)')
    return value in ('1', 'true', 'on')


class InceptionDWConv2d(nn.Module):
    """Inception depthwise convolution: identity, square, 1xk and kx1 branches over a channel split.

    The split order (identity first) is the released weights' order; the paper's pseudo-code lists identity last.
    With ``fused=True``, CUDA inputs go through one Triton kernel (:func:`mmincnext.ops.inception_dwconv`: each
    tile read once, the whole output written once, instead of split, three convolutions and a concatenation);
    CPU inputs, ONNX export and machines without Triton keep this eager formula. Same weights, same function.
    """

    def __init__(self, channels: int, square_kernel_size: int = 3, band_kernel_size: int = 11,
                 branch_ratio: float = 0.125, fused: bool = False):
        super().__init__()
        branch_channels = int(channels * branch_ratio)
        self.dwconv_hw = nn.Conv2d(branch_channels, branch_channels, square_kernel_size,
                                   padding=square_kernel_size // 2, groups=branch_channels)
        self.dwconv_w = nn.Conv2d(branch_channels, branch_channels, (1, band_kernel_size),
                                  padding=(0, band_kernel_size // 2), groups=branch_channels)
        self.dwconv_h = nn.Conv2d(branch_channels, branch_channels, (band_kernel_size, 1),
                                  padding=(band_kernel_size // 2, 0), groups=branch_channels)
        self.split_sizes = (channels - 3 * branch_channels, ) + (branch_channels, ) * 3
        self.fused_op = None
        if fused:
            from ...ops import inception_dwconv  # imports Triton: only where the fused mixer is asked for
            self.fused_op = inception_dwconv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused_op is not None and x.is_cuda:  # the op itself falls back to eager without Triton / in ONNX
            return self.fused_op(x, self.dwconv_hw.weight, self.dwconv_hw.bias, self.dwconv_w.weight,
                                 self.dwconv_w.bias, self.dwconv_h.weight, self.dwconv_h.bias)
        x_id, x_hw, x_w, x_h = torch.split(x, self.split_sizes, dim=1)
        return torch.cat((x_id, self.dwconv_hw(x_hw), self.dwconv_w(x_w), self.dwconv_h(x_h)), dim=1)


FAST_PATHS = ('auto', 'gemm', 'reference')


def uses_gemm_path(fast_path: str, x: torch.Tensor) -> bool:
    """Whether a forward on ``x`` takes the channels-last GEMM path (see :class:`ConvMlp`).

    ``'auto'`` takes it on CPU only: it was measured faster there (README, Speed). On CUDA the 1x1 convolutions
    of timm's formulation run on cuDNN at the precision the user's ``torch.backends.cudnn.allow_tf32`` allows, and
    the input keeps its memory format, until GPU figures show the GEMM path at least as fast there.
    """
    return fast_path == 'gemm' or (fast_path == 'auto' and x.device.type == 'cpu')


def folds_layer_scale(x: torch.Tensor) -> bool:
    """Whether the layer scale may be folded into fc2's weight for a forward on ``x``: only when everything runs in
    float32 (or float64). Under autocast the product W * gamma is cast to the half type, where float16 loses it
    (0.02 x 1e-6 is below its smallest subnormal, 6e-8) and where timm's ``branch * gamma`` returns float32."""
    return not is_autocast_enabled(x.device.type) and x.dtype in (torch.float32, torch.float64)


class ConvMlp(nn.Module):
    """1x1-conv MLP: fc1, GELU (exact, erf), fc2, with an optional per-channel scale on the output (the block's
    layer scale).

    Two formulations of the same function; ``fast_path`` (see :func:`uses_gemm_path`) picks one per forward:

    - reference (timm's and the official op sequence): ``fc2(gelu(fc1(x))) * scale`` as 1x1 convolutions, in the
      input's memory format.
    - GEMM (the CPU fast path): ``fc1``/``fc2`` stay ``Conv2d`` so their weights keep the released shapes, but they
      run as ``F.linear`` over a channels-last view: on CPU that is a plain GEMM, faster than oneDNN's 1x1
      convolution forward and backward, and free of copies when the tensor is channels-last. In float32, scaling
      fc2's weight instead of its output saves one activation-sized multiply (and its backward) per block (never
      under autocast: :func:`folds_layer_scale`). When autograd is not recording (inference), GELU runs in place:
      no second hidden-sized buffer to allocate and fault in, which on CPU costs more than the GELU itself.
    """

    def __init__(self, channels: int, hidden_channels: int, fast_path: str = 'auto'):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, hidden_channels, 1)
        self.fc2 = nn.Conv2d(hidden_channels, channels, 1)
        self.fast_path = fast_path

    def forward(self, x: torch.Tensor, out_scale: Optional[torch.Tensor] = None) -> torch.Tensor:
        if not uses_gemm_path(self.fast_path, x):
            y = self.fc2(F.gelu(self.fc1(x)))
            return y if out_scale is None else y * out_scale.view(-1, 1, 1)
        weight, bias = self.fc2.weight.flatten(1), self.fc2.bias
        fold = out_scale is not None and folds_layer_scale(x)
        if fold:
            weight, bias = weight * out_scale[:, None], bias * out_scale
        y = F.linear(x.permute(0, 2, 3, 1), self.fc1.weight.flatten(1), self.fc1.bias)
        y = F.gelu(y) if torch.is_grad_enabled() else torch.ops.aten.gelu_(y)
        y = F.linear(y, weight, bias)
        if out_scale is not None and not fold:
            y = y * out_scale
        return y.permute(0, 3, 1, 2)


class MetaNeXtBlock(nn.Module):
    """``x + drop_path(gamma * mlp(norm(token_mixer(x))))``: one residual, no norm before the mixer."""

    def __init__(self, channels: int, mlp_ratio: float, band_kernel_size: int, branch_ratio: float,
                 norm_cfg: dict, layer_scale_init_value: float, drop_path: float, with_cp: bool,
                 fast_path: str = 'auto', fused_mixer: bool = False):
        super().__init__()
        self.token_mixer = InceptionDWConv2d(channels, band_kernel_size=band_kernel_size, branch_ratio=branch_ratio,
                                             fused=fused_mixer)
        self.norm = build_norm_layer(norm_cfg, channels)[1]
        self.mlp = ConvMlp(channels, int(mlp_ratio * channels), fast_path=fast_path)
        self.gamma = nn.Parameter(torch.full((channels, ), float(layer_scale_init_value))) \
            if layer_scale_init_value > 0 else None
        # After switch_to_deploy the layer scale lives in fc2's weight; the residual stream keeps the dtype that
        # ``branch * gamma`` would have given (float32 under autocast, as in timm).
        self.layer_scale_folded = False
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.with_cp = with_cp

    def _residual(self, x: torch.Tensor) -> torch.Tensor:
        branch = self.mlp(self.norm(self.token_mixer(x)), out_scale=self.gamma)
        if self.layer_scale_folded:
            branch = branch.to(torch.promote_types(branch.dtype, self.mlp.fc2.weight.dtype))
        return self.drop_path(branch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.with_cp and x.requires_grad:
            return x + cp.checkpoint(self._residual, x, use_reentrant=False)
        branch = self._residual(x)
        # Inference on the GEMM path: add into the fresh branch output (no new buffer), but only where that buffer
        # already has the sum's dtype, so the residual stream is never rounded to a half type that timm's
        # out-of-place ``x + branch`` would not round to.
        if (not torch.is_grad_enabled() and uses_gemm_path(self.mlp.fast_path, x)
                and branch.dtype == torch.promote_types(branch.dtype, x.dtype)):
            return branch.add_(x)
        return x + branch

    @torch.no_grad()
    def switch_to_deploy(self):
        """Fold the BN into fc1 (it acts per input channel of fc1) and the layer scale into fc2."""
        fc1, fc2 = self.mlp.fc1, self.mlp.fc2
        if is_norm_foldable(self.norm):
            scale, shift = bn_scale_shift(self.norm)
            fc1.bias.add_(fc1.weight.flatten(1) @ shift)
            fc1.weight.mul_(scale.view(1, -1, 1, 1))
            self.norm = nn.Identity()
        if self.gamma is not None:
            fc2.weight.mul_(self.gamma.view(-1, 1, 1, 1))
            fc2.bias.mul_(self.gamma)
            self.gamma = None
            self.layer_scale_folded = True


class MetaNeXtStage(nn.Module):
    """A downsample (BN + 2x2 stride-2 conv; none in the first stage) followed by the blocks."""

    def __init__(self, in_channels: int, channels: int, depth: int, downsample: bool, drop_paths: Sequence[float],
                 norm_cfg: dict, **block_kwargs):
        super().__init__()
        self.downsample = nn.Sequential(
            build_norm_layer(norm_cfg, in_channels)[1],
            nn.Conv2d(in_channels, channels, kernel_size=2, stride=2),
        ) if downsample else nn.Identity()
        self.blocks = nn.Sequential(*[
            MetaNeXtBlock(channels, drop_path=drop_paths[i], norm_cfg=norm_cfg, **block_kwargs) for i in range(depth)
        ])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.downsample(x))


@MODELS.register_module()
class InceptionNeXt(BaseModule):
    """InceptionNeXt backbone returning multi-scale features (strides 4, 8, 16, 32; channels = ``dims``).

    Registered in mmengine's root ``MODELS``, so ``type='InceptionNeXt'`` builds under any downstream scope
    (mmseg, mmdet, mmpretrain).

    Args:
        arch (str | dict): One of ``arch_settings`` ('atto', 'tiny', 'small', 'base') or a dict with the keys
            ``depths``, ``dims``, ``mlp_ratios``, ``band_kernel_size`` and ``branch_ratio``.
        in_channels (int): Input image channels. Defaults to 3.
        out_indices (Sequence[int] | int): Stages whose (normalised) outputs are returned. Defaults to all four.
        drop_path_rate (float): Stochastic depth, rising linearly over all blocks from 0 to this. Defaults to 0.
        layer_scale_init_value (float): Initial layer scale; 0 disables it. Defaults to 1e-6.
        norm_cfg (dict): Norm layers, the output norms included. Defaults to BN; dense configs use SyncBN.
        out_norms (bool): Put a new norm layer (``norm{i}``) on each returned stage output, the authors' recipe for
            dense prediction. False returns the raw stage outputs, as the classification model uses them.
            Defaults to True.
        frozen_stages (int): -1 freezes nothing, 0 the stem, k > 0 the stem and the first k stages.
        norm_eval (bool): Keep every BN layer in eval mode during training. Defaults to False.
        with_cp (bool): Activation checkpointing in every block (less memory, slower). Defaults to False.
        fast_path (str): How the blocks run, with the same function and weights. ``'gemm'``: the whole network
            channels-last with the MLPs as GEMMs (``F.linear``), the layer scale folded into fc2 in float32, GELU and
            the residual in place at inference (:class:`ConvMlp`); ``'reference'``: timm's op sequence (1x1
            convolutions, the input's memory format); ``'auto'``: the GEMM path on CPU, where it was measured
            faster, the reference elsewhere (until GPU measurements say otherwise). Defaults to 'auto'.
        fused_mixer (bool, optional): Run the token mixer on CUDA inputs as one fused Triton kernel
            (:mod:`mmincnext.ops.inception_dwconv`); CPU inputs and ONNX export stay eager. None (default) reads the
            environment variable ``MMINCNEXT_FUSED_MIXER`` (1 or 0), else off: not yet measured faster on a GPU.
        init_cfg (dict | list[dict], optional): ``dict(type='Pretrained', checkpoint=PATH[, prefix='backbone.'])``
            loads an official ``.pth``, a timm ``.safetensors`` or an mmengine checkpoint; a missing backbone key
            or a shape mismatch raises (see :func:`mmincnext.checkpoint.load_pretrained`). Defaults to
            truncated-normal (std 0.02) conv weights with zero bias.

    Speed: on the GEMM path (``fast_path``) the network runs channels-last whatever the input's layout and returns
    its outputs in the input's memory format. For inference, :meth:`switch_to_deploy` folds the BNs and layer
    scales into the convs. ``tools/benchmark.py`` measures them all.
    """

    arch_settings: Dict[str, dict] = {
        'atto': dict(depths=(2, 2, 6, 2), dims=(40, 80, 160, 320), mlp_ratios=(4, 4, 4, 3),
                     band_kernel_size=9, branch_ratio=1 / 4),
        'tiny': dict(depths=(3, 3, 9, 3), dims=(96, 192, 384, 768), mlp_ratios=(4, 4, 4, 3),
                     band_kernel_size=11, branch_ratio=1 / 8),
        'small': dict(depths=(3, 3, 27, 3), dims=(96, 192, 384, 768), mlp_ratios=(4, 4, 4, 3),
                      band_kernel_size=11, branch_ratio=1 / 8),
        'base': dict(depths=(3, 3, 27, 3), dims=(128, 256, 512, 1024), mlp_ratios=(4, 4, 4, 3),
                     band_kernel_size=11, branch_ratio=1 / 8),
    }
    num_stages = 4
    # The total stride (4 x 2 x 2 x 2): a smaller side leaves the last 2x2 downsample less than one 2x2 window.
    min_input_size = 32

    def __init__(self,
                 arch: Union[str, dict] = 'tiny',
                 in_channels: int = 3,
                 out_indices: Union[int, Sequence[int]] = (0, 1, 2, 3),
                 drop_path_rate: float = 0.,
                 layer_scale_init_value: float = 1e-6,
                 norm_cfg: dict = dict(type='BN', requires_grad=True),
                 out_norms: bool = True,
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 with_cp: bool = False,
                 fast_path: str = 'auto',
                 fused_mixer: Optional[bool] = None,
                 init_cfg=dict(type='TruncNormal', layer=['Conv2d', 'Linear'], std=.02, bias=0.)):
        super().__init__(init_cfg=init_cfg)
        self.arch = self._parse_arch(arch)
        depths, dims = self.arch['depths'], self.arch['dims']
        self.dims = tuple(dims)

        if isinstance(out_indices, int):
            out_indices = [out_indices]
        if not isinstance(out_indices, Sequence) or not out_indices:
            raise TypeError(f'out_indices must be an int or a non-empty sequence of ints, got {out_indices!r}')
        bad = [i for i in out_indices if not -self.num_stages <= i < self.num_stages]
        if bad:
            raise ValueError(f'out_indices {list(out_indices)} has stage indices out of range {bad}: '
                             f'valid are 0..{self.num_stages - 1} (or negative from the end)')
        self.out_indices = sorted(i % self.num_stages for i in out_indices)
        if not -1 <= frozen_stages <= self.num_stages:
            raise ValueError(f'frozen_stages={frozen_stages} is out of range: -1 (nothing), 0 (the stem) '
                             f'up to {self.num_stages} (the stem and all stages)')
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        if fast_path not in FAST_PATHS:
            raise ValueError(f'fast_path must be one of {FAST_PATHS}, got {fast_path!r}')
        self.fast_path = fast_path
        self.fused_mixer = resolve_fused_mixer(fused_mixer)

        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, dims[0], kernel_size=4, stride=4),
            build_norm_layer(norm_cfg, dims[0])[1],
        )
        drop_paths = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        stages, prev = [], dims[0]
        for i in range(self.num_stages):
            first = sum(depths[:i])
            stages.append(MetaNeXtStage(
                prev, dims[i], depths[i], downsample=i > 0, drop_paths=drop_paths[first:first + depths[i]],
                norm_cfg=norm_cfg, mlp_ratio=self.arch['mlp_ratios'][i],
                band_kernel_size=self.arch['band_kernel_size'], branch_ratio=self.arch['branch_ratio'],
                layer_scale_init_value=layer_scale_init_value, with_cp=with_cp, fast_path=fast_path,
                fused_mixer=self.fused_mixer))
            prev = dims[i]
        self.stages = nn.Sequential(*stages)
        self.out_norms = out_norms
        for i in self.out_indices:
            self.add_module(f'norm{i}', build_norm_layer(norm_cfg, dims[i])[1] if out_norms else nn.Identity())
        self.deploy = False
        self._freeze_stages()

    @classmethod
    def _parse_arch(cls, arch: Union[str, dict]) -> dict:
        if isinstance(arch, str):
            if arch not in cls.arch_settings:
                raise ValueError(f'Unknown InceptionNeXt arch {arch!r}; valid archs are '
                                 f'{sorted(cls.arch_settings)} or a dict with the keys '
                                 "'depths', 'dims', 'mlp_ratios', 'band_kernel_size', 'branch_ratio'")
            return dict(cls.arch_settings[arch])
        if not isinstance(arch, dict):
            raise TypeError(f'arch must be a str or a dict, got {type(arch).__name__}')
        missing = {'depths', 'dims'} - set(arch)
        if missing:
            raise ValueError(f'A custom InceptionNeXt arch needs the keys {sorted(missing)}; got {sorted(arch)}')
        parsed = dict(mlp_ratios=(4, 4, 4, 3), band_kernel_size=11, branch_ratio=1 / 8)
        parsed.update(arch)
        for key in ('depths', 'dims', 'mlp_ratios'):
            if len(parsed[key]) != cls.num_stages:
                raise ValueError(f'arch[{key!r}] must have {cls.num_stages} entries, got {parsed[key]!r}')
        return parsed

    def init_weights(self):
        if isinstance(self.init_cfg, dict) and self.init_cfg.get('type') == 'Pretrained':
            # Every backbone weight comes from the checkpoint (a missing one raises); the new output norms keep
            # their identity initialisation.
            cfg = {k: v for k, v in self.init_cfg.items() if k != 'type'}
            load_pretrained(self, optional_prefixes=tuple(f'norm{i}.' for i in self.out_indices), **cfg)
            self._is_init = True
        else:
            super().init_weights()

    def _freeze_stages(self):
        frozen = [self.stem] + list(self.stages[:self.frozen_stages]) if self.frozen_stages >= 0 else []
        for module in frozen:
            module.eval()
            for param in module.parameters():
                param.requires_grad = False

    def train(self, mode: bool = True):
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for module in self.modules():
                if isinstance(module, _BatchNorm):
                    module.eval()
        return self

    @torch.no_grad()
    def switch_to_deploy(self):
        """Fold every BN that can be folded (with its running statistics) into a neighbouring conv, and each layer
        scale into fc2, for inference: the stem's BN into the stem conv, each downsample's BN into its 2x2 conv,
        each block's BN into fc1. The outputs stay the same (to float rounding); the output norms stay. Only for
        inference: the folded model has no BN to train, and its state_dict no longer matches the checkpoints."""
        if self.deploy:
            return
        if is_norm_foldable(self.stem[1]):
            fold_bn_into_previous_conv(self.stem[0], self.stem[1])
            self.stem[1] = nn.Identity()
        for stage in self.stages:
            if isinstance(stage.downsample, nn.Sequential) and is_norm_foldable(stage.downsample[0]):
                fold_bn_into_next_conv(stage.downsample[0], stage.downsample[1])
                stage.downsample[0] = nn.Identity()
            for block in stage.blocks:
                block.switch_to_deploy()
        self.deploy = True

    def forward(self, x: torch.Tensor):
        if x.shape[-2] < self.min_input_size or x.shape[-1] < self.min_input_size:
            raise ValueError(f'InceptionNeXt needs inputs of at least {self.min_input_size}x{self.min_input_size} '
                             f'pixels (its total stride), got {x.shape[-2]}x{x.shape[-1]} (HxW): resize the image, or '
                             "pad it (the data preprocessor's size or size_divisor)")
        gemm = uses_gemm_path(self.fast_path, x)
        if gemm:  # the GEMM path runs channels-last (see ConvMlp); outputs come back in the input's memory format
            memory_format = torch.contiguous_format if x.is_contiguous() else torch.channels_last
            x = x.contiguous(memory_format=torch.channels_last)
        x = self.stem(x)
        outs = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i in self.out_indices:
                out = getattr(self, f'norm{i}')(x)
                outs.append(out.contiguous(memory_format=memory_format) if gemm else out)
        return tuple(outs)
