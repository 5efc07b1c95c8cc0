"""Mask R-CNN + InceptionNeXt: the COCO configs, the missing-data error, the synthetic COCO set and the demo model."""
import json
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from helpers import REPO, load_config, require

require('mmdet')  # Mask R-CNN, the COCO dataset and pycocotools (an mmdet requirement)
import pycocotools.mask as mask_util  # noqa: E402

import mmincnext.datasets.det  # noqa: F401,E402  (registers the dataset classes)
from mmincnext.datasets.synthetic_coco import CLASSES, generate_synthetic_coco  # noqa: E402

DEMO = str(REPO / 'configs/demo/mask_rcnn_incnext_demo.py')
TINY_SET = dict(num_train_images=6, num_val_images=4, image_size=128, seed=0)


@pytest.fixture(scope='module')
def tiny_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('det') / 'synthetic_coco')
    generate_synthetic_coco(root, **TINY_SET)
    return root


def tiny_demo_config(tiny_root: str) -> Config:
    """The demo config reading the tiny set (same classes, image size and pipelines)."""
    cfg = Config.fromfile(DEMO)
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.update(data_root=tiny_root, generator=TINY_SET)
    cfg.val_evaluator.ann_file = cfg.test_evaluator.ann_file = osp.join(tiny_root, 'annotations/instances_val2017.json')
    return cfg


# Parameter counts of Mask R-CNN + FPN (80 classes) with the backbone's four output norms. Independent check: the
# backbone is the paper's classifier (28.06M / 49.37M / 86.67M) without its MlpHead (4.08M / 4.08M / 6.23M), and
# mmdet's R50 Mask R-CNN heads (FPN 256, RPN, 2fc box head 1024, 4-conv mask head) add 20.28M (20.40M with B's
# wider FPN inputs).
@pytest.mark.parametrize('name, params_m', [
    ('mask_rcnn_incnext_t_coco.py', 44.3),
    ('mask_rcnn_incnext_s_coco.py', 65.6),
    ('mask_rcnn_incnext_b_coco.py', 100.8),
    ('mask_rcnn_incnext_t_coco_3x.py', 44.3),
])
def test_coco_configs_build_with_expected_size(name, params_m):
    from mmdet.registry import MODELS
    cfg = load_config(name)
    assert cfg.default_scope == 'mmdet'
    assert cfg.model.backbone.init_cfg.checkpoint.startswith('https://github.com/sail-sg/inceptionnext/releases/')
    assert cfg.train_dataloader.dataset.type == 'CheckedCocoDataset'
    assert set(cfg.val_evaluator.metric) == {'bbox', 'segm'}
    cfg.model.backbone.init_cfg = None  # no download
    init_default_scope('mmdet')
    model = MODELS.build(cfg.model)  # built, not initialised or run
    count = sum(p.numel() for p in model.parameters())
    assert round(count / 1e6, 1) == params_m, count
    assert type(model.backbone).__name__ == 'InceptionNeXt'


def test_schedules_follow_swin_recipes():
    one, three = load_config('mask_rcnn_incnext_t_coco.py'), load_config('mask_rcnn_incnext_t_coco_3x.py')
    for cfg, epochs, milestones in ((one, 12, [8, 11]), (three, 36, [27, 33])):
        assert cfg.train_cfg.max_epochs == epochs
        assert cfg.param_scheduler[1].milestones == milestones
        assert cfg.optim_wrapper.optimizer.type == 'AdamW' and cfg.optim_wrapper.optimizer.lr == 1e-4
        assert cfg.optim_wrapper.optimizer.weight_decay == 0.05
    assert 'RandomChoice' in [t.type for t in three.train_dataloader.dataset.pipeline]
    assert 'RandomChoice' not in [t.type for t in one.train_dataloader.dataset.pipeline]


def test_weight_decay_spares_norms_and_layer_scales():
    from mmdet.registry import MODELS
    init_default_scope('mmdet')
    model = MODELS.build(Config.fromfile(DEMO).model)  # a small InceptionNeXt: same parameter names
    optim_wrapper = load_config('mask_rcnn_incnext_t_coco.py').optim_wrapper
    groups = build_optim_wrapper(model, optim_wrapper).optimizer.param_groups
    decay = {id(p): g['weight_decay'] for g in groups for p in g['params']}
    names = dict(model.named_parameters())
    for name in ('backbone.stem.1.weight', 'backbone.stages.1.downsample.0.bias', 'backbone.norm3.weight',
                 'backbone.stages.0.blocks.0.norm.weight', 'backbone.stages.2.blocks.1.gamma'):
        assert decay[id(names[name])] == 0, name
    for name in ('backbone.stem.0.weight', 'backbone.stages.0.blocks.0.mlp.fc1.weight', 'neck.fpn_convs.0.conv.weight'):
        assert decay[id(names[name])] == 0.05, name


def test_missing_coco_names_expected_files(tmp_path):
    from mmdet.registry import DATASETS
    cfg = load_config('mask_rcnn_incnext_t_coco.py')
    dataset_cfg = cfg.train_dataloader.dataset
    dataset_cfg.data_root = str(tmp_path / 'coco')
    init_default_scope('mmdet')
    with pytest.raises(FileNotFoundError) as err:
        DATASETS.build(dataset_cfg)
    message = str(err.value)
    for expected in ('instances_train2017.json', 'instances_val2017.json', 'train2017/', 'val2017/', str(tmp_path)):
        assert expected in message


def test_synthetic_coco_is_coco(tiny_root, tmp_path):
    with open(osp.join(tiny_root, 'annotations/instances_train2017.json')) as f:
        train = json.load(f)
    with open(osp.join(tiny_root, 'annotations/instances_val2017.json')) as f:
        val = json.load(f)
    assert [c['name'] for c in train['categories']] == list(CLASSES)
    assert len(train['images']) == TINY_SET['num_train_images'] and len(val['images']) == TINY_SET['num_val_images']
    for ann in train['annotations'] + val['annotations']:
        mask = mask_util.decode(ann['segmentation'])
        ys, xs = np.nonzero(mask)
        assert ann['area'] == mask.sum() > 0 and ann['iscrowd'] == 0
        assert ann['bbox'] == [xs.min(), ys.min(), xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min()]
    # Same seed, same bytes; val images are not train images.
    again = str(tmp_path / 'again')
    generate_synthetic_coco(again, **TINY_SET)
    for rel in ('annotations/instances_train2017.json', 'val2017/000001.jpg'):
        with open(osp.join(tiny_root, rel), 'rb') as a, open(osp.join(again, rel), 'rb') as b:
            assert a.read() == b.read()
    with open(osp.join(tiny_root, 'train2017/000001.jpg'), 'rb') as a, \
            open(osp.join(tiny_root, 'val2017/000001.jpg'), 'rb') as b:
        assert a.read() != b.read()
    with pytest.raises(FileExistsError, match='delete the folder'):
        generate_synthetic_coco(tiny_root, **dict(TINY_SET, seed=1))


def test_synthetic_coco_has_classes_and_occlusion():
    """On images of the demo's kind: every class present, several objects per image, overlapping boxes, and
    masks of the visible parts (disjoint: an occluded instance does not claim the pixels of the one in front)."""
    from mmincnext.datasets.synthetic_coco import _render_image
    rng = np.random.default_rng(0)
    labels, counts, overlapping = [], [], 0
    for _ in range(30):
        _, instances = _render_image(128, 4, rng)
        counts.append(len(instances))
        labels += [label for label, _ in instances]
        masks = np.stack([mask for _, mask in instances])
        assert masks.sum(0).max() == 1
        boxes = [(xs.min(), ys.min(), xs.max(), ys.max()) for ys, xs in (np.nonzero(m) for m in masks)]
        overlapping += sum(a[0] <= b[2] and b[0] <= a[2] and a[1] <= b[3] and b[1] <= a[3]
                           for i, a in enumerate(boxes) for b in boxes[i + 1:])
    assert set(labels) == set(range(len(CLASSES)))
    assert min(counts) >= 1 and max(counts) >= 3 and overlapping >= 5


@pytest.fixture(scope='module')
def demo_model_and_data(tiny_root):
    from mmdet.registry import DATASETS, MODELS
    cfg = tiny_demo_config(tiny_root)
    init_default_scope('mmdet')
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    train, val = DATASETS.build(cfg.train_dataloader.dataset), DATASETS.build(cfg.val_dataloader.dataset)
    return cfg, model, train, val


def test_demo_train_step_gives_finite_losses(demo_model_and_data):
    cfg, model, train, _ = demo_model_and_data
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    model.train()
    losses = model.train_step(pseudo_collate([train[0], train[1]]), optim_wrapper)
    for key in ('loss_rpn_cls', 'loss_rpn_bbox', 'loss_cls', 'loss_bbox', 'loss_mask'):
        assert key in losses and torch.isfinite(losses[key]).all(), key


def test_demo_test_step_returns_masks(demo_model_and_data):
    _, model, _, val = demo_model_and_data
    model.eval()
    with torch.no_grad():
        results = model.test_step(pseudo_collate([val[0], val[1]]))
    for result in results:
        pred = result.pred_instances
        assert len(pred) > 0
        assert pred.masks.dtype == torch.bool and pred.masks.shape[1:] == result.ori_shape


def test_coco_metric_on_synthetic_val(tiny_root):
    """CocoMetric reads the generated annotation file: the ground truth, read back through mmdet's loading path and
    submitted as predictions, scores 1.0 bbox and segm mAP; dropping half the instances scores less."""
    from mmdet.evaluation import CocoMetric
    from mmdet.registry import DATASETS
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData
    cfg = tiny_demo_config(tiny_root)
    init_default_scope('mmdet')
    val = DATASETS.build(cfg.val_dataloader.dataset)

    def evaluate(keep_every):
        metric = CocoMetric(ann_file=cfg.val_evaluator.ann_file, metric=['bbox', 'segm'])
        metric.dataset_meta = val.metainfo
        for i in range(len(val)):
            sample = val[i]['data_samples']
            gt = sample.gt_instances[::keep_every]
            pred = InstanceData(bboxes=gt.bboxes, labels=gt.labels, scores=torch.ones(len(gt)),
                                masks=torch.from_numpy(gt.masks.to_ndarray()).bool())
            metric.process({}, [DetDataSample(pred_instances=pred, img_id=sample.img_id,
                                              ori_shape=sample.ori_shape).to_dict()])
        return metric.evaluate(len(val))

    perfect = evaluate(1)
    assert perfect['coco/bbox_mAP'] == pytest.approx(1.0) and perfect['coco/segm_mAP'] == pytest.approx(1.0)
    half = evaluate(2)
    assert half['coco/bbox_mAP'] < 0.9 and half['coco/segm_mAP'] < 0.9
