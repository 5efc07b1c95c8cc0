"""The paper's architectures beyond the four-stage InceptionNeXt (docs/paper_architectures.md): the ablation's mixers,
Table 10's ConvNeXt-T variants, the isotropic models of Table 3 and their UperNet config, each against an
independent reference (the official ConvNeXt/PartialConv2d code, timm's ConvNeXt, MetaNeXt block and attention,
the paper's definitions), the official Table 10 checkpoint layout loaded strictly, and every config training a step.

Full-size models only where the size is what is tested (timm's convnext_tiny, the isotropic archs, get_flops); the
rest runs on shrunken archs with each config's own token mixer. The counts against the paper's tables are in
tests/test_configs/test_model_index.py (the metafiles' figures, which get_flops' count must equal).
"""
import copy
import math
import re
from functools import partial
from pathlib import Path

import pytest
import timm
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from timm.layers import Attention, LayerNorm2d
from timm.models.inception_next import InceptionDWConv2d as TimmInceptionDWConv2d
from timm.models.inception_next import MetaNeXtBlock as TimmMetaNeXtBlock
from helpers import (PAPER_SIZES, REPO, classifier_train_step, entries, load_config, load_tool, paper_precision,
                     relative_error, require_config, small_classification_config)

from mmincnext.checkpoint import CheckpointError
from mmincnext.models import InceptionNeXt, IsotropicInceptionNeXt, MetaNeXt, MetaNeXtIsotropic
from mmincnext.models.layers import InceptionDWConv2d, SelfAttention2d

ABLATION = sorted(p.name for p in (REPO / 'configs' / 'ablation').glob('*.py'))
TABLE10 = sorted(p.name for p in (REPO / 'configs' / 'convnext_variants').glob('*.py'))
ISOTROPIC_CLS = ['incnext_s_iso_in1k.py', 'incnext_b_iso_in1k.py', 'metanext_attn_s_iso_in1k.py',
                 'convnext_s_iso_in1k.py', 'convnext_b_iso_in1k.py']
# Table 10's variants as the official models/convnext.py registers them: (kernel size, convolution ratio); ratio
# None is the plain nn.Conv2d (all channels), a number PartialConv2d's conv_ratio.
OFFICIAL_TABLE10 = {
    'convnext_t_k7_in1k.py': (7, None), 'convnext_t_k5_in1k.py': (5, None), 'convnext_t_k3_in1k.py': (3, None),
    'convnext_t_k3_par1_2_in1k.py': (3, 0.5), 'convnext_t_k3_par3_8_in1k.py': (3, 3 / 8),
    'convnext_t_k3_par1_4_in1k.py': (3, 0.25), 'convnext_t_k3_par1_8_in1k.py': (3, 0.125),
    'convnext_t_k3_par1_16_in1k.py': (3, 1 / 16),
}
SMALL_DEPTHS, SMALL_DIMS = (1, 1, 2, 1), (32, 64, 128, 256)


# --- the official ConvNeXt and PartialConv2d (sail-sg/inceptionnext models/convnext.py, after
# facebookresearch/ConvNeXt), as the reference for Table 10 and its checkpoint layout ---
class OfficialPartialConv2d(nn.Module):

    def __init__(self, in_channels, out_channels, kernel_size, conv_ratio=1.0, stride=1, padding=0, dilation=1,
                 groups=1, bias=True):
        super().__init__()
        in_chs = int(in_channels * conv_ratio)
        out_chs = int(out_channels * conv_ratio)
        gps = int(groups * conv_ratio) or 1
        self.conv = nn.Conv2d(in_chs, out_chs, kernel_size=kernel_size, stride=stride, padding=padding,
                              dilation=dilation, groups=gps, bias=bias)
        self.split_indices = (in_channels - in_chs, in_chs)

    def forward(self, x):
        identity, conv = torch.split(x, self.split_indices, dim=1)
        return torch.cat((identity, self.conv(conv)), dim=1)


class OfficialLayerNorm(nn.Module):

    def __init__(self, normalized_shape, eps=1e-6, data_format='channels_last'):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(normalized_shape))
        self.bias = nn.Parameter(torch.zeros(normalized_shape))
        self.eps = eps
        self.data_format = data_format
        self.normalized_shape = (normalized_shape, )

    def forward(self, x):
        if self.data_format == 'channels_last':
            return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        u = x.mean(1, keepdim=True)
        s = (x - u).pow(2).mean(1, keepdim=True)
        x = (x - u) / torch.sqrt(s + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class OfficialBlock(nn.Module):

    def __init__(self, dim, kernel_size=7, layer_scale_init_value=1e-6, conv_fn=nn.Conv2d):
        super().__init__()
        self.dwconv = conv_fn(dim, dim, kernel_size=kernel_size, padding=kernel_size // 2, groups=dim)
        self.norm = OfficialLayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(layer_scale_init_value * torch.ones((dim))) if layer_scale_init_value > 0 else None

    def forward(self, x):
        shortcut = x
        x = self.dwconv(x).permute(0, 2, 3, 1)
        x = self.pwconv2(self.act(self.pwconv1(self.norm(x))))
        if self.gamma is not None:
            x = self.gamma * x
        return shortcut + x.permute(0, 3, 1, 2)


class OfficialConvNeXt(nn.Module):

    def __init__(self, num_classes, depths, dims, kernel_sizes=7, conv_fns=nn.Conv2d):
        super().__init__()
        self.downsample_layers = nn.ModuleList([nn.Sequential(
            nn.Conv2d(3, dims[0], kernel_size=4, stride=4),
            OfficialLayerNorm(dims[0], eps=1e-6, data_format='channels_first'))])
        for i in range(3):
            self.downsample_layers.append(nn.Sequential(
                OfficialLayerNorm(dims[i], eps=1e-6, data_format='channels_first'),
                nn.Conv2d(dims[i], dims[i + 1], kernel_size=2, stride=2)))
        self.stages = nn.ModuleList([
            nn.Sequential(*[OfficialBlock(dims[i], kernel_sizes, conv_fn=conv_fns) for _ in range(depths[i])])
            for i in range(4)])
        self.norm = nn.LayerNorm(dims[-1], eps=1e-6)
        self.head = nn.Linear(dims[-1], num_classes)

    def stage_outputs(self, x):
        outs = []
        for downsample, stage in zip(self.downsample_layers, self.stages):
            x = stage(downsample(x))
            outs.append(x)
        return outs

    def forward(self, x):
        return self.head(self.norm(self.stage_outputs(x)[-1].mean([-2, -1])))


class OfficialConvNeXtIsotropic(nn.Module):
    """facebookresearch/ConvNeXt models/convnext_isotropic.py (its default layer_scale_init_value 0)."""

    def __init__(self, num_classes, depth, dim):
        super().__init__()
        self.stem = nn.Conv2d(3, dim, kernel_size=16, stride=16)
        self.blocks = nn.Sequential(*[OfficialBlock(dim, layer_scale_init_value=0) for _ in range(depth)])
        self.norm = OfficialLayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x):
        return self.head(self.norm(self.blocks(self.stem(x)).mean([-2, -1])))


def randomize(model: nn.Module, seed: int = 0) -> nn.Module:
    """Every parameter random (norm weights and layer scales included), so that a mix-up of any two shows."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.dim() == 1:  # norm weights and layer scales around 1, biases around 0
                param.copy_(torch.randn(param.shape, generator=gen) * 0.2 + (1. if 'bias' not in name else 0.))
            else:
                param.copy_(torch.randn(param.shape, generator=gen) * 0.02)
    return model.eval()


def official_table10(name: str, num_classes: int = 10) -> OfficialConvNeXt:
    kernel, ratio = OFFICIAL_TABLE10[name]
    conv_fn = nn.Conv2d if ratio is None else partial(OfficialPartialConv2d, conv_ratio=ratio)
    torch.manual_seed(0)
    return randomize(OfficialConvNeXt(num_classes, SMALL_DEPTHS, SMALL_DIMS, kernel, conv_fn))


def small_table10_cfg(name: str, checkpoint=None, num_classes: int = 10) -> Config:
    cfg = load_config(f'convnext_variants/{name}')
    cfg.model.backbone.arch = dict(depths=SMALL_DEPTHS, dims=SMALL_DIMS, mlp_ratios=4)
    cfg.model.head.update(in_channels=SMALL_DIMS[-1], num_classes=num_classes)
    if checkpoint is not None:
        cfg.model.init_cfg = dict(type='Pretrained', checkpoint=str(checkpoint))
    return cfg


def build(cfg_model, scope='mmpretrain'):
    init_default_scope(scope)
    from mmengine.registry import MODELS
    model = MODELS.build(copy.deepcopy(cfg_model))
    model.init_weights()
    return model.eval()


# --- Table 10: the official checkpoints load, as a classifier and as a backbone ---
@pytest.mark.parametrize('name', sorted(OFFICIAL_TABLE10))
def test_table10_official_layout_loads_with_the_reference_outputs(name, tmp_path):
    assert sorted(OFFICIAL_TABLE10) == TABLE10
    reference = official_table10(name)
    state_dict = reference.state_dict()
    assert {k.split('.')[0] for k in state_dict} == {'downsample_layers', 'stages', 'norm', 'head'}
    # ConvNeXt's own release keeps its weights under 'model'; the Table 10 files are flat.
    checkpoint = tmp_path / f'{name}.pth'
    torch.save({'model': state_dict} if name == 'convnext_t_k7_in1k.py' else state_dict, checkpoint)
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        expected_logits, expected_stages = reference(x), reference.stage_outputs(x)

    cfg = small_table10_cfg(name, checkpoint)
    classifier = build(cfg.model)
    with torch.no_grad():
        assert relative_error(classifier(x, mode='tensor'), expected_logits) < 1e-5

    backbone = build(dict(cfg.model.backbone, out_indices=(0, 1, 2, 3),
                          init_cfg=dict(type='Pretrained', checkpoint=str(checkpoint))))
    with torch.no_grad():
        outputs = backbone(x)
        assert len(outputs) == len(expected_stages)
        for ours, expected in zip(outputs, expected_stages):
            assert relative_error(ours, expected) < 1e-5


def test_isotropic_convnext_official_layout_loads_with_the_reference_outputs(tmp_path):
    torch.manual_seed(0)
    reference = randomize(OfficialConvNeXtIsotropic(10, depth=3, dim=48))
    checkpoint = tmp_path / 'convnext_iso.pth'
    torch.save({'model': reference.state_dict()}, checkpoint)
    cfg = load_config('isotropic/convnext_s_iso_in1k.py')
    cfg.model.backbone.arch.update(depth=3, channels=48)
    cfg.model.head.update(in_channels=48, num_classes=10)
    x = torch.randn(2, 3, 64, 80)
    classifier = build(dict(cfg.model, init_cfg=dict(type='Pretrained', checkpoint=str(checkpoint))))
    backbone = build(dict(cfg.model.backbone, init_cfg=dict(type='Pretrained', checkpoint=str(checkpoint))))
    with torch.no_grad():
        assert relative_error(classifier(x, mode='tensor'), reference(x)) < 1e-5
        assert relative_error(backbone(x)[-1], reference.blocks(reference.stem(x))) < 1e-5


@pytest.fixture(scope='module')
def par1_4_state_dict():
    return official_table10('convnext_t_k3_par1_4_in1k.py').state_dict()


# (change, the error, whether a backbone alone sees it: the final norm and the head are the classifier head's)
@pytest.mark.parametrize('change, message, backbone_too', [
    (lambda sd: sd.pop('stages.2.1.gamma'), 'missing in the checkpoint', True),
    (lambda sd: sd.pop('norm.weight'), 'missing in the checkpoint', False),
    (lambda sd: sd.update({'stages.0.0.dwconv.extra': torch.zeros(1)}), 'unexpected in the checkpoint', True),
    (lambda sd: sd.update({'stages.1.0.pwconv1.weight': torch.zeros(256, 32)}), 'shape mismatch', True),
])
def test_table10_layout_loads_strictly(par1_4_state_dict, change, message, backbone_too, tmp_path):
    state_dict = dict(par1_4_state_dict)
    change(state_dict)
    checkpoint = tmp_path / 'changed.pth'
    torch.save(state_dict, checkpoint)
    cfg = small_table10_cfg('convnext_t_k3_par1_4_in1k.py', checkpoint)
    with pytest.raises(CheckpointError, match=message):
        build(cfg.model)
    backbone_cfg = dict(cfg.model.backbone, init_cfg=dict(type='Pretrained', checkpoint=str(checkpoint)))
    if backbone_too:
        with pytest.raises(CheckpointError, match=message):
            build(backbone_cfg)
    else:
        build(backbone_cfg)


def test_table10_other_ratio_does_not_load(par1_4_state_dict, tmp_path):
    checkpoint = tmp_path / 'par1_4.pth'
    torch.save(par1_4_state_dict, checkpoint)
    with pytest.raises(CheckpointError, match=r'shape mismatch[\s\S]*token_mixer\.conv\.weight'):
        build(small_table10_cfg('convnext_t_k3_par1_2_in1k.py', checkpoint).model)


# --- the framework against independent references ---
def timm_convnext_to_ours(state_dict: dict) -> dict:
    """timm's ConvNeXt keys and Linear MLP weights -> the Table 10 classifier's (written here, independently of
    MetaNeXt.convert_checkpoint)."""
    ours = {}
    for key, value in state_dict.items():
        if not key.startswith('head.'):
            key = 'backbone.' + key.replace('.conv_dw.', '.token_mixer.')
            if '.mlp.fc' in key and key.endswith('.weight'):
                value = value[:, :, None, None]
        ours[key] = value
    return ours


def test_metanext_convnext_equals_timm_convnext_tiny():
    """The ConvNeXt-T config (MetaNeXt: DWConv2d(7) + LN2d) is timm's convnext_tiny: same tensors, same
    forward_features and logits."""
    torch.manual_seed(0)
    reference = randomize(timm.create_model('convnext_tiny', pretrained=False))
    classifier = build(load_config('convnext_variants/convnext_t_k7_in1k.py').model)
    ours = timm_convnext_to_ours(reference.state_dict())
    assert {k: tuple(v.shape) for k, v in ours.items()} == \
        {k: tuple(v.shape) for k, v in classifier.state_dict().items()}
    classifier.load_state_dict(ours)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        features = reference.forward_features(x)
        assert relative_error(classifier.backbone(x)[-1], features) < 1e-5
        assert relative_error(classifier(x, mode='tensor'), reference.forward_head(features)) < 1e-5


def test_isotropic_incnext_equals_timm_blocks():
    """IsotropicInceptionNeXt 'small' is isotropic ConvNeXt-S's layout with timm's MetaNeXt block (timm's Inception
    depthwise conv, LayerNorm2d): a reference assembled from timm's modules, same weights, same outputs."""
    backbone = IsotropicInceptionNeXt('small', out_indices=(5, 17), layer_scale_init_value=0.)
    assert len(backbone.blocks) == 18 and backbone.channels == 384
    reference = nn.Sequential(nn.Conv2d(3, 384, 16, stride=16), *[
        TimmMetaNeXtBlock(384, token_mixer=partial(TimmInceptionDWConv2d, band_kernel_size=11, branch_ratio=1 / 8),
                          norm_layer=partial(LayerNorm2d, eps=1e-6), ls_init_value=0.) for _ in range(18)])
    torch.manual_seed(0)
    randomize(reference)
    assert len(reference.state_dict()) == len(backbone.state_dict())
    backbone.load_state_dict({k.replace('0.', 'stem.', 1) if k.startswith('0.') else
                              f'blocks.{int(k.split(".")[0]) - 1}.{k.split(".", 1)[1]}': v
                              for k, v in reference.state_dict().items()})
    x = torch.randn(1, 3, 96, 112)
    with torch.no_grad():
        expected = [reference[:7](x), reference(x)]  # blocks 5 and 17: the stem is module 0
        outputs = backbone.eval()(x)
        assert len(outputs) == len(expected)
        for ours, ref in zip(outputs, expected):
            assert relative_error(ours, ref) < 1e-5


def test_self_attention_equals_timm_attention():
    mixer = SelfAttention2d(48, num_heads=6).eval()
    reference = Attention(48, num_heads=6, qkv_bias=True).eval()
    reference.load_state_dict(randomize(mixer).state_dict())
    x = torch.randn(2, 48, 5, 7)
    with torch.no_grad():
        expected = reference(x.flatten(2).transpose(1, 2)).transpose(1, 2).reshape(x.shape)
        assert relative_error(mixer(x), expected) < 1e-5
    with pytest.raises(ValueError, match='divisible'):
        SelfAttention2d(50, num_heads=6)


def dwconv(x, conv):
    return F.conv2d(x, conv.weight, conv.bias, padding=conv.padding, groups=x.shape[1])


def paper_formula(mixer: InceptionDWConv2d, x, g: int, branches, sequence: bool):
    """The ablation's definitions: identity first, then the kept branches in the order square, horizontal (1xk),
    vertical (kx1), g channels each; in sequence, the 1xk then kx1 on one band branch's g channels, the other's
    joining the identity."""
    convs = [getattr(mixer, f'dwconv_{b}') for b in ('hw', 'w', 'h') if b in branches]
    if sequence:
        convs = convs[:-1]
    identity = x.shape[1] - g * len(convs)
    parts = torch.split(x, [identity] + [g] * len(convs), dim=1)
    outs = [dwconv(part, conv) for part, conv in zip(parts[1:], convs)]
    if sequence:
        outs[-1] = dwconv(outs[-1], mixer.dwconv_h)
    return torch.cat([parts[0]] + outs, dim=1)


@pytest.mark.parametrize('name', ABLATION)
def test_ablation_mixers_follow_the_papers_definitions(name):
    override = load_config(f'ablation/{name}').model.backbone.token_mixer
    arch = InceptionNeXt.parse_arch('tiny')
    options = {**arch['token_mixer'], **override}
    assert options.pop('type') == 'InceptionDWConv2d'
    channels = 96
    mixer = randomize(InceptionDWConv2d(channels, **options))
    g = int(channels * options.get('branch_ratio', 1 / 8))
    band = options.get('band_kernel_size', 11)
    branches = options.get('branches', ('hw', 'w', 'h'))
    for b, shape in (('hw', (3, 3)), ('w', (1, band)), ('h', (band, 1))):
        conv = getattr(mixer, f'dwconv_{b}', None)
        assert (conv is not None) == (b in branches), b
        if conv is not None:
            assert tuple(conv.weight.shape) == (g, 1) + shape
    x = torch.randn(2, channels, 13, 17)
    with torch.no_grad():
        expected = paper_formula(mixer, x, g, branches, options.get('bands') == 'sequence')
        assert torch.allclose(mixer(x), expected, atol=1e-6)


# --- every config trains a step (shrunken archs, each config's own mixer, head, loss, optimizer, augments) ---
def shrunken(cfg: Config, num_classes: int = 10) -> Config:
    backbone = cfg.model.backbone
    if backbone.type in ('InceptionNeXt', 'MetaNeXt'):
        arch = backbone.arch if isinstance(backbone.arch, dict) else {}
        backbone.arch = dict(arch, depths=(1, 1, 1, 1), dims=(32, 64, 96, 128))
        width = 128
    else:
        arch = IsotropicInceptionNeXt.arch_settings[backbone.arch] if isinstance(backbone.arch, str) else backbone.arch
        backbone.arch = dict(arch, depth=2, channels=48)
        width = 48
    cfg.model.head.update(in_channels=width, num_classes=num_classes)
    cfg.model.data_preprocessor = dict(cfg.data_preprocessor, num_classes=num_classes)
    return cfg


@pytest.mark.parametrize('name', [f'ablation/{n}' for n in ABLATION] + [f'convnext_variants/{n}' for n in TABLE10] +
                         [f'isotropic/{n}' for n in ISOTROPIC_CLS])
def test_config_builds_and_trains_a_step(name):
    cfg = shrunken(load_config(name))
    model = build(cfg.model).train()
    losses, unchanged = classifier_train_step(model, build_optim_wrapper(model, cfg.optim_wrapper))
    assert torch.isfinite(losses['loss'])
    assert not unchanged


@pytest.mark.integration
@pytest.mark.parametrize('name', ['convnext_variants/convnext_t_k3_par1_4_in1k.py', 'isotropic/incnext_s_iso_in1k.py'])
def test_config_trains_an_epoch_with_its_ema_and_validates(name, tmp_path):
    """A config inheriting the Table 10 (from an official-layout checkpoint) or the isotropic config, as a user writes
    one: a shrunken arch and the embedded ImageNet-layout data; the hooks (timm's EMA), the per-iteration schedule and
    the rest are the config's. One epoch of two steps through tools/train.py, then the EMA is validated and saved."""
    from mmincnext.checkpoint import read_checkpoint
    from mmincnext.engine import TimmEMAHook
    cfg = shrunken(load_config(name), num_classes=1000)
    extra = ''
    if name.startswith('convnext_variants'):
        arch = cfg.model.backbone.arch
        official = randomize(OfficialConvNeXt(1000, arch.depths, arch.dims, 3,
                                              partial(OfficialPartialConv2d, conv_ratio=0.25)))
        torch.save(official.state_dict(), tmp_path / 'official.pth')
        extra = f"init_cfg=dict(type='Pretrained', checkpoint={str(tmp_path / 'official.pth')!r})"
    child = small_classification_config(tmp_path, name, cfg.model.backbone.arch, cfg.model.head.in_channels, extra)
    runner = load_tool('train').main([str(child), '--work-dir', str(tmp_path / 'work_dir')])
    assert runner.iter == 2  # 10 images (one per class), batch 4, the last incomplete batch dropped
    ema_hook, = [hook for hook in runner.hooks if isinstance(hook, TimmEMAHook)]
    assert int(ema_hook.ema_model.steps) == 1 + 2  # the start, then one update per optimizer step
    assert 0 <= runner.message_hub.get_scalar('val/accuracy/top1').current() <= 100
    saved = read_checkpoint(str(tmp_path / 'work_dir' / 'epoch_1.pth'))['state_dict']
    assert all(torch.equal(saved[k], v) for k, v in ema_hook.ema_model.module.state_dict().items())
    if extra:  # the EMA started from the official weights
        assert torch.allclose(saved['backbone.stages.3.blocks.0.token_mixer.conv.weight'],
                              official.stages[3][0].dwconv.conv.weight, atol=1e-3)


# --- the recipes, against the official scripts and ConvNeXt's schedule ---
def ema_momentum(cfg: Config):
    """The EMA's momentum (1 - timm's decay), where the EMA is timm's (once per optimizer step, from the initial
    weights, buffers averaged)."""
    hooks = [h for h in cfg.custom_hooks if h.type == 'TimmEMAHook' and h.get('update_buffers')]
    return hooks[0].momentum if hooks else None


@pytest.mark.parametrize('name', TABLE10)
def test_table10_recipe_is_the_official_scripts(name):
    """scripts/convnext_variants/train_convnext_tiny_*_ema.sh: batch 4096, --lr 4e-3 --warmup-epochs 20,
    --drop-path 0.1, --model-ema --model-ema-decay 0.9999; train.py's 300 + 10 cool-down epochs."""
    cfg = load_config(f'convnext_variants/{name}')
    backbone = cfg.model.backbone
    assert backbone.type == 'MetaNeXt' and backbone.norm_cfg == dict(type='LN2d', eps=1e-6)
    assert backbone.arch == dict(depths=(3, 3, 9, 3), dims=(96, 192, 384, 768), mlp_ratios=4)
    assert backbone.drop_path_rate == 0.1 and cfg.model.head.type == 'NormLinearClsHead'
    assert cfg.auto_scale_lr.base_batch_size == 4096 and cfg.optim_wrapper.optimizer.lr == 4e-3
    scheduler, = cfg.param_scheduler
    assert (scheduler.warmup_t, scheduler.t_initial, cfg.train_cfg.max_epochs) == (20, 300, 310)
    assert ema_momentum(cfg) == pytest.approx(1 - 0.9999)


def convnext_cosine_scheduler(base_value, final_value, epochs, niter_per_ep, warmup_epochs):
    """facebookresearch/ConvNeXt utils.cosine_scheduler (its start_warmup_value 0)."""
    warmup_iters = warmup_epochs * niter_per_ep
    warmup = [base_value * i / (warmup_iters - 1) for i in range(warmup_iters)]
    iters = epochs * niter_per_ep - warmup_iters
    return warmup + [final_value + 0.5 * (base_value - final_value) * (1 + math.cos(math.pi * i / iters))
                     for i in range(iters)]


@pytest.mark.parametrize('name, drop_path', [('incnext_s_iso_in1k.py', 0.1), ('incnext_b_iso_in1k.py', 0.2),
                                             ('metanext_attn_s_iso_in1k.py', 0.1), ('convnext_s_iso_in1k.py', 0.1),
                                             ('convnext_b_iso_in1k.py', 0.2)])
def test_isotropic_recipe_is_isotropic_convnexts(name, drop_path):
    """TRAINING.md's isotropic ConvNeXt-S/B: --drop_path 0.1/0.2, --layer_scale_init_value 0, --warmup_epochs 50,
    EMA 0.9999, batch 4096, lr 4e-3; main.py's 300 epochs, bicubic training crops."""
    cfg = load_config(f'isotropic/{name}')
    backbone = cfg.model.backbone
    assert backbone.drop_path_rate == drop_path and backbone.layer_scale_init_value == 0
    assert ema_momentum(cfg) == pytest.approx(1 - 0.9999) and cfg.auto_scale_lr.base_batch_size == 4096
    assert cfg.optim_wrapper.optimizer.lr == 4e-3 and cfg.train_cfg.max_epochs == 300
    assert cfg.model.head.type == 'NormLinearClsHead'
    assert cfg.train_dataloader.dataset.pipeline[1].interpolation == 'bicubic'  # --train_interpolation bicubic


def test_isotropic_schedule_is_convnexts_per_iteration():
    """The isotropic configs' schedule (one base), iteration by iteration on 3 iterations per epoch, against
    ConvNeXt's utils.cosine_scheduler(4e-3, min_lr 1e-6, 300 epochs, warm-up 50)."""
    cfg = load_config('isotropic/incnext_s_iso_in1k.py')  # (skips where mmpretrain is missing)
    from mmpretrain.registry import PARAM_SCHEDULERS
    init_default_scope('mmpretrain')
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=cfg.optim_wrapper.optimizer.lr)
    epoch_length = 3
    schedulers = [PARAM_SCHEDULERS.build(dict(s, optimizer=optimizer, epoch_length=epoch_length) if
                                         s.get('convert_to_iter_based') else dict(s, optimizer=optimizer))
                  for s in cfg.param_scheduler]
    ours = []
    for _ in range(cfg.train_cfg.max_epochs * epoch_length):
        ours.append(optimizer.param_groups[0]['lr'])
        optimizer.step()
        for scheduler in schedulers:
            scheduler.step()
    # mmengine's LinearLR cannot start at 0 (stated in the schedule's config): its warm-up is off by at most
    # lr x its start factor 1e-6.
    expected = convnext_cosine_scheduler(4e-3, 1e-6, 300, epoch_length, 50)
    assert ours == pytest.approx(expected, rel=1e-9, abs=4e-3 * 1e-6 * (1 + 1e-6))
    assert ours[50 * epoch_length:] == pytest.approx(expected[50 * epoch_length:], rel=1e-9)


# --- counts: tools/get_flops.py (the paper's figures for every config: tests/test_configs/test_model_index.py) ---


def test_get_flops_counts_metanext_attn_as_the_paper(capsys):
    """MetaNeXt-Attn's 4.6G holds only with the attention's two matrix products counted (196 tokens, 12 blocks:
    0.35G of it)."""
    require_config('isotropic/metanext_attn_s_iso_in1k.py')
    load_tool('get_flops').main([str(REPO / 'configs' / 'isotropic' / 'metanext_attn_s_iso_in1k.py'), '--shape', '224'])
    out = capsys.readouterr().out
    counted = {line.split(':')[0].strip(): float(line.split(':')[1].split()[0]) for line in out.splitlines()[1:]}
    assert (round(counted['params']), round(counted['MACs'], 1)) == (22, 4.6), out


# --- dense prediction: the backbones in mmseg/mmdet, the isotropic UperNet config ---
@pytest.mark.parametrize('scope', ['mmseg', 'mmdet'])
def test_backbones_build_in_downstream_scopes(scope):
    table10 = load_config('convnext_variants/convnext_t_k3_par1_4_in1k.py').model.backbone
    backbone = build(dict(table10, arch=dict(depths=SMALL_DEPTHS, dims=SMALL_DIMS), out_indices=(0, 1, 2, 3),
                          out_norms=True), scope)
    assert isinstance(backbone, MetaNeXt)
    outs = backbone(torch.randn(1, 3, 64, 96))
    assert [tuple(o.shape[1:]) for o in outs] == [(c, 64 // s, 96 // s) for c, s in zip(SMALL_DIMS, (4, 8, 16, 32))]
    iso = build(dict(type='IsotropicInceptionNeXt', arch=dict(depth=3, channels=64, token_mixer=dict(
        type='InceptionDWConv2d')), out_indices=(0, 2), out_norms=True), scope)
    assert isinstance(iso, MetaNeXtIsotropic)
    assert [tuple(o.shape) for o in iso(torch.randn(1, 3, 64, 96))] == [(1, 64, 4, 6)] * 2


@pytest.mark.integration
def test_isotropic_upernet_trains_on_synthetic_scenes(tmp_path):
    """The UperNet config on a shrunken backbone, started from an ImageNet classifier checkpoint of the shrunken
    isotropic model (the hand-off its init_cfg names), trains two iterations on the synthetic scenes and validates;
    MultiLevelNeck turns the stride-16 block outputs into strides 4, 8, 16, 32."""
    from mmengine.runner import Runner

    channels = 48
    arch = dict(IsotropicInceptionNeXt.arch_settings['small'], depth=4, channels=channels)
    cls_cfg = load_config('isotropic/incnext_s_iso_in1k.py')
    cls_cfg.model.backbone.arch = arch
    cls_cfg.model.head.in_channels = channels
    classifier = build(cls_cfg.model)
    checkpoint = tmp_path / 'epoch_300.pth'
    torch.save(dict(meta=dict(), state_dict=classifier.state_dict()), checkpoint)

    cfg = load_config('isotropic/upernet_incnext_s_iso_ade20k.py')
    demo = load_config('demo/upernet_incnext_demo.py')
    bn = dict(type='BN', requires_grad=True)
    cfg.model.backbone.update(arch=arch, out_indices=(0, 1, 2, 3), init_cfg=dict(cfg.model.backbone.init_cfg,
                                                                                   checkpoint=str(checkpoint)))
    cfg.model.neck.update(in_channels=[channels] * 4, out_channels=channels)
    cfg.model.decode_head.update(in_channels=[channels] * 4, channels=32, num_classes=demo.num_classes, norm_cfg=bn)
    cfg.model.auxiliary_head.update(in_channels=channels, channels=16, num_classes=demo.num_classes, norm_cfg=bn)
    cfg.model.data_preprocessor.size = (64, 64)
    # The demo's synthetic scenes and pipelines (ADE20K's layout and loading path), a few small ones.
    data = dict(data_root=str(tmp_path / 'scenes'), num_train=4, num_val=2, image_size=64)
    for loader in ('train_dataloader', 'val_dataloader'):
        cfg[loader] = dict(demo[loader], batch_size=2, num_workers=0, persistent_workers=False,
                           dataset=dict(demo[loader].dataset, **data))
    cfg.test_dataloader = cfg.val_dataloader
    cfg.train_cfg.update(max_iters=2, val_interval=2)
    cfg.param_scheduler = [dict(type='ConstantLR', factor=1., by_epoch=False)]
    cfg.default_hooks.checkpoint.interval = 2
    cfg.work_dir = str(tmp_path / 'work_dir')
    runner = Runner.from_cfg(cfg)
    model = runner.model
    model.init_weights()  # as runner.train() will
    with torch.no_grad():
        assert torch.equal(model.backbone.blocks[3].mlp.fc2.weight, classifier.backbone.blocks[3].mlp.fc2.weight)
        feats = model.extract_feat(torch.randn(1, 3, 64, 64))
    assert [tuple(f.shape[2:]) for f in feats] == [(16, 16), (8, 8), (4, 4), (2, 2)]
    runner.train()
    assert Path(cfg.work_dir, 'iter_2.pth').is_file()
    assert 0 <= runner.val_loop.run()['mIoU'] <= 100


# --- docs/paper_architectures.md ---
def test_docs_page_shows_every_config_with_the_counted_sizes():
    """Every config of the paper's other architectures has its row, and each row's "ours" column is the model
    index's count (get_flops', tests/test_configs/test_model_index.py) at the precision of the paper's figure
    beside it."""
    page = (REPO / 'docs' / 'paper_architectures.md').read_text(encoding='utf-8')
    size = re.compile(r'^(\d+(?:\.\d+)?[MG]) / (\d+(?:\.\d+)?G)$')
    rows = {}
    for line in page.splitlines():
        link = re.search(r'\[(\w+)\]\(\.\./configs/([\w/]+)\.py\)', line)
        cells = [cell.strip() for cell in line.strip().strip('|').split('|')]
        sizes = [size.match(cell).groups() for cell in cells if size.match(cell)]
        if link and sizes:
            assert link.group(2).endswith(link.group(1)), line
            rows[link.group(1)] = sizes
    folders = ('ablation', 'convnext_variants', 'isotropic')
    configs = {p.stem for folder in folders for p in (REPO / 'configs' / folder).glob('*.py')}
    assert configs <= set(rows), sorted(configs - set(rows))
    index = entries()
    for name, sizes in rows.items():
        (ours_params, ours_macs), *paper = sizes
        meta = index[name].metadata
        # The paper's precision where it has the model, else as printed.
        params_format, macs_format = paper[0] if paper else (ours_params, ours_macs)
        assert (ours_params, ours_macs) == (paper_precision(meta.parameters, params_format),
                                            paper_precision(meta.flops, macs_format)), name
        if name in PAPER_SIZES:
            assert tuple(paper[0]) == PAPER_SIZES[name], name

