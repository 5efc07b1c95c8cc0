"""The ConvNeXt-recipe configs (UperNet T/S/B on ADE20K, Mask R-CNN 3x, Cascade Mask R-CNN T/S/B 1x/3x on COCO).

Independent references: mmseg's and mmdet's own ConvNeXt configs (their .mim copies), whose recipe, heads and
schedules ours must equal with only the backbone swapped, and timm's ``inception_next_*`` for the backbone's size.
A shrunk model of each new family trains a step through the config's own optimizer wrapper (the layer-decay
constructor, on the machine-adapted AMP wrapper) and predicts on tiny inputs.
"""

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from helpers import config_copy, require, timm_backbone_params, unscoped

from mmincnext.utils import adapt_to_machine, build_model_from_config

# mmseg's and mmdet's ConvNeXt configs, the references here, import mmpretrain's ConvNeXt (custom_imports).
require('mmpretrain')

SEG = {  # ours -> mmseg's, with mmseg's stage-wise num_layers
    'upernet_incnext_t_ade20k_convnext_recipe.py': 'convnext-tiny_upernet_8xb2-amp-160k_ade20k-512x512.py',
    'upernet_incnext_s_ade20k_convnext_recipe.py': 'convnext-small_upernet_8xb2-amp-160k_ade20k-512x512.py',
    'upernet_incnext_b_ade20k_convnext_recipe.py': 'convnext-base_upernet_8xb2-amp-160k_ade20k-512x512.py',
}
CASCADE_T = 'cascade-mask-rcnn_convnext-t-p4-w7_fpn_4conv1fc-giou_amp-ms-crop-3x_coco.py'
CASCADE_S = 'cascade-mask-rcnn_convnext-s-p4-w7_fpn_4conv1fc-giou_amp-ms-crop-3x_coco.py'
DET = {  # ours (3x) -> mmdet's; B follows mmdet's S (mmdet has no ConvNeXt-B cascade) but for CONVNEXT_B_CASCADE
    'mask_rcnn_incnext_t_coco_3x_convnext_recipe.py': 'mask-rcnn_convnext-t-p4-w7_fpn_amp-ms-crop-3x_coco.py',
    'cascade_mask_rcnn_incnext_t_coco_3x.py': CASCADE_T,
    'cascade_mask_rcnn_incnext_s_coco_3x.py': CASCADE_S,
    'cascade_mask_rcnn_incnext_b_coco_3x.py': CASCADE_S,
}
# ConvNeXt's own Cascade Mask R-CNN ConvNeXt-B ImageNet-1K config (facebookresearch/ConvNeXt, object_detection/configs/
# convnext/cascade_mask_rcnn_convnext_base_patch4_window7_mstrain_480-800_giou_4conv1f_adamw_3x_coco_in1k.py, an
# mmdet 2.x file that mmengine cannot load): its optimizer and drop path, which B's configs must carry instead of S's.
CONVNEXT_B_CASCADE = dict(lr=2e-4, weight_decay=0.05, decay_rate=0.8, decay_type='layer_wise', num_layers=12,
                          drop_path_rate=0.7)
ARCHS = {'_t_': 'tiny', '_s_': 'small', '_b_': 'base'}
RELEASE = 'https://github.com/sail-sg/inceptionnext/releases/download/model/inceptionnext_{}.pth'
CONSTRUCTOR = 'InceptionNeXtLearningRateDecayOptimizerConstructor'


def arch_of(name: str) -> str:
    return next(arch for key, arch in ARCHS.items() if key in name)


def upstream_of(name: str) -> Config:
    """The mmseg / mmdet ConvNeXt config that ``configs/<name>`` follows."""
    return config_copy(f'mmseg::convnext/{SEG[name]}' if name in SEG else f'mmdet::convnext/{DET[name]}')


def without(cfg: dict, *keys) -> dict:
    return {k: v for k, v in unscoped(cfg).items() if k not in keys}


def optimization(cfg: Config) -> dict:
    """What a recipe trains with: the optimizer wrapper (less the constructor's name), schedule and iterations."""
    loop = cfg.train_cfg.get('max_iters', cfg.train_cfg.get('max_epochs'))
    return dict(optim_wrapper=without(cfg.optim_wrapper, 'constructor'), param_scheduler=unscoped(cfg.param_scheduler),
                loop=loop, batch_size=cfg.train_dataloader.batch_size,
                drop_path_rate=cfg.model.backbone.drop_path_rate)


@pytest.mark.parametrize('name', sorted(SEG) + sorted(DET))
def test_recipe_and_heads_equal_upstream_convnext_config(name):
    cfg = config_copy(name)
    reference = upstream_of(name)
    expected = optimization(reference)
    if name.startswith('cascade_mask_rcnn_incnext_b'):  # B's own upstream values where they differ from S's
        ref = CONVNEXT_B_CASCADE
        expected['optim_wrapper']['optimizer'].update(lr=ref['lr'], weight_decay=ref['weight_decay'])
        expected['optim_wrapper']['paramwise_cfg'] = {k: ref[k] for k in ('decay_rate', 'decay_type', 'num_layers')}
        expected['drop_path_rate'] = ref['drop_path_rate']
    assert optimization(cfg) == expected
    assert cfg.optim_wrapper.constructor == CONSTRUCTOR and cfg.optim_wrapper.type == 'AmpOptimWrapper'
    backbone = cfg.model.backbone
    assert (backbone.type, backbone.arch) == ('InceptionNeXt', arch_of(name))
    assert backbone.init_cfg == dict(type='Pretrained', checkpoint=RELEASE.format(arch_of(name)))
    assert backbone.norm_cfg.type == 'SyncBN'
    # Everything but the backbone is mmseg's / mmdet's (B's neck: ConvNeXt-B's widths, which are InceptionNeXt-B's).
    model, ref_model = cfg.model.to_dict(), reference.model.to_dict()
    if name.startswith('cascade_mask_rcnn_incnext_b'):
        ref_model['neck']['in_channels'] = [128, 256, 512, 1024]
    skip = ('backbone', 'data_preprocessor', 'pretrained', 'init_cfg')
    assert without(model, *skip) == without(ref_model, *skip)
    assert unscoped(cfg.model.data_preprocessor) == unscoped(reference.model.data_preprocessor)
    for loader in ('train_dataloader', 'test_dataloader'):
        assert unscoped(cfg[loader].dataset.pipeline) == unscoped(reference[loader].dataset.pipeline), loader


@pytest.mark.parametrize('size', 'tsb')
def test_cascade_1x_is_3x_model_on_mmdet_1x_schedule(size):
    one = config_copy(f'cascade_mask_rcnn_incnext_{size}_coco.py')
    three = config_copy(f'cascade_mask_rcnn_incnext_{size}_coco_3x.py')
    mmdet_1x = config_copy('mmdet::cascade_rcnn/cascade-mask-rcnn_r50_fpn_1x_coco.py')
    assert one.model == three.model and one.optim_wrapper == three.optim_wrapper
    # mmdet's 1x steps; the recipe's 1000-iteration warm-up (mmdet's R-50 1x warms up over 500).
    assert one.train_cfg.max_epochs == 12 and unscoped(one.param_scheduler[1]) == unscoped(mmdet_1x.param_scheduler[1])
    assert one.param_scheduler[0] == three.param_scheduler[0]
    assert unscoped(one.train_dataloader.dataset.pipeline) == unscoped(mmdet_1x.train_dataloader.dataset.pipeline)


def test_upernet_recipe_keeps_the_paper_model():
    """Only the recipe changes: the model (hence its size and MACs, held in test_seg_configs) is the paper
    config's, apart from drop path and the sliding-window test."""
    for size in 'tsb':
        recipe = config_copy(f'upernet_incnext_{size}_ade20k_convnext_recipe.py')
        paper = config_copy(f'upernet_incnext_{size}_ade20k.py')
        for cfg in (recipe, paper):
            cfg.model.backbone.pop('drop_path_rate')
            cfg.model.pop('test_cfg')
        assert recipe.model == paper.model


def count(model: torch.nn.Module, in_backbone: bool) -> int:
    return sum(p.numel() for n, p in model.named_parameters() if n.startswith('backbone.') == in_backbone)


def build_bn(cfg: Config) -> torch.nn.Module:
    cfg.model.backbone.pop('init_cfg', None)
    return build_model_from_config(cfg)  # SyncBN -> BN, no weights loaded


# Parameter counts (M) as mmengine reports them, held to the independent sum below.
SIZES = {
    'upernet_incnext_t_ade20k_convnext_recipe.py': 56.40,
    'upernet_incnext_s_ade20k_convnext_recipe.py': 77.72,
    'upernet_incnext_b_ade20k_convnext_recipe.py': 114.98,
    'mask_rcnn_incnext_t_coco_3x_convnext_recipe.py': 44.25,
    'cascade_mask_rcnn_incnext_t_coco_3x.py': 82.09,
    'cascade_mask_rcnn_incnext_s_coco_3x.py': 103.40,
    'cascade_mask_rcnn_incnext_b_coco_3x.py': 138.68,
}


@pytest.mark.parametrize('name', sorted(SIZES))
def test_size_is_timm_backbone_plus_upstream_heads(name):
    """ours = timm's inception_next_* without its head + our 4 output norms + the non-backbone parameters of
    mmseg's / mmdet's own ConvNeXt model (full size, BN, not initialised)."""
    import mmpretrain.models  # noqa: F401  (the upstream configs' mmpretrain.ConvNeXt)
    arch = arch_of(name)
    model = build_bn(config_copy(name))
    reference_cfg = upstream_of(name)
    if name.startswith('cascade_mask_rcnn_incnext_b'):
        reference_cfg.model.backbone.arch = 'base'
        reference_cfg.model.neck.in_channels = [128, 256, 512, 1024]
    reference = build_bn(reference_cfg)
    out_norms = 2 * sum(model.backbone.dims)  # weight and bias of norm0..norm3
    assert count(model, True) == timm_backbone_params(arch) + out_norms
    assert count(model, False) == count(reference, False)
    total = count(model, True) + count(model, False)
    assert round(total / 1e6, 2) == SIZES[name], total


SHRUNK_DIMS = (8, 16, 32, 64)


def shrunk(name: str) -> Config:
    """The config as tools/train.py runs it on this machine (SyncBN -> BN, AMP -> CPU bfloat16 autocast), with a
    small InceptionNeXt of the same structure (depths 1, 1, 3, 1: stage 2 spans two layer-decay groups)."""
    cfg = config_copy(name)
    adapt_to_machine(cfg, 'none')
    assert torch.cuda.is_available() or cfg.optim_wrapper.type == 'CPUBF16OptimWrapper'
    # No stochastic depth: with one stage-3 block and two images, a draw that drops the block for both leaves its
    # parameters without gradient, and the step's lr could not be read from them.
    cfg.model.backbone.update(arch=dict(depths=(1, 1, 3, 1), dims=SHRUNK_DIMS), init_cfg=None, drop_path_rate=0.)
    return cfg


def train_one_step(model, data, cfg):
    """One training step through the config's optimizer wrapper; returns the losses and the lr the step applied
    to the stem, a stage-3 block (its layer scale: the 1e-6 layer scales shrink the gradients of the block's convs
    to the order of Adam's eps) and the last head layer: without weight decay, AdamW's first step moves every
    weight by exactly lr (|m / sqrt(v)| = 1 after bias correction)."""
    cfg.optim_wrapper.optimizer.weight_decay = 0.
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    params = dict(model.named_parameters())
    watched = {'stem': 'backbone.stem.0.weight', 'stage3': 'backbone.stages.3.blocks.0.gamma'}
    watched['head'] = next(n for n in reversed(params) if not n.startswith('backbone.') and params[n].ndim > 1)
    before = {k: params[n].detach().clone() for k, n in watched.items()}
    model.train()
    losses = model.train_step(data, wrapper)
    return losses, {k: (params[n].detach() - before[k]).abs().max().item() for k, n in watched.items()}


def test_upernet_recipe_trains_a_step_and_predicts():
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    cfg = shrunk('upernet_incnext_t_ade20k_convnext_recipe.py')
    cfg.model.decode_head.update(in_channels=list(SHRUNK_DIMS), channels=16)
    cfg.model.auxiliary_head.update(in_channels=SHRUNK_DIMS[2], channels=8)
    cfg.model.data_preprocessor.size = (64, 64)
    cfg.model.test_cfg.update(crop_size=(64, 64), stride=(32, 32))  # still sliding: 2 x 3 windows below
    torch.manual_seed(0)
    model = build_model_from_config(cfg)
    gen = torch.Generator().manual_seed(0)
    data = dict(inputs=[torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8, generator=gen) for _ in range(2)],
                data_samples=[SegDataSample(metainfo=dict(img_shape=(64, 64), ori_shape=(64, 64)),
                                            gt_sem_seg=PixelData(data=torch.randint(0, 150, (1, 64, 64),
                                                                                    generator=gen)))
                              for _ in range(2)])
    losses, lr = train_one_step(model, data, cfg)
    assert {'decode.loss_ce', 'aux.loss_ce'} <= set(losses) and all(torch.isfinite(v) for v in losses.values())
    # Stage-wise decay 0.9 over 6: heads 1e-4, stage 3 (id 4) 0.9^3, stem (id 0) 0.9^7 of it.
    assert lr['head'] == pytest.approx(1e-4, rel=1e-3)
    assert lr['stage3'] == pytest.approx(1e-4 * 0.9**3, rel=1e-3)
    assert lr['stem'] == pytest.approx(1e-4 * 0.9**7, rel=1e-3)
    model.eval()
    with torch.no_grad():
        (result, ) = model.test_step(dict(inputs=[torch.randint(0, 256, (3, 96, 128), dtype=torch.uint8)],
                                          data_samples=[SegDataSample(metainfo=dict(img_shape=(96, 128),
                                                                                    ori_shape=(96, 128)))]))
    assert result.pred_sem_seg.data.shape == (1, 96, 128) and result.seg_logits.data.shape == (150, 96, 128)


def narrow_heads(node, channels: int = 32, fc_channels: int = 64):
    """mmdet's 256-channel FPN / RPN / RoI heads and 1024-unit fcs narrowed, in place, for a fast CPU step."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ('in_channels', 'out_channels', 'feat_channels', 'conv_out_channels') and value == 256:
                node[key] = channels
            elif key == 'fc_out_channels' and value == 1024:
                node[key] = fc_channels
            else:
                narrow_heads(value, channels, fc_channels)
    elif isinstance(node, list):
        for value in node:
            narrow_heads(value, channels, fc_channels)


def test_cascade_trains_a_step_and_predicts():
    from mmdet.testing import demo_mm_inputs
    cfg = shrunk('cascade_mask_rcnn_incnext_t_coco_3x.py')
    cfg.model.neck.in_channels = list(SHRUNK_DIMS)
    narrow_heads(cfg.model)
    cfg.model.train_cfg.rpn_proposal.max_per_img = 64
    for stage in cfg.model.train_cfg.rcnn:
        stage.sampler.num = 16
    cfg.model.test_cfg.rpn.max_per_img = 16
    cfg.model.test_cfg.rcnn.max_per_img = 8
    cfg.model.test_cfg.rcnn.score_thr = 0.  # untrained scores over 80 classes lie below mmdet's 0.05
    torch.manual_seed(0)
    model = build_model_from_config(cfg)
    data = demo_mm_inputs(batch_size=2, image_shapes=(3, 64, 64), num_items=[3, 2], num_classes=80, with_mask=True)
    losses, lr = train_one_step(model, data, cfg)
    for stage in ('s0', 's1', 's2'):
        assert {f'{stage}.loss_cls', f'{stage}.loss_bbox', f'{stage}.loss_mask'} <= set(losses)
    assert all(torch.isfinite(v).all() for v in losses.values())
    # Layer-wise decay 0.7 over 6 from lr 2e-4: heads 2e-4, stage 3 (id 6) 0.7, stem (id 0) 0.7^7 of it.
    assert lr['head'] == pytest.approx(2e-4, rel=1e-3)
    assert lr['stage3'] == pytest.approx(2e-4 * 0.7, rel=1e-3)
    assert lr['stem'] == pytest.approx(2e-4 * 0.7**7, rel=1e-3)
    model.eval()
    data = demo_mm_inputs(batch_size=1, image_shapes=(3, 64, 96), num_items=[2], num_classes=80, with_mask=True)
    with torch.no_grad():
        (result, ) = model.test_step(data)
    pred = result.pred_instances
    assert len(pred) > 0 and pred.masks.dtype == torch.bool and pred.masks.shape[1:] == result.ori_shape
