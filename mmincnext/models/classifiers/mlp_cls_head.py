"""InceptionNeXt's classification head (the paper's MlpHead) as an mmpretrain head."""
from typing import Optional, Tuple

import torch
import torch.nn as nn
from mmcv.cnn import build_activation_layer, build_norm_layer
from mmpretrain.models.heads import ClsHead
from mmpretrain.registry import MODELS


@MODELS.register_module()
class MlpClsHead(ClsHead):
    """``fc2(dropout(norm(act(fc1(x)))))`` on pooled features: InceptionNeXt's MlpHead.

    The pooling is the classifier's neck (``GlobalAveragePooling``), so this head takes ``(N, C)`` features. Module
    names (``fc1``, ``norm``, ``fc2``) are the official release's and timm's ``head.*`` keys.

    Args:
        num_classes (int): Number of classes.
        in_channels (int): Channels of the pooled backbone output (``dims[-1]``).
        mlp_ratio (float): Hidden width as a multiple of ``in_channels``. Defaults to 3, as in the paper.
        act_cfg (dict): Activation after ``fc1``. Defaults to GELU.
        norm_cfg (dict): Norm after the activation. Defaults to LayerNorm with eps 1e-6.
        dropout (float): Dropout before ``fc2`` (the official ``head_dropout``). Defaults to 0.
        init_cfg (dict): Defaults to truncated normal (std 0.02) Linear weights with zero bias, as the reference.
        **kwargs: ``ClsHead``'s ``loss``, ``topk`` and ``cal_acc``.
    """

    def __init__(self,
                 num_classes: int,
                 in_channels: int,
                 mlp_ratio: float = 3.,
                 act_cfg: dict = dict(type='GELU'),
                 norm_cfg: dict = dict(type='LN', eps=1e-6),
                 dropout: float = 0.,
                 init_cfg: Optional[dict] = dict(type='TruncNormal', layer='Linear', std=.02, bias=0.),
                 **kwargs):
        super().__init__(init_cfg=init_cfg, **kwargs)
        if num_classes <= 0:
            raise ValueError(f'num_classes={num_classes} must be a positive integer')
        self.num_classes = num_classes
        self.in_channels = in_channels
        hidden_channels = int(mlp_ratio * in_channels)
        self.fc1 = nn.Linear(in_channels, hidden_channels)
        self.act = build_activation_layer(act_cfg)
        self.norm = build_norm_layer(norm_cfg, hidden_channels)[1]
        self.drop = nn.Dropout(dropout)
        self.fc2 = nn.Linear(hidden_channels, num_classes)

    def pre_logits(self, feats: Tuple[torch.Tensor]) -> torch.Tensor:
        x = feats[-1]
        if x.dim() != 2 or x.shape[1] != self.in_channels:
            raise ValueError(f'MlpClsHead expects pooled features of shape (N, {self.in_channels}), got '
                             f'{tuple(x.shape)}: is the neck GlobalAveragePooling and in_channels the backbone\'s '
                             'last width?')
        return self.drop(self.norm(self.act(self.fc1(x))))

    def forward(self, feats: Tuple[torch.Tensor]) -> torch.Tensor:
        return self.fc2(self.pre_logits(feats))
