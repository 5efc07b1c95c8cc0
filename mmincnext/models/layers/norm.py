"""LayerNorm over the channels of an (N, C, H, W) feature map: ConvNeXt's norm, for MetaNeXt instances that use it."""
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.registry import MODELS


@MODELS.register_module('LN2d')
class LayerNorm2d(nn.LayerNorm):
    """``nn.LayerNorm`` over dim 1 of an (N, C, H, W) tensor (ConvNeXt's ``channels_first`` LayerNorm: the same
    function and parameters). ``norm_cfg=dict(type='LN2d', eps=1e-6)``; as ConvNeXt, eps 1e-6."""

    _abbr_ = 'ln'

    def __init__(self, num_channels: int, eps: float = 1e-6, **kwargs):
        super().__init__(num_channels, eps=eps, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # On a channels-last tensor both permutes are views: the normalisation reads contiguous channels.
        x = F.layer_norm(x.permute(0, 2, 3, 1), self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)
