"""InceptionNeXtLearningRateDecayOptimizerConstructor: ConvNeXt's layer-wise / stage-wise lr decay on InceptionNeXt.

Reference: mmseg's own LearningRateDecayOptimizerConstructor on mmpretrain's ConvNeXt of the same depths. Both
models' parameters are named by role (stem, downsample i, block (i, j), output norm i, head); every role must get
the same set of (lr, weight_decay) pairs from both constructors.
"""
import functools
import math
import re

import pytest
import torch.nn as nn
from mmengine.optim import build_optim_wrapper
from helpers import load_config, require

import mmincnext  # noqa: F401  (registers the constructor in mmengine's root registry)
from mmincnext.engine import InceptionNeXtLearningRateDecayOptimizerConstructor
from mmincnext.models import InceptionNeXt
from mmincnext.utils import build_model_from_config

LR, WD = 1e-4, 0.05
ARCHS = ('atto', 'tiny', 'small', 'base')
DECAY_TYPES = ('layer_wise', 'stage_wise')


class Segmentor(nn.Module):
    """What the constructors look at: a ``backbone`` and parameters outside it."""

    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.backbone = backbone
        self.decode_head = nn.Conv2d(8, 4, 1)


class DDPLike(nn.Module):
    """Names parameters ``module.backbone...`` as DistributedDataParallel does."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module


def num_layers_for(depths) -> int:
    return 3 + math.ceil(depths[2] / 3)  # ConvNeXt's: 6 for T, 12 for S/B


def optim_wrapper_cfg(decay_type, num_layers, constructor='InceptionNeXtLearningRateDecayOptimizerConstructor'):
    return dict(optimizer=dict(type='AdamW', lr=LR, weight_decay=WD), constructor=constructor,
                paramwise_cfg=dict(decay_rate=0.9, decay_type=decay_type, num_layers=num_layers))


@functools.lru_cache(maxsize=None)
def incnext_model(arch: str) -> Segmentor:
    return Segmentor(InceptionNeXt(arch=arch, init_cfg=None))


def role(name: str):
    """The part of the model a parameter belongs to, in both families' names."""
    name = name.removeprefix('module.')
    patterns = (
        (r'backbone\.(stem|downsample_layers\.0)\.', lambda m: ('stem', )),
        (r'backbone\.(?:stages\.(\d)\.downsample|downsample_layers\.(\d))\.', lambda m: ('downsample', m[1] or m[2])),
        (r'backbone\.stages\.(\d)\.(?:blocks\.)?(\d+)\.', lambda m: ('block', int(m[1]), int(m[2]))),
        (r'backbone\.norm(\d)\.', lambda m: ('out_norm', int(m[1]))),
        (r'decode_head\.', lambda m: ('head', )),
    )
    for pattern, make in patterns:
        match = re.match(pattern, name)
        if match:
            return make(match)
    raise AssertionError(f'unexpected parameter {name}')


def lr_and_decay_by_role(model: nn.Module, param_groups) -> dict:
    names = {id(p): n for n, p in model.named_parameters()}
    by_role = {}
    for group in param_groups:
        for param in group['params']:
            by_role.setdefault(role(names.pop(id(param))), set()).add((group['lr'], group['weight_decay']))
    assert not names, f'parameters in no group: {sorted(names.values())[:5]}'
    return by_role


@functools.lru_cache(maxsize=None)
def convnext_reference(depths, decay_type, num_layers) -> dict:
    """mmseg's constructor on mmpretrain's ConvNeXt (narrow: the rules depend on the names, not the widths)."""
    ConvNeXt = require('mmpretrain.models').ConvNeXt
    LearningRateDecayOptimizerConstructor = require('mmseg.engine.optimizers').LearningRateDecayOptimizerConstructor
    model = Segmentor(ConvNeXt(arch=dict(depths=list(depths), channels=[8, 16, 32, 64]), out_indices=[0, 1, 2, 3],
                               gap_before_final_norm=False))
    cfg = optim_wrapper_cfg(decay_type, num_layers)
    cfg.pop('constructor')
    wrapper = LearningRateDecayOptimizerConstructor(cfg, cfg.pop('paramwise_cfg'))(model)
    return lr_and_decay_by_role(model, wrapper.optimizer.param_groups)


@pytest.mark.parametrize('decay_type', DECAY_TYPES)
@pytest.mark.parametrize('arch', ARCHS)
def test_groups_equal_mmseg_convnext_rules(arch, decay_type):
    depths = InceptionNeXt.arch_settings[arch]['depths']
    num_layers = num_layers_for(depths)
    model = incnext_model(arch)
    ours = lr_and_decay_by_role(
        model, build_optim_wrapper(model, optim_wrapper_cfg(decay_type, num_layers)).optimizer.param_groups)
    reference = convnext_reference(depths, decay_type, num_layers)
    assert ours == reference
    # Independently of mmseg: weights decay and 1-D parameters (biases, norms, layer scales) do not, in every
    # block; the heads and output norms train at the full rate, the stem at decay_rate ** (num_layers + 1).
    block = ours[('block', 2, 0)]
    assert {wd for _, wd in block} == {WD, 0.} and len({lr for lr, _ in block}) == 1
    assert {lr for lr, _ in ours[('head', )] | ours[('out_norm', 0)]} == {LR}
    (stem_lr, ) = {lr for lr, _ in ours[('stem', )]}
    assert stem_lr == pytest.approx(LR * 0.9**(num_layers + 1))
    distinct = {lr for pairs in ours.values() for lr, _ in pairs}
    # layer_wise: ids 0 .. num_layers + 1; stage_wise: stem/downsamples, 4 stages, heads.
    assert len(distinct) == (num_layers + 2 if decay_type == 'layer_wise' else 6)
    if arch in ('small', 'base'):  # stage 2's 27 blocks in 9 groups of 3
        stage2 = {next(iter(ours[('block', 2, j)]))[0] for j in range(27)}
        assert len(stage2) == (9 if decay_type == 'layer_wise' else 1)


@pytest.mark.parametrize('decay_type', DECAY_TYPES)
def test_ddp_names_give_the_same_groups(decay_type):
    model = incnext_model('tiny')
    wrapped = DDPLike(model)
    cfg = optim_wrapper_cfg(decay_type, 6)
    cfg.pop('constructor')
    constructor = InceptionNeXtLearningRateDecayOptimizerConstructor(cfg, cfg.pop('paramwise_cfg'))
    direct, ddp = [], []
    constructor.add_params(direct, model)
    constructor.add_params(ddp, wrapped)
    assert next(n for n, _ in wrapped.named_parameters()).startswith('module.backbone.')
    assert lr_and_decay_by_role(wrapped, ddp) == lr_and_decay_by_role(model, direct)
    assert lr_and_decay_by_role(wrapped, build_optim_wrapper(wrapped, optim_wrapper_cfg(decay_type, 6))
                                .optimizer.param_groups) == lr_and_decay_by_role(model, direct)


def test_classifier_under_mmpretrain_scope():
    cfg = load_config('demo/incnext_cls_demo.py')
    cfg.optim_wrapper = optim_wrapper_cfg('layer_wise', 6)
    model = build_model_from_config(cfg)
    groups = build_optim_wrapper(model, cfg.optim_wrapper).optimizer.param_groups
    lr = {id(p): g['lr'] for g in groups for p in g['params']}
    names = dict(model.named_parameters())
    assert lr[id(names['head.fc2.weight'])] == LR
    assert lr[id(names['backbone.stages.3.blocks.0.mlp.fc1.weight'])] == pytest.approx(LR * 0.9)
    assert lr[id(names['backbone.stem.0.weight'])] == pytest.approx(LR * 0.9**7)


def test_frozen_parameters_are_left_out():
    model = Segmentor(InceptionNeXt(arch='atto', frozen_stages=1, init_cfg=None))
    groups = build_optim_wrapper(model, optim_wrapper_cfg('layer_wise', 5)).optimizer.param_groups
    grouped = {id(p) for g in groups for p in g['params']}
    assert grouped == {id(p) for p in model.parameters() if p.requires_grad} and grouped


@pytest.mark.parametrize('paramwise_cfg, message', [
    (dict(decay_rate=0.9, decay_type='block_wise', num_layers=6), "decay_type must be one of.*'block_wise'"),
    (dict(decay_rate=0.9, decay_type='layer_wise'), r"missing \['num_layers'\]"),
    (dict(decay_rate=0.9, num_layers=6, norm_decay_mult=0.), r"not supported \['norm_decay_mult'\]"),
])
def test_bad_paramwise_cfg(paramwise_cfg, message):
    cfg = dict(optimizer=dict(type='AdamW', lr=LR, weight_decay=WD),
               constructor='InceptionNeXtLearningRateDecayOptimizerConstructor', paramwise_cfg=paramwise_cfg)
    with pytest.raises(ValueError, match=message):
        build_optim_wrapper(incnext_model('atto'), cfg)


def test_num_layers_too_small_for_arch():
    with pytest.raises(ValueError, match=r'num_layers=6 is too small.*\(3, 3, 27, 3\): at least 12'):
        build_optim_wrapper(incnext_model('small'), optim_wrapper_cfg('layer_wise', 6))


def test_model_without_inception_next():
    ConvNeXt = require('mmpretrain.models').ConvNeXt
    model = Segmentor(ConvNeXt(arch=dict(depths=[1, 1, 1, 1], channels=[8, 16, 32, 64])))
    with pytest.raises(TypeError, match='needs a model with exactly one InceptionNeXt backbone.*ConvNeXt'):
        build_optim_wrapper(model, optim_wrapper_cfg('layer_wise', 6))
