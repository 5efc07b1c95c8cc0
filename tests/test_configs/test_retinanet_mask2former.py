"""RetinaNet (COCO) and Mask2Former (ADE20K) on InceptionNeXt-T: the configs follow mmdet's / mmseg's Swin-T recipes
(RetinaNet's optimisation: mmdet's PVT RetinaNet's), their sizes equal an independent count (timm's backbone + our
output norms + the heads of mmdet's / mmseg's own Swin-T configs), and each family trains a step and predicts on CPU
in a shrunk form."""
import functools

import pytest
import timm
import torch
from mmengine.analysis import FlopAnalyzer
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.structures import PixelData
from torch.nn.modules.batchnorm import _BatchNorm
from helpers import REPO, config_copy, load_tool, require, timm_backbone_params, unscoped

from mmincnext.utils import build_model_from_config

# RetinaNet is mmdet's; Mask2Former is mmseg's and imports mmdet's models.
require('mmdet')
require('mmseg')

RETINANET = 'retinanet_incnext_t_coco.py'
MASK2FORMER = 'mask2former_incnext_t_ade20k.py'
# The same family on Swin-T, whose stage widths (96, 192, 384, 768) are InceptionNeXt-T's: identical heads.
SWIN_T = {
    RETINANET: 'mmdet::swin/retinanet_swin-t-p4-w7_fpn_1x_coco.py',
    MASK2FORMER: 'mmseg::mask2former/mask2former_swin-t_8xb2-160k_ade20k-512x512.py',
}
# The RetinaNet optimisation recipe: mmdet's PVT RetinaNet (AdamW), where its Swin-T RetinaNet keeps R50's SGD.
PVT_RETINANET = 'mmdet::pvt/retinanet_pvt-t_fpn_1x_coco.py'
RELEASE = 'https://github.com/sail-sg/inceptionnext/releases/download/model/inceptionnext_tiny.pth'
DIMS_T = (96, 192, 384, 768)
TINY_ARCH = dict(depths=(1, 1, 1, 1), dims=(16, 32, 64, 128))


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@functools.lru_cache(maxsize=None)
def full_size(name: str):
    """(ours, mmdet's / mmseg's Swin-T model) built from the configs: BN for SyncBN, not initialised."""
    return build_model_from_config(config_copy(name)), build_model_from_config(config_copy(SWIN_T[name]))


def test_retinanet_config_follows_mmdet_swin_recipe():
    cfg, swin = config_copy(RETINANET), config_copy(SWIN_T[RETINANET])
    backbone = cfg.model.backbone
    assert cfg.default_scope == 'mmdet' and backbone.type == 'InceptionNeXt' and backbone.arch == 'tiny'
    assert backbone.init_cfg == dict(type='Pretrained', checkpoint=RELEASE)
    # Strides 8-32 into the FPN, as Swin-T's: the same stages, widths, start level, extra convs and outputs.
    assert backbone.out_indices == swin.model.backbone.out_indices == (1, 2, 3)
    assert backbone.drop_path_rate == swin.model.backbone.drop_path_rate == 0.2
    assert backbone.norm_cfg.type == 'SyncBN'
    assert unscoped(cfg.model.neck) == unscoped(swin.model.neck)
    assert unscoped(cfg.model.bbox_head) == unscoped(swin.model.bbox_head)
    assert unscoped((cfg.model.train_cfg, cfg.model.test_cfg)) == unscoped((swin.model.train_cfg, swin.model.test_cfg))
    assert cfg.train_dataloader.dataset.type == cfg.val_dataloader.dataset.type == 'CheckedCocoDataset'
    assert unscoped(cfg.train_dataloader.dataset.pipeline) == unscoped(swin.train_dataloader.dataset.pipeline)
    assert cfg.val_evaluator.metric == 'bbox' and cfg.train_cfg.max_epochs == 12


def test_retinanet_trains_with_mmdet_pvt_retinanet_recipe():
    """The optimisation of mmdet's PVT RetinaNet, exactly: AdamW lr 1e-4 with weight decay 1e-4 on every parameter
    (no paramwise_cfg), 500-iteration linear warm-up, steps at 8 and 11 of 12 epochs; not Swin-T's R50 SGD."""
    cfg, pvt = config_copy(RETINANET), config_copy(PVT_RETINANET)
    for key in ('optim_wrapper', 'param_scheduler', 'train_cfg', 'auto_scale_lr'):
        assert unscoped(cfg[key]) == unscoped(pvt[key]), key
    assert unscoped(cfg.optim_wrapper) == dict(type='OptimWrapper',
                                               optimizer=dict(type='AdamW', lr=1e-4, weight_decay=1e-4))
    assert unscoped(cfg.param_scheduler[0]) == dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0,
                                                    end=500)
    assert cfg.train_dataloader.batch_size == pvt.train_dataloader.batch_size == 2  # x 8 GPUs = 16


def test_mask2former_config_follows_mmseg_swin_recipe():
    cfg, swin = config_copy(MASK2FORMER), config_copy(SWIN_T[MASK2FORMER])
    backbone = cfg.model.backbone
    assert cfg.default_scope == 'mmseg' and backbone.type == 'InceptionNeXt' and backbone.arch == 'tiny'
    assert backbone.init_cfg == dict(type='Pretrained', checkpoint=RELEASE)
    assert backbone.out_indices == (0, 1, 2, 3) and backbone.out_norms and backbone.norm_cfg.type == 'SyncBN'
    assert backbone.drop_path_rate == swin.model.backbone.drop_path_rate == 0.3
    # in_channels [96, 192, 384, 768], 100 queries, ...
    assert unscoped(cfg.model.decode_head) == unscoped(swin.model.decode_head)
    assert cfg.model.decode_head.num_queries == 100 and cfg.model.decode_head.num_classes == 150
    assert unscoped(cfg.model.data_preprocessor) == unscoped(swin.model.data_preprocessor)
    assert cfg.crop_size == (512, 512)
    for key in ('param_scheduler', 'train_cfg'):
        assert unscoped(cfg[key]) == unscoped(swin[key]), key
    assert cfg.train_cfg.max_iters == 160000 and cfg.train_dataloader.batch_size == 2  # x 8 GPUs = 16
    assert unscoped(cfg.train_dataloader.dataset.pipeline) == unscoped(swin.train_dataloader.dataset.pipeline)
    assert cfg.train_dataloader.dataset.type == cfg.test_dataloader.dataset.type == 'CheckedADE20KDataset'
    assert unscoped(cfg.optim_wrapper.optimizer) == unscoped(swin.optim_wrapper.optimizer)  # AdamW 1e-4, wd 0.05
    assert unscoped(cfg.optim_wrapper.clip_grad) == unscoped(swin.optim_wrapper.clip_grad)
    assert cfg.runner_type == 'MMIncNeXtRunner'
    assert {'mmdet.models', 'mmincnext'} <= set(cfg.custom_imports.imports)


@pytest.mark.parametrize('name', [RETINANET, MASK2FORMER])
def test_params_equal_timm_backbone_plus_norms_plus_swin_t_heads(name):
    ours, swin = full_size(name)
    returned = ours.backbone.out_indices
    norms = sum(2 * DIMS_T[i] for i in returned)  # weight and bias of each returned stage's output norm
    heads = count(swin) - count(swin.backbone)
    assert count(ours.backbone) == timm_backbone_params('tiny') + norms
    assert count(ours) == timm_backbone_params('tiny') + norms + heads
    assert [n for n, _ in ours.backbone.named_children() if n.startswith('norm')] == [f'norm{i}' for i in returned]


def check_mask2former_parameter_groups(model: torch.nn.Module, cfg: Config):
    """Swin-T's groups on InceptionNeXt, through the config's own optimizer constructor: the backbone at 0.1x the lr,
    none of its norms (every BN, found by type) nor its layer scales decayed; the head's embeddings not decayed; the
    rest decayed at the full lr."""
    groups = build_optim_wrapper(model, cfg.optim_wrapper).optimizer.param_groups
    lr, wd = cfg.optim_wrapper.optimizer.lr, cfg.optim_wrapper.optimizer.weight_decay
    setting = {id(p): (g['lr'], g['weight_decay']) for g in groups for p in g['params']}
    backbone_norms = {id(p) for m in model.backbone.modules() if isinstance(m, _BatchNorm) for p in m.parameters()}
    depths = [len(stage.blocks) for stage in model.backbone.stages]
    assert len(backbone_norms) == 2 * (1 + 3 + sum(depths) + 4)  # stem, downsamples, blocks, output norms
    for name, param in model.named_parameters():
        if name.startswith('backbone.'):
            no_decay = id(param) in backbone_norms or name.endswith('.gamma')
            assert setting[id(param)] == pytest.approx((0.1 * lr, 0. if no_decay else wd)), name
    names = dict(model.named_parameters())
    for name in ('decode_head.query_embed.weight', 'decode_head.query_feat.weight', 'decode_head.level_embed.weight',
                 'decode_head.transformer_decoder.post_norm.weight'):
        assert setting[id(names[name])] == (lr, 0.), name
    for name in ('decode_head.cls_embed.weight', 'decode_head.pixel_decoder.input_convs.0.conv.weight'):
        assert setting[id(names[name])] == (lr, wd), name


def test_mask2former_parameter_groups_map_swin_t():
    model, _ = full_size(MASK2FORMER)
    assert [len(stage.blocks) for stage in model.backbone.stages] == [3, 3, 9, 3]
    check_mask2former_parameter_groups(model, config_copy(MASK2FORMER))


@pytest.mark.parametrize('arch', ['small', 'base'])
def test_mask2former_parameter_groups_hold_for_deeper_archs(arch, tmp_path):
    """A config for S or B made as a user would, inheriting the T file and changing the backbone's arch (and, for
    B's wider stages, the head's input widths) only, gets the same groups: no weight decay on any of the backbone's
    norms and layer scales, stage 2's blocks 9-26 included."""
    from mmincnext.models.backbones import InceptionNeXt
    dims = list(InceptionNeXt.arch_settings[arch]['dims'])
    child = tmp_path / f'mask2former_incnext_{arch[0]}_ade20k.py'
    child.write_text(f"_base_ = '{REPO / 'configs' / MASK2FORMER}'\n"
                     f"model = dict(backbone=dict(arch='{arch}'), decode_head=dict(in_channels={dims}))\n")
    cfg = Config.fromfile(str(child))
    cfg.model.backbone.init_cfg = None
    model = build_model_from_config(cfg)
    assert [len(stage.blocks) for stage in model.backbone.stages] == [3, 3, 27, 3]
    check_mask2former_parameter_groups(model, cfg)


def test_retinanet_macs_equal_timm_backbone_plus_norms_plus_swin_t_heads():
    """tools/get_flops.py's count of our RetinaNet (the figure docs/model_zoo.md gives at 800x1333) equals the MACs of
    timm's InceptionNeXt-T features, of the three output norms and of the neck and head in mmdet's Swin-T RetinaNet
    (its total minus its backbone), all traced by mmengine at 128x128 (feature maps 16, 8, 4 in both)."""
    size = 128
    ours = load_tool('get_flops').complexity(str(REPO / 'configs' / RETINANET), shape=[size])
    _, swin = full_size(RETINANET)
    swin = swin.eval()
    swin.forward = functools.partial(swin.forward, data_samples=None, mode='tensor')  # as in get_flops
    with torch.no_grad():
        swin_flops = FlopAnalyzer(swin, torch.rand(1, 3, size, size)).unsupported_ops_warnings(False)
        swin_heads = swin_flops.total() - swin_flops.by_module()['backbone']
        timm_model = timm.create_model('inception_next_tiny', pretrained=False).eval()
        timm_model.forward = timm_model.forward_features
        timm_features = FlopAnalyzer(timm_model, torch.rand(1, 3, size, size)).unsupported_ops_warnings(False).total()
    norms = sum(2 * DIMS_T[i] * (size // 2 ** (i + 2)) ** 2 for i in (1, 2, 3))  # BN in eval: 2 per element
    assert ours['params'] == count(full_size(RETINANET)[0])
    assert ours['macs'] == timm_features + norms + swin_heads


def shrunk(name: str) -> Config:
    """The config with a small InceptionNeXt and narrow heads, for a training step on tiny images."""
    cfg = config_copy(name)
    cfg.model.backbone.update(arch=TINY_ARCH, init_cfg=None)
    return cfg


def train_one_step(model, data, optim_wrapper) -> dict:
    """``model.train_step`` through the config's optimizer wrapper; checks that every parameter had a finite gradient
    when the optimizer stepped, and that the step moved every parameter whose gradient is not negligible (Adam's
    step is ~lr whatever the gradient's size once it exceeds eps=1e-8; a block's BN behind its 1e-6 layer scale
    gets ~1e-12 and may not move in float32)."""
    names = {id(p): n for n, p in model.named_parameters()}
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    largest_grad = {}

    def record(optimizer, args, kwargs):
        for group in optimizer.param_groups:
            for p in group['params']:
                finite = p.grad is not None and torch.isfinite(p.grad).all()
                largest_grad[names[id(p)]] = p.grad.abs().max().item() if finite else None

    optim_wrapper.optimizer.register_step_pre_hook(record)
    model.train()
    losses = model.train_step(data, optim_wrapper)
    assert all(torch.isfinite(v) for v in losses.values()), losses
    assert set(largest_grad) == set(before)
    assert not [n for n, g in largest_grad.items() if g is None], 'parameters without a finite gradient'
    moved = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert {n for n, g in largest_grad.items() if g > 1e-6} <= moved
    assert {'backbone.stem.0.weight', 'backbone.stages.3.blocks.0.mlp.fc1.weight'} <= moved
    return losses


def test_retinanet_trains_a_step_and_predicts():
    from mmdet.testing import demo_mm_inputs
    cfg = shrunk(RETINANET)
    cfg.model.neck.update(in_channels=list(TINY_ARCH['dims'][1:]), out_channels=32)
    cfg.model.bbox_head.update(in_channels=32, feat_channels=32)
    cfg.model.test_cfg.score_thr = 0.  # a model without training scores below mmdet's 0.05
    torch.manual_seed(0)
    model = build_model_from_config(cfg)
    model.init_weights()
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    data = demo_mm_inputs(batch_size=2, image_shapes=(3, 128, 128), num_items=[3, 2], num_classes=80)
    losses = train_one_step(model, data, optim_wrapper)
    assert set(losses) == {'loss', 'loss_cls', 'loss_bbox'}
    model.eval()
    with torch.no_grad():
        results = model.test_step(data)
    for result in results:
        pred = result.pred_instances
        assert 0 < len(pred) <= cfg.model.test_cfg.max_per_img
        assert pred.bboxes.shape == (len(pred), 4) and (pred.bboxes >= 0).all() and (pred.bboxes <= 128).all()
        assert ((pred.labels >= 0) & (pred.labels < 80)).all()


def test_mask2former_trains_a_step_and_predicts():
    from mmseg.structures import SegDataSample
    cfg = shrunk(MASK2FORMER)
    head, channels = cfg.model.decode_head, 32
    head.update(in_channels=list(TINY_ARCH['dims']), feat_channels=channels, out_channels=channels, num_queries=8)
    head.train_cfg.num_points = 256
    decoder = head.pixel_decoder
    decoder.encoder.num_layers = 1
    decoder.encoder.layer_cfg.self_attn_cfg.update(embed_dims=channels, num_heads=4)
    decoder.encoder.layer_cfg.ffn_cfg.update(embed_dims=channels, feedforward_channels=64)
    decoder.positional_encoding.num_feats = head.positional_encoding.num_feats = channels // 2
    layer = head.transformer_decoder.layer_cfg
    head.transformer_decoder.num_layers = 3  # one per feature level
    for attention in (layer.self_attn_cfg, layer.cross_attn_cfg):
        attention.update(embed_dims=channels, num_heads=4)
    layer.ffn_cfg.update(embed_dims=channels, feedforward_channels=64)
    cfg.model.data_preprocessor.size = (64, 64)
    torch.manual_seed(0)
    model = build_model_from_config(cfg)
    model.init_weights()
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    gen = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 4, (2, 1, 64, 64), generator=gen)
    labels[:, :, :8] = 255  # ignored pixels
    meta = dict(img_shape=(64, 64), ori_shape=(64, 64), pad_shape=(64, 64))
    data = dict(inputs=list(torch.randint(0, 256, (2, 3, 64, 64), generator=gen, dtype=torch.uint8)),
                data_samples=[SegDataSample(gt_sem_seg=PixelData(data=label), metainfo=meta) for label in labels])
    losses = train_one_step(model, data, optim_wrapper)
    assert {'decode.loss_cls', 'decode.loss_mask', 'decode.loss_dice', 'decode.d0.loss_cls'} <= set(losses)
    model.eval()
    with torch.no_grad():
        results = model.test_step(data)
    for result in results:
        assert result.seg_logits.data.shape == (150, 64, 64)
        assert result.pred_sem_seg.data.shape == (1, 64, 64)
        assert ((result.pred_sem_seg.data >= 0) & (result.pred_sem_seg.data < 150)).all()


@pytest.mark.parametrize('name', [RETINANET, MASK2FORMER])
def test_config_imports_register_its_dataset(name, tmp_path):
    """The config's own custom_imports register its dataset class, whose missing-data error names the folder."""
    from mmengine.registry import DATASETS, init_default_scope
    from mmengine.utils import import_modules_from_strings
    cfg = config_copy(name)
    import_modules_from_strings(**cfg.custom_imports)
    init_default_scope(cfg.default_scope)
    dataset = cfg.train_dataloader.dataset
    dataset.data_root = str(tmp_path / 'missing')
    with pytest.raises(FileNotFoundError, match=str(tmp_path / 'missing')):
        DATASETS.build(dataset)


def test_retinanet_training_pipeline_reads_coco(tmp_path):
    """The config's dataset and training pipeline (mmdet's: 1333x800 keep-ratio resize, flip) on a COCO-format set."""
    import json
    from mmdet.registry import DATASETS
    from mmengine.registry import init_default_scope
    from mmincnext.datasets.det import generate_synthetic_coco
    from mmincnext.datasets.synthetic_coco import CLASSES
    root = tmp_path / 'coco'
    generate_synthetic_coco(str(root), num_train_images=2, num_val_images=1, image_size=128, seed=0)
    cfg = config_copy(RETINANET)
    cfg.train_dataloader.dataset.update(data_root=str(root), metainfo=dict(classes=CLASSES))  # the set's classes
    init_default_scope('mmdet')
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    annotations = json.loads((root / 'annotations/instances_train2017.json').read_text())['annotations']
    sample = dataset[0]
    assert sample['inputs'].shape == (3, 800, 800)  # 128x128 scaled by 6.25 to fit 1333x800
    gt = sample['data_samples'].gt_instances
    assert len(gt) == sum(a['image_id'] == sample['data_samples'].img_id for a in annotations) > 0
    assert (gt.bboxes.tensor >= 0).all() and (gt.bboxes.tensor <= 800).all()


def test_mask2former_training_pipeline_reads_ade20k(tmp_path):
    """The config's dataset and training pipeline (mmseg's Mask2Former one: short-edge resize to 256-1024, 512 crop,
    flip, photometric distortion) on an ADE20K-format set."""
    from mmengine.registry import init_default_scope
    from mmseg.registry import DATASETS
    from mmincnext.datasets.seg import generate_synthetic_scenes
    root = tmp_path / 'ade'
    generate_synthetic_scenes(str(root), num_train=2, num_val=1, image_size=64, seed=0)
    cfg = config_copy(MASK2FORMER)
    cfg.train_dataloader.dataset.data_root = str(root)
    init_default_scope('mmseg')
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    torch.manual_seed(0)
    for index in (0, 1):
        sample = dataset[index]
        height, width = sample['inputs'].shape[1:]
        assert 256 <= height == width <= 512  # a square image resized to a short side of 256-1024, then cropped
        labels = sample['data_samples'].gt_sem_seg.data
        assert labels.shape == (1, height, width)
        assert set(labels.unique().tolist()) <= set(range(150)) | {255}  # reduce_zero_label: 0 -> 255
