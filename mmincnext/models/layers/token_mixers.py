"""Token mixers of the paper's MetaNeXt block: the Inception depthwise convolution (with the ablation's options), the
(partial) depthwise convolutions of Table 10 and ConvNeXt, and self-attention (MetaNeXt-Attn).

Each takes the block's channel count as its first argument and maps (N, C, H, W) to (N, C, H, W). They are registered
in mmengine's root ``MODELS``, so a config picks one by name (``token_mixer=dict(type='PartialDWConv2d',
conv_ratio=0.25)``) under any downstream scope, and a new mixer is one registered ``nn.Module`` away::

    @MODELS.register_module()
    class MyMixer(nn.Module):
        def __init__(self, channels, ...): ...
"""
from typing import Sequence

import torch
import torch.nn as nn
from mmengine.registry import MODELS


def build_token_mixer(cfg: dict, channels: int) -> nn.Module:
    """The mixer ``cfg`` names, for ``channels`` channels."""
    if not isinstance(cfg, dict) or 'type' not in cfg:
        raise TypeError(f"token_mixer must be a dict with a 'type' (a registered token mixer), got {cfg!r}")
    return MODELS.build(dict(cfg, channels=channels))


@MODELS.register_module()
class InceptionDWConv2d(nn.Module):
    """Inception depthwise convolution: the channels split into an identity part and depthwise conv branches.

    In the paper: a small square kernel (``dwconv_hw``, s x s), a horizontal band (``dwconv_w``, 1 x k) and a
    vertical band (``dwconv_h``, k x 1), ``int(C * branch_ratio)`` channels each; the rest pass unchanged. The split
    order, identity first, is the released weights' (the paper's pseudo-code lists identity last).

    The ablation's options: ``branches`` keeps any subset of ``('hw', 'w', 'h')`` (a removed branch's channels join
    the identity), and ``bands='sequence'`` runs the two bands one after the other (1 x k, then k x 1) on one band
    branch's channels instead of side by side, the other band's channels joining the identity.

    Args:
        channels (int): Input (and output) channels.
        square_kernel_size (int): s. Defaults to 3.
        band_kernel_size (int): k. Defaults to 11.
        branch_ratio (float): Channels per conv branch, as a fraction of ``channels``. Defaults to 1/8.
        branches (Sequence[str]): The conv branches kept. Defaults to all three.
        bands (str): ``'parallel'`` (the paper's InceptionNeXt) or ``'sequence'``. Defaults to 'parallel'.
    """

    BRANCHES = ('hw', 'w', 'h')

    def __init__(self, channels: int, square_kernel_size: int = 3, band_kernel_size: int = 11,
                 branch_ratio: float = 0.125, branches: Sequence[str] = BRANCHES, bands: str = 'parallel'):
        super().__init__()
        branches = tuple(branches)
        if not branches or any(b not in self.BRANCHES for b in branches) or len(set(branches)) != len(branches):
            raise ValueError(f'branches must be a non-empty subset of {self.BRANCHES}, got {branches!r}')
        if bands not in ('parallel', 'sequence'):
            raise ValueError(f"bands must be 'parallel' or 'sequence', got {bands!r}")
        if bands == 'sequence' and not {'w', 'h'} <= set(branches):
            raise ValueError(f"bands='sequence' needs both band branches ('w', 'h'), got branches={branches!r}")
        if square_kernel_size % 2 == 0 or band_kernel_size % 2 == 0:
            raise ValueError('kernel sizes must be odd ("same" padding), got '
                             f'square_kernel_size={square_kernel_size}, band_kernel_size={band_kernel_size}')
        g = int(channels * branch_ratio)
        # One branch's channels per conv branch; the two bands in sequence share one branch's channels.
        groups = [b for b in self.BRANCHES if b in branches and not (bands == 'sequence' and b == 'h')]
        if g < 1 or len(groups) * g > channels:
            raise ValueError(f'branch_ratio={branch_ratio} gives {g} channels per branch for {channels} channels and '
                             f'{len(groups)} branch(es): need 1 <= branch channels and their sum <= channels')
        self.branches, self.bands = branches, bands
        if 'hw' in branches:
            self.dwconv_hw = nn.Conv2d(g, g, square_kernel_size, padding=square_kernel_size // 2, groups=g)
        if 'w' in branches:
            self.dwconv_w = nn.Conv2d(g, g, (1, band_kernel_size), padding=(0, band_kernel_size // 2), groups=g)
        if 'h' in branches:
            self.dwconv_h = nn.Conv2d(g, g, (band_kernel_size, 1), padding=(band_kernel_size // 2, 0), groups=g)
        self.split_sizes = (channels - len(groups) * g, ) + (g, ) * len(groups)
        self.conv_names = tuple(f'dwconv_{b}' for b in groups)  # the conv each split after the identity goes through

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_id, *x_convs = torch.split(x, self.split_sizes, dim=1)
        outs = [getattr(self, name)(part) for name, part in zip(self.conv_names, x_convs)]
        if self.bands == 'sequence':
            outs[-1] = self.dwconv_h(outs[-1])
        return torch.cat((x_id, *outs), dim=1)


@MODELS.register_module()
class DWConv2d(nn.Conv2d):
    """A k x k depthwise convolution over all channels, "same" padding: ConvNeXt's token mixer (k = 7) and Table
    10's 5x5 and 3x3 variants. Its parameters are the conv's own (``weight``, ``bias``), as ConvNeXt's ``dwconv``."""

    def __init__(self, channels: int, kernel_size: int = 7):
        if kernel_size % 2 == 0:
            raise ValueError(f'kernel_size must be odd ("same" padding), got {kernel_size}')
        super().__init__(channels, channels, kernel_size, padding=kernel_size // 2, groups=channels)


@MODELS.register_module()
class PartialDWConv2d(nn.Module):
    """A k x k depthwise convolution on ``int(C * conv_ratio)`` channels, the rest unchanged (Table 10's
    "convolution ratio"). As the released ConvNeXt variants: the unchanged channels first, the convolved last, the
    conv as ``conv``."""

    def __init__(self, channels: int, kernel_size: int = 3, conv_ratio: float = 0.5):
        super().__init__()
        conv_channels = int(channels * conv_ratio)
        if not 1 <= conv_channels <= channels or kernel_size % 2 == 0:
            raise ValueError(f'conv_ratio={conv_ratio} gives {conv_channels} of {channels} channels and '
                             f'kernel_size={kernel_size}: need 1 <= convolved channels <= channels and an odd kernel')
        self.conv = nn.Conv2d(conv_channels, conv_channels, kernel_size, padding=kernel_size // 2,
                              groups=conv_channels)
        self.split_sizes = (channels - conv_channels, conv_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity, convolved = torch.split(x, self.split_sizes, dim=1)
        return torch.cat((identity, self.conv(convolved)), dim=1)


@MODELS.register_module()
class SelfAttention2d(nn.Module):
    """Multi-head self-attention over the H x W tokens of a feature map: MetaNeXt-Attn's token mixer (DeiT's
    attention: ``qkv`` and ``proj`` linear layers with bias, scaled dot product, softmax).

    Args:
        channels (int): Input (and output) channels.
        num_heads (int): Heads; ``channels`` must divide by it. Defaults to 6 (DeiT-S).
        qkv_bias (bool): Bias in the ``qkv`` projection. Defaults to True.
        attn_drop (float): Dropout on the attention weights. Defaults to 0.
        proj_drop (float): Dropout after ``proj``. Defaults to 0.
    """

    def __init__(self, channels: int, num_heads: int = 6, qkv_bias: bool = True, attn_drop: float = 0.,
                 proj_drop: float = 0.):
        super().__init__()
        if channels % num_heads:
            raise ValueError(f'channels={channels} is not divisible by num_heads={num_heads}')
        self.num_heads = num_heads
        self.scale = (channels // num_heads)**-0.5
        self.qkv = nn.Linear(channels, 3 * channels, bias=qkv_bias)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(channels, channels)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        tokens = x.flatten(2).transpose(1, 2)  # (N, HW, C)
        q, k, v = self.qkv(tokens).reshape(n, h * w, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        attn = (q * self.scale) @ k.transpose(-2, -1)
        attn = self.attn_drop(attn.softmax(dim=-1))
        tokens = (attn @ v).transpose(1, 2).reshape(n, h * w, c)
        tokens = self.proj_drop(self.proj(tokens))
        return tokens.transpose(1, 2).reshape(n, c, h, w)
