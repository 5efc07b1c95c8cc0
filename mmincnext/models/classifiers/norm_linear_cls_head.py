"""ConvNeXt's classification head (its final ``norm`` and ``head``) as an mmpretrain head."""
from typing import Optional, Tuple

import torch
from mmcv.cnn import build_norm_layer
from mmpretrain.models.heads import LinearClsHead
from mmpretrain.registry import MODELS


@MODELS.register_module()
class NormLinearClsHead(LinearClsHead):
    """``fc(norm(x))`` on pooled features: the head of ConvNeXt, of isotropic ConvNeXt and of the MetaNeXt models
    built after them (the paper's Table 10 variants and isotropic models).

    The pooling is the classifier's neck (``GlobalAveragePooling``), so this head takes ``(N, C)`` features. The
    official ConvNeXt checkpoints' ``norm.*`` and ``head.*`` are this head's ``norm.*`` and ``fc.*``
    (:meth:`mmincnext.models.MetaNeXt.convert_checkpoint` maps them).

    Args:
        num_classes (int): Number of classes.
        in_channels (int): Channels of the pooled backbone output.
        norm_cfg (dict): The norm before ``fc``. Defaults to LayerNorm with eps 1e-6, as ConvNeXt.
        init_cfg (dict): Defaults to truncated normal (std 0.02) Linear weights with zero bias, ConvNeXt's
            initialisation (its ``head_init_scale`` 1).
        **kwargs: ``ClsHead``'s ``loss``, ``topk`` and ``cal_acc``.
    """

    def __init__(self,
                 num_classes: int,
                 in_channels: int,
                 norm_cfg: dict = dict(type='LN', eps=1e-6),
                 init_cfg: Optional[dict] = dict(type='TruncNormal', layer='Linear', std=.02, bias=0.),
                 **kwargs):
        super().__init__(num_classes, in_channels, init_cfg=init_cfg, **kwargs)
        self.norm = build_norm_layer(norm_cfg, in_channels)[1]

    def pre_logits(self, feats: Tuple[torch.Tensor]) -> torch.Tensor:
        x = feats[-1]
        if x.dim() != 2 or x.shape[1] != self.in_channels:
            raise ValueError(f'NormLinearClsHead expects pooled features of shape (N, {self.in_channels}), got '
                             f'{tuple(x.shape)}: is the neck GlobalAveragePooling and in_channels the backbone\'s '
                             'last width?')
        return self.norm(x)
