"""The MetaNeXt block (the paper's Section 3): ``x + drop_path(gamma * mlp(norm(token_mixer(x))))``.

One residual, no norm before the mixer. ConvNeXt is MetaNeXt with a 7x7 depthwise mixer and LayerNorm; InceptionNeXt
with the Inception depthwise mixer and BatchNorm. Parameter names follow the official release (and timm):
``token_mixer.*``, ``norm.*``, ``mlp.fc1``, ``mlp.fc2``, ``gamma``.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmcv.cnn.bricks import DropPath
from torch.nn.modules.batchnorm import _BatchNorm

from .token_mixers import build_token_mixer


class ConvMlp(nn.Module):
    """1x1-conv MLP: fc1, GELU (exact, erf), fc2."""

    def __init__(self, channels: int, hidden_channels: int):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, hidden_channels, 1)
        self.fc2 = nn.Conv2d(hidden_channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class MetaNeXtBlock(nn.Module):
    """``x + drop_path(gamma * mlp(norm(token_mixer(x))))``, in timm's op sequence.

    Args:
        channels (int): Input (and output) channels.
        token_mixer (dict): A registered token mixer (:mod:`mmincnext.models.layers.token_mixers`), built with
            ``channels``.
        norm_cfg (dict): The norm after the mixer (mmcv's ``build_norm_layer``: 'BN', 'SyncBN', 'LN2d', ...).
        mlp_ratio (float): Hidden channels of the MLP, as a multiple of ``channels``.
        layer_scale_init_value (float): Initial layer scale ``gamma``; 0 disables it.
        drop_path (float): Stochastic depth of the residual branch.
    """

    # Whether the block prefers channels-last inputs (the backbone then runs channels-last throughout).
    channels_last = False

    def __init__(self, channels: int, token_mixer: dict, norm_cfg: dict, mlp_ratio: float = 4.,
                 layer_scale_init_value: float = 1e-6, drop_path: float = 0.):
        super().__init__()
        self.token_mixer = build_token_mixer(token_mixer, channels)
        self.norm = build_norm_layer(norm_cfg, channels)[1]
        self.mlp = ConvMlp(channels, int(mlp_ratio * channels))
        self.gamma = nn.Parameter(torch.full((channels, ), float(layer_scale_init_value))) \
            if layer_scale_init_value > 0 else None
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        # After switch_to_deploy gamma lives in fc2's weight (see layer_scale).
        self.layer_scale_folded = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.token_mixer(x)
        x = self.norm(x)
        x = self.mlp(x)
        x = self.layer_scale(x)
        return self.drop_path(x) + shortcut

    def layer_scale(self, x: torch.Tensor) -> torch.Tensor:
        """``x * gamma``. Folded into fc2 (deployed), the branch still takes the dtype ``x * gamma`` gives: float32
        under autocast, as in timm, so the residual stream is never rounded to a half type."""
        if self.gamma is not None:
            return x * self.gamma.view(-1, 1, 1)
        if self.layer_scale_folded:
            return x.to(torch.promote_types(x.dtype, self.mlp.fc2.weight.dtype))
        return x

    @torch.no_grad()
    def switch_to_deploy(self):
        """Fold a BN after the mixer into fc1 (it acts per input channel of fc1) and the layer scale into fc2."""
        fc1, fc2 = self.mlp.fc1, self.mlp.fc2
        if is_norm_foldable(self.norm):
            scale, shift = bn_scale_shift(self.norm)
            fc1.bias.add_(fc1.weight.flatten(1) @ shift)
            fc1.weight.mul_(scale.view(1, -1, 1, 1))
            self.norm = nn.Identity()
            if hasattr(self.token_mixer, 'writes_autocast_dtype'):  # the mixer now feeds fc1 directly
                self.token_mixer.writes_autocast_dtype = True
        if self.gamma is not None:
            fc2.weight.mul_(self.gamma.view(-1, 1, 1, 1))
            fc2.bias.mul_(self.gamma)
            self.gamma = None
            self.layer_scale_folded = True


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
