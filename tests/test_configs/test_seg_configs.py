"""The six ADE20K configs: the paper's recipe, building, optimizer groups, --tta, and the paper's model sizes."""
import copy
import functools

import pytest
import torch
from mmengine.analysis import FlopAnalyzer
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from helpers import load_config, require

from mmincnext.utils import sync_bn_to_bn

RELEASE = 'https://github.com/sail-sg/inceptionnext/releases/download/model/inceptionnext_{}.pth'
ARCHS = dict(t='tiny', s='small', b='base')
# The paper's table: params (M, rounded), MACs (G, rounded), the input they are counted at, drop path.
PAPER = {
    'upernet_incnext_t_ade20k.py': (56, 933, (512, 2048), 0.2),
    'upernet_incnext_s_ade20k.py': (78, 1020, (512, 2048), 0.3),
    'upernet_incnext_b_ade20k.py': (115, 1159, (512, 2048), 0.4),
    'fpn_incnext_t_ade20k.py': (28, 44, (512, 512), 0.1),
    'fpn_incnext_s_ade20k.py': (50, 65, (512, 512), 0.2),
    'fpn_incnext_b_ade20k.py': (85, 100, (512, 512), 0.2),
}


@functools.lru_cache(maxsize=None)
def _load(name) -> Config:
    return load_config(name)


def load(name) -> Config:
    return copy.deepcopy(_load(name))


def build_model(cfg: Config):
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    model_cfg = cfg.model.copy()
    sync_bn_to_bn(model_cfg)
    return MODELS.build(model_cfg)


@pytest.mark.parametrize('name', sorted(PAPER))
def test_config_follows_paper_recipe(name):
    cfg = load(name)
    size = name.split('_')[2]
    upernet = name.startswith('upernet')
    assert cfg.default_scope == 'mmseg'
    backbone = cfg.model.backbone
    assert backbone.type == 'InceptionNeXt' and backbone.arch == ARCHS[size]
    assert backbone.drop_path_rate == PAPER[name][3]
    assert backbone.init_cfg == dict(type='Pretrained', checkpoint=RELEASE.format(ARCHS[size]))
    assert backbone.norm_cfg.type == 'SyncBN' and backbone.out_norms
    assert cfg.model.pretrained is None
    assert cfg.model.decode_head.num_classes == 150
    assert cfg.crop_size == (512, 512) and cfg.model.data_preprocessor.size == (512, 512)
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        assert cfg[loader].dataset.type == 'CheckedADE20KDataset'
        assert cfg[loader].dataset.data_root == 'data/ade/ADEChallengeData2016'
    optimizer = cfg.optim_wrapper.optimizer
    assert cfg.optim_wrapper.type == 'OptimWrapper' and optimizer.type == 'AdamW'
    schedulers = {s.type: s for s in cfg.param_scheduler}
    if upernet:
        assert cfg.train_cfg.max_iters == 160000 and cfg.train_dataloader.batch_size == 2  # x 8 GPUs = 16
        assert (optimizer.lr, optimizer.weight_decay) == (6e-5, 0.01)
        assert schedulers['LinearLR'].end == 1500 == schedulers['PolyLR'].begin
        assert (schedulers['PolyLR'].power, schedulers['PolyLR'].end) == (1.0, 160000)
        assert cfg.model.decode_head.type == 'UPerHead' and cfg.model.decode_head.channels == 512
        aux = cfg.model.auxiliary_head
        assert (aux.type, aux.in_index, aux.channels, aux.num_classes) == ('FCNHead', 2, 256, 150)
        assert aux.loss_decode.loss_weight == 0.4
    else:
        assert cfg.train_cfg.max_iters == 40000 and cfg.train_dataloader.batch_size == 4  # x 8 GPUs = 32
        assert (optimizer.lr, optimizer.weight_decay) == (2e-4, 1e-4)
        assert set(schedulers) == {'PolyLR'} and schedulers['PolyLR'].power == 0.9
        assert (cfg.model.neck.type, cfg.model.neck.out_channels) == ('FPN', 256)
        assert (cfg.model.decode_head.type, cfg.model.decode_head.channels) == ('FPNHead', 128)
    # Test images: 2048x512 resize; FPN (after PoolFormer) then rounds the sides to multiples of 32.
    test_transforms = [t.type for t in cfg.test_dataloader.dataset.pipeline]
    assert test_transforms == ['LoadImageFromFile', 'Resize'] + ([] if upernet else ['ResizeToMultiple']) + [
        'LoadAnnotations', 'PackSegInputs']
    assert cfg.val_dataloader.dataset.pipeline == cfg.test_dataloader.dataset.pipeline
    # The inherited SGD settings must not leak into AdamW.
    assert set(optimizer) <= {'type', 'lr', 'betas', 'weight_decay'}


def test_upernet_weight_decay_skips_norms_and_layer_scales():
    cfg = load('upernet_incnext_t_ade20k.py')
    cfg.model.backbone.arch = dict(depths=(1, 1, 1, 1), dims=(16, 32, 64, 128))
    cfg.model.decode_head.update(in_channels=[16, 32, 64, 128], channels=16)
    cfg.model.auxiliary_head.update(in_channels=64, channels=8)
    model = build_model(cfg)
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    decay = {}
    for group in wrapper.optimizer.param_groups:
        for param in group['params']:
            decay[id(param)] = group['weight_decay']
    names = dict(model.named_parameters())
    assert decay[id(names['backbone.stages.0.blocks.0.gamma'])] == 0
    assert decay[id(names['backbone.stages.0.blocks.0.norm.weight'])] == 0
    assert decay[id(names['backbone.norm0.bias'])] == 0
    assert decay[id(names['backbone.stem.1.weight'])] == 0  # BN, named by position
    assert decay[id(names['decode_head.bottleneck.bn.weight'])] == 0
    assert decay[id(names['backbone.stages.0.blocks.0.mlp.fc1.weight'])] == 0.01
    assert decay[id(names['decode_head.conv_seg.weight'])] == 0.01


def test_tta_model_and_pipeline_build():
    from mmcv.transforms import Compose
    SegTTAModel = require('mmseg.models').SegTTAModel
    from mmseg.registry import MODELS

    cfg = load('upernet_incnext_t_ade20k.py')
    cfg.model.backbone.arch = dict(depths=(1, 1, 1, 1), dims=(16, 32, 64, 128))
    sync_bn_to_bn(cfg.model)
    init_default_scope('mmseg')
    tta = MODELS.build(dict(cfg.tta_model, module=cfg.model))
    # mmseg's SegTTAModel (softmax average of the views), keeping the single-scale view: the views themselves are
    # checked against mmseg 0.x's protocol in tests/test_datasets/test_tta.py.
    assert isinstance(tta, SegTTAModel) and type(tta).__name__ == 'SingleAndMultiScaleTTAModel'
    assert [t.prob for t in cfg.tta_pipeline[1].transforms[1]] == [0., 1.]
    Compose(cfg.tta_pipeline)


def count_macs(model, height, width) -> int:
    """The 'flops' of ``mmengine.analysis.get_model_complexity_info`` (fvcore's convention: one multiply-add
    counts 1), without the activation count it also traces for."""
    analyzer = FlopAnalyzer(model, torch.zeros(1, 3, height, width))
    analyzer.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    with torch.no_grad():
        return analyzer.total()


@pytest.mark.parametrize('name', sorted(PAPER))
def test_model_size_matches_paper(name):
    """Parameters (auxiliary head included: without it UperNet-T has 55.5M, the paper's 56M follows Swin's count
    with it) and MACs as mmengine counts them (the segmentation forward: backbone and decode head).

    A trace at 512x2048 costs ~1 TMAC of CPU time, so the MACs are extrapolated, exactly: for inputs whose sides are
    multiples of 32, every layer of these fully convolutional models works on an H/s x W/s map, except the pyramid
    pooling convs on fixed 1-6 grids, so MACs = c + k * H * W. Two small traces give c and k; a third checks the
    form holds (as integers); a direct 512x512 count of FPN-T gave the identical 43.648G.
    """
    params_m, macs_g, (height, width), _ = PAPER[name]
    model = build_model(load(name)).eval()
    params = sum(p.numel() for p in model.parameters())
    assert round(params / 1e6) == params_m, f'{params / 1e6:.2f}M parameters, paper {params_m}M'
    small, wide, large = count_macs(model, 32, 32), count_macs(model, 32, 64), count_macs(model, 64, 64)
    assert large - small == 3 * (wide - small), 'MACs are not affine in H x W'
    per_pixel = (wide - small) / (32 * 32)
    macs = small + per_pixel * (height * width - 32 * 32)
    # The paper rounds (FPN) or truncates (UperNet: 933.8G -> 933G); 1% covers both.
    assert macs / 1e9 == pytest.approx(macs_g, rel=0.01), f'{macs / 1e9:.1f}G MACs, paper {macs_g}G'
