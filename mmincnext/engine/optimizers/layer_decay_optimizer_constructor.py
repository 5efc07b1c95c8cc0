"""Layer-wise learning-rate decay for InceptionNeXt: the rules of mmseg's and mmdet's
``LearningRateDecayOptimizerConstructor`` for ConvNeXt, mapped onto InceptionNeXt's parameter names.

Those constructors only know ConvNeXt's and BEiT's names (``downsample_layers.i``, ``stages.i.j``) and raise
``NotImplementedError`` for any other backbone (mmseg #1623). ConvNeXt -> InceptionNeXt:

- ``downsample_layers.0`` (ConvNeXt's stem) -> ``stem``; ``downsample_layers.i`` -> ``stages.i.downsample``;
- ``stages.i.j`` -> ``stages.i.blocks.j``;
- the output norms ``norm{i}`` and everything outside the backbone (heads, neck) -> the full rate, as ConvNeXt's.
"""
import json
from typing import List

import torch.nn as nn
from mmengine.dist import get_dist_info
from mmengine.logging import print_log
from mmengine.optim import DefaultOptimWrapperConstructor
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS

from ...models.backbones import InceptionNeXt

DECAY_TYPES = ('layer_wise', 'stage_wise')


def get_layer_id_for_inception_next(name: str, num_layers: int) -> int:
    """``layer_wise`` id of a backbone parameter (name relative to the backbone), ConvNeXt's rule: stem 0; stage 0
    1; stage 1 and its downsample 2; stage 2's downsample 3 and its blocks 3 + j // 3; stage 3 and its downsample
    ``num_layers``; the rest (output norms) ``num_layers + 1``."""
    parts = name.split('.')
    if parts[0] == 'stem':
        return 0
    if parts[0] != 'stages':
        return num_layers + 1
    stage_id = int(parts[1])
    if stage_id == 3:
        return num_layers
    if parts[2] == 'downsample':
        return {1: 2, 2: 3}[stage_id]
    return (1, 2, 3 + int(parts[3]) // 3)[stage_id]


def get_stage_id_for_inception_next(name: str, num_layers: int) -> int:
    """``stage_wise`` id, ConvNeXt's rule: stem and downsamples 0, the blocks of stage i i + 1, the rest (output
    norms) ``num_layers + 1``."""
    parts = name.split('.')
    if parts[0] == 'stem' or parts[0] == 'stages' and parts[2] == 'downsample':
        return 0
    if parts[0] == 'stages':
        return int(parts[1]) + 1
    return num_layers + 1


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class InceptionNeXtLearningRateDecayOptimizerConstructor(DefaultOptimWrapperConstructor):
    """mmseg's/mmdet's ``LearningRateDecayOptimizerConstructor`` for a model with an InceptionNeXt backbone.

    Registered in mmengine's root registry, so mmseg, mmdet and mmpretrain configs all find it::

        optim_wrapper = dict(
            constructor='InceptionNeXtLearningRateDecayOptimizerConstructor',
            optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.05),
            paramwise_cfg=dict(decay_rate=0.9, decay_type='stage_wise', num_layers=6))

    A parameter with id ``k`` (see :func:`get_layer_id_for_inception_next` and
    :func:`get_stage_id_for_inception_next`) gets ``lr * decay_rate ** (num_layers + 1 - k)``, so the heads and
    output norms (id ``num_layers + 1``) train at the base rate. 1-D parameters (norms, biases, layer scales
    ``gamma``) and biases get no weight decay, the others the optimizer's. Frozen parameters are left out, as in
    mmseg. The backbone is found by type, so the names may carry any prefix (``backbone.``, DDP's
    ``module.backbone.``).
    """

    def _validate_cfg(self) -> None:
        super()._validate_cfg()
        cfg = self.paramwise_cfg
        unknown = set(cfg) - {'decay_rate', 'decay_type', 'num_layers'}
        missing = {'decay_rate', 'num_layers'} - set(cfg)
        if unknown or missing:
            raise ValueError(f'{type(self).__name__} takes paramwise_cfg=dict(decay_rate=..., num_layers=..., '
                             f"decay_type='layer_wise'|'stage_wise'); missing {sorted(missing)}, "
                             f'not supported {sorted(unknown)}')
        if cfg.get('decay_type', 'layer_wise') not in DECAY_TYPES:
            raise ValueError(f"paramwise_cfg.decay_type must be one of {DECAY_TYPES}, got {cfg['decay_type']!r}")

    def add_params(self, params: List[dict], module: nn.Module, **kwargs) -> None:
        backbones = [(name, m) for name, m in module.named_modules() if isinstance(m, InceptionNeXt)]
        if len(backbones) != 1:
            raise TypeError(f'{type(self).__name__} needs a model with exactly one InceptionNeXt backbone; '
                            f'{type(module).__name__} has {len(backbones)}'
                            + (f' (its backbone is {type(module.backbone).__name__})'
                               if hasattr(module, 'backbone') else ''))
        prefix, backbone = backbones[0][0] + '.' if backbones[0][0] else '', backbones[0][1]
        decay_rate, num_layers = self.paramwise_cfg['decay_rate'], self.paramwise_cfg['num_layers']
        decay_type = self.paramwise_cfg.get('decay_type', 'layer_wise')
        if decay_type == 'layer_wise':
            get_id = get_layer_id_for_inception_next
            # Stage 3 (id num_layers) must lie above stage 2's last group of 3 blocks, as in ConvNeXt (6 for T).
            min_layers = 4 + (backbone.arch['depths'][2] - 1) // 3
        else:
            get_id, min_layers = get_stage_id_for_inception_next, backbone.num_stages
        if num_layers < min_layers:
            raise ValueError(f'paramwise_cfg.num_layers={num_layers} is too small for {decay_type} decay of an '
                             f"InceptionNeXt with depths {tuple(backbone.arch['depths'])}: at least {min_layers}")

        groups = {}
        for name, param in module.named_parameters():
            if not param.requires_grad:
                continue
            no_decay = param.ndim == 1 or name.endswith('.bias')
            layer_id = get_id(name[len(prefix):], num_layers) if name.startswith(prefix) else num_layers + 1
            group_name = f"layer_{layer_id}_{'no_decay' if no_decay else 'decay'}"
            if group_name not in groups:
                scale = decay_rate**(num_layers + 1 - layer_id)
                groups[group_name] = dict(weight_decay=0. if no_decay else self.base_wd, params=[], param_names=[],
                                          lr_scale=scale, group_name=group_name, lr=scale * self.base_lr)
            groups[group_name]['params'].append(param)
            groups[group_name]['param_names'].append(name)
        if get_dist_info()[0] == 0:
            summary = {k: dict(lr=g['lr'], weight_decay=g['weight_decay'], params=len(g['params']))
                       for k, g in sorted(groups.items(), key=lambda item: item[1]['lr'])}
            print_log(f'{decay_type} lr decay {decay_rate} over {num_layers} layers: '
                      f'{json.dumps(summary, indent=1)}', logger='current')
        params.extend(groups.values())
