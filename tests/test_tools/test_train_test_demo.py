"""tools/train.py, tools/test.py and tools/image_demo.py end to end on a tiny ADE20K-layout dataset written here.

The real UperNet-T config runs with --cfg-options that make it cheap on a CPU (the atto backbone initialised from a
timm-format checkpoint, thin heads, 64x64 crops); everything else (dataset class, pipelines, schedule, hooks,
SyncBN -> BN, --amp as CPU bfloat16 autocast) is the config's own.
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import mmcv
import numpy as np
import pytest
import timm
import torch
from mmengine.config import Config
from helpers import (NUM_LABELS, REPO, UPERNET_T_CONFIG, enlarged, load_tool, read_demo_picture, require,
                     require_config, tiny_options, write_ade20k)

from mmincnext.checkpoint import CheckpointError
from mmincnext.datasets import DatasetLayoutError
from mmincnext.engine import CPUBF16OptimWrapper
from mmincnext.utils import adapt_to_machine, enable_amp, sync_bn_to_bn


@pytest.fixture(scope='module')
def workspace(tmp_path_factory):
    require_config(UPERNET_T_CONFIG)
    root = tmp_path_factory.mktemp('tools')
    data_root = write_ade20k(root / 'ADEChallengeData2016')
    # An ImageNet checkpoint in the official/timm format (flat keys, with the classification head).
    checkpoint = root / 'inceptionnext_atto.pth'
    torch.manual_seed(0)
    torch.save(timm.create_model('inception_next_atto', pretrained=False).state_dict(), checkpoint)
    return dict(root=root, data_root=data_root, options=tiny_options(data_root, checkpoint))


@pytest.fixture(scope='module')
def trained(workspace):
    """Two --amp training iterations and a validation through the command line, as a user runs it."""
    work_dir = workspace['root'] / 'work_dir'
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get('PYTHONPATH', '')]))
    proc = subprocess.run(
        [sys.executable, 'tools/train.py', UPERNET_T_CONFIG, '--work-dir', str(work_dir), '--amp', '--cfg-options',
         *workspace['options']], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    return dict(workspace, work_dir=work_dir, log=proc.stdout + proc.stderr, checkpoint=work_dir / 'iter_2.pth')


def test_train_runs_on_cpu_and_validates(trained):
    log = trained['log']
    assert 'SyncBN -> BN' in log
    assert 'CPUBF16OptimWrapper' in log
    assert 'Loaded' in log and 'inceptionnext_atto.pth' in log  # the pretrained backbone was read
    assert trained['checkpoint'].is_file()
    scalars = next(trained['work_dir'].glob('*/vis_data/scalars.json'))
    records = [json.loads(line) for line in scalars.read_text().splitlines()]
    losses = [r['loss'] for r in records if 'loss' in r]
    assert len(losses) == 2 and all(np.isfinite(losses))
    miou = [r['mIoU'] for r in records if 'mIoU' in r]
    assert len(miou) == 1 and 0 <= miou[0] <= 100


def reference_miou(pred_dir: Path, gt_dir: Path) -> float:
    """mIoU over the classes that occur in a prediction or a label, label 0 ignored (ADE20K's convention)."""
    intersection, union = np.zeros(256), np.zeros(256)
    for gt_file in sorted(gt_dir.glob('*.png')):
        gt = mmcv.imread(str(gt_file), flag='unchanged').astype(np.int64)
        pred = mmcv.imread(str(pred_dir / gt_file.name), flag='unchanged').astype(np.int64)
        assert pred.shape == gt.shape
        valid = gt > 0
        gt, pred = gt[valid], pred[valid]
        intersection += np.bincount(gt[gt == pred], minlength=256)
        union += np.bincount(gt, minlength=256) + np.bincount(pred, minlength=256) - \
            np.bincount(gt[gt == pred], minlength=256)
    present = union > 0
    return float(np.mean(intersection[present] / union[present]) * 100)


def test_test_tool_reports_miou_of_its_predictions(trained, tmp_path):
    test_tool = load_tool('test')
    first, second, show_dir = tmp_path / 'pred1', tmp_path / 'pred2', tmp_path / 'show'
    metrics = test_tool.main([
        UPERNET_T_CONFIG, str(trained['checkpoint']), '--work-dir', str(tmp_path / 'work'), '--out', str(first),
        '--show-dir', str(show_dir), '--cfg-options', *trained['options'], 'default_hooks.visualization.interval=1'])
    assert set(metrics) >= {'aAcc', 'mIoU', 'mAcc'}
    assert len(list(show_dir.rglob('*.png'))) == 2
    # An untrained model scores ~0, which would hide a wrong metric: evaluate again against labels that equal
    # its predictions except on a band of another class and an ignored strip, and compare with a reference mIoU.
    data_root = tmp_path / 'ADEChallengeData2016'
    shutil.copytree(trained['data_root'] / 'images' / 'validation', data_root / 'images' / 'validation')
    (data_root / 'annotations' / 'validation').mkdir(parents=True)
    for pred_file in first.glob('*.png'):
        label = mmcv.imread(str(pred_file), flag='unchanged')
        label[:, :16] = label[:, :16] % 150 + 1
        label[:4] = 0
        mmcv.imwrite(label, str(data_root / 'annotations' / 'validation' / pred_file.name))
    metrics = test_tool.main([
        UPERNET_T_CONFIG, str(trained['checkpoint']), '--work-dir', str(tmp_path / 'work'), '--out', str(second),
        '--cfg-options', *trained['options'], f'test_dataloader.dataset.data_root={data_root}'])
    expected = reference_miou(second, data_root / 'annotations' / 'validation')
    assert 0 < expected < 100
    assert metrics['mIoU'] == pytest.approx(expected, abs=0.006)  # mmseg rounds to 2 decimals


def test_test_tool_tta_single_scale_is_the_plain_test(trained, tmp_path):
    """--tta reports multi_scale/ and single_scale/ metrics from one pass; single_scale/ is the plain test's result:
    labelled with the plain test's own predictions, it scores 100 (another view's prediction would score less)."""
    test_tool = load_tool('test')
    plain_dir = tmp_path / 'plain'
    test_tool.main([UPERNET_T_CONFIG, str(trained['checkpoint']), '--work-dir', str(tmp_path / 'work'),
                    '--out', str(plain_dir),
                    '--cfg-options', *trained['options']])
    data_root = tmp_path / 'ADEChallengeData2016'
    shutil.copytree(trained['data_root'] / 'images' / 'validation', data_root / 'images' / 'validation')
    shutil.copytree(plain_dir, data_root / 'annotations' / 'validation')
    labels = [mmcv.imread(str(f), flag='unchanged') for f in plain_dir.glob('*.png')]
    assert len(np.unique(np.concatenate([label.ravel() for label in labels]))) > 1  # not a constant prediction
    options = [*trained['options'], f'test_dataloader.dataset.data_root={data_root}']
    # the paper's protocol at the options' test scale 256x64 (instead of 2048x512)
    tta_scales = [f'tta_pipeline.1.transforms.0.{i}.scale=({int(256 * r)},{int(64 * r)})'
                  for i, r in enumerate(Config.fromfile(UPERNET_T_CONFIG).img_ratios)]
    both = test_tool.main([UPERNET_T_CONFIG, str(trained['checkpoint']), '--tta', '--work-dir', str(tmp_path / 'work'),
                           '--cfg-options', *options, *tta_scales])
    assert both['single_scale/mIoU'] == 100 and both['single_scale/aAcc'] == 100
    assert 0 <= both['multi_scale/mIoU'] <= 100


def test_image_demo_draws_input_prediction_truth_and_legend(trained, tmp_path):
    """A 64x64 ADE20K image: input | prediction | ground truth, 6x enlarged (>= 384 px), with a class legend in
    the checkpoint's ADE20K colours."""
    from mmseg.datasets import ADE20KDataset

    image_file = sorted((trained['data_root'] / 'images' / 'validation').glob('*.jpg'))[0]
    label_file = trained['data_root'] / 'annotations' / 'validation' / f'{image_file.stem}.png'
    out_file = tmp_path / 'demo.png'
    layout = load_tool('image_demo').main([
        str(image_file), UPERNET_T_CONFIG, str(trained['checkpoint']), '--gt', str(label_file),
        '--out-file', str(out_file),
        '--cfg-options', *trained['options']])
    panels, legend = read_demo_picture(out_file, layout)
    assert list(panels) == ['input', 'prediction', 'ground truth'] and layout['factor'] == 6
    assert all(panel.shape == (384, 384, 3) for panel in panels.values())
    assert np.array_equal(panels['input'], enlarged(mmcv.imread(str(image_file), channel_order='rgb'), 6))
    # ADE20K's label encoding: 0 is "other" (not labelled, black), k is class k - 1.
    classes, palette = ADE20KDataset.METAINFO['classes'], np.asarray(ADE20KDataset.METAINFO['palette'], np.uint8)
    label = mmcv.imread(str(label_file), flag='unchanged').astype(int)
    truth = np.where(label[..., None] > 0, palette[label - 1], 0).astype(np.uint8)
    assert np.array_equal(panels['ground truth'], enlarged(truth, 6))
    assert {classes[k - 1] for k in np.unique(label) if k > 0} | {'not labelled'} <= set(legend)
    assert all(legend[name] == tuple(palette[classes.index(name)]) for name in legend if name != 'not labelled')
    predicted_colours = {tuple(c) for c in panels['prediction'].reshape(-1, 3)}
    assert predicted_colours <= set(legend.values())


def test_image_demo_refuses_a_checkpoint_of_another_model(trained, tmp_path):
    """The Inferencers only warn about weights that do not fit (and predict with random ones there)."""
    image_file = next((trained['data_root'] / 'images' / 'validation').glob('*.jpg'))
    with pytest.raises(CheckpointError, match=r'shape mismatch \(\d+\):\s+decode_head'):
        load_tool('image_demo').main([str(image_file), UPERNET_T_CONFIG, str(trained['checkpoint']), '--out-file',
                                      str(tmp_path / 'out.png'), '--cfg-options', *trained['options'],
                                      'model.decode_head.channels=8'])
    assert not (tmp_path / 'out.png').exists()


def test_missing_dataset_names_path_and_layout(workspace, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the config's default data_root (data/ade/...) does not exist here
    options = [o for o in workspace['options'] if '.data_root=' not in o]
    with pytest.raises(DatasetLayoutError) as error:
        load_tool('train').main([UPERNET_T_CONFIG, '--work-dir', str(tmp_path / 'work'), '--cfg-options', *options])
    message = str(error.value)
    assert str(tmp_path / 'data' / 'ade' / 'ADEChallengeData2016' / 'images' / 'training') in message
    assert 'images/training/*.jpg' in message and 'annotations/training/*.png' in message


@pytest.mark.parametrize('remove, problem', [
    ('images/training/*.jpg', "holds no '.jpg' file"),
    ('annotations/training/ADE_train_00000001.png', '1 of 4 images have no label map'),
    ('annotations/training', "annotations/training' does not exist"),
])
def test_incomplete_dataset_is_reported(tmp_path, remove, problem):
    from mmengine.registry import init_default_scope
    DATASETS = require('mmseg.registry').DATASETS

    data_root = write_ade20k(tmp_path / 'ADEChallengeData2016', counts=(('training', 4), ))
    for path in data_root.glob(remove):
        if path.is_dir():
            for f in path.iterdir():
                f.unlink()
            path.rmdir()
        else:
            path.unlink()
    cfg = Config.fromfile(UPERNET_T_CONFIG).train_dataloader.dataset
    cfg.data_root = str(data_root)
    init_default_scope('mmseg')
    with pytest.raises(DatasetLayoutError, match=problem):
        DATASETS.build(cfg)


def test_adapt_to_machine_on_cpu():
    require_config(UPERNET_T_CONFIG)
    cfg = Config.fromfile(UPERNET_T_CONFIG)
    enable_amp(cfg)
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper' and cfg.optim_wrapper.dtype == 'float16'
    if torch.cuda.is_available():
        pytest.skip('checks the CPU-only adaptation')
    adapt_to_machine(cfg, launcher='none')
    assert cfg.optim_wrapper.type == 'CPUBF16OptimWrapper' and 'loss_scale' not in cfg.optim_wrapper
    assert 'SyncBN' not in str(cfg.model) and cfg.model.backbone.norm_cfg.type == 'BN'
    assert cfg.model.decode_head.norm_cfg.type == 'BN'
    dist_cfg = Config.fromfile(UPERNET_T_CONFIG)
    adapt_to_machine(dist_cfg, launcher='pytorch')
    assert dist_cfg.env_cfg.dist_cfg.backend == 'gloo'
    assert dist_cfg.model_wrapper_cfg.device_ids is None  # DDP on CPU modules takes no device ids
    assert dist_cfg.model.backbone.norm_cfg.type == 'BN'  # torch's SyncBatchNorm refuses CPU tensors


def test_cpu_bf16_optim_wrapper_autocasts():
    model = torch.nn.Linear(4, 2)
    wrapper = CPUBF16OptimWrapper(optimizer=torch.optim.SGD(model.parameters(), lr=0.1))
    with wrapper.optim_context(model):
        out = model(torch.randn(3, 4))
    assert out.dtype == torch.bfloat16
    wrapper.update_params(out.float().sum())
    assert model.weight.dtype == torch.float32


def test_mmcv_cpu_ops_take_bfloat16_only_inside_the_cpu_bf16_wrapper():
    """CPU autocast hands mmcv's nms and RoIAlign bfloat16, which their CPU kernels refuse; the wrapper runs them in
    float32 while its forward and backward run, and leaves mmcv as it found it everywhere else."""
    require('mmcv.ops')
    from mmcv.ops import nms, roi_align
    from mmcv.ops.nms import NMSop
    from mmcv.ops.roi_align import RoIAlignFunction

    def methods():
        return [function.__dict__[name] for function in (NMSop, RoIAlignFunction) for name in ('forward', 'backward')
                if name in function.__dict__]

    original = methods()
    boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 11., 11.], [20., 20., 30., 30.]]).bfloat16()
    scores = torch.tensor([0.9, 0.8, 0.7]).bfloat16()
    with pytest.raises(RuntimeError):  # mmcv's own CPU kernel, outside the wrapper
        nms(boxes, scores, 0.5)
    features = torch.nn.Parameter(torch.randn(1, 2, 16, 16))
    wrapper = CPUBF16OptimWrapper(optimizer=torch.optim.SGD([features], lr=0.1))
    assert methods() == original  # building the wrapper patches nothing
    with wrapper.optim_context(features):
        dets, keep = nms(boxes, scores, 0.5)
        rois = torch.tensor([[0., 2., 2., 12., 12.]])
        pooled = roi_align(features.bfloat16(), rois.bfloat16(), (4, 4), 1.0, 2, 'avg', True)
    assert keep.tolist() == [0, 2] and dets.dtype == torch.bfloat16 and pooled.dtype == torch.bfloat16
    assert methods() == original
    wrapper.update_params(pooled.float().square().sum())  # RoIAlign's backward on bfloat16 gradients
    assert methods() == original


def test_image_demo_draws_detections_for_mmdet_configs(tmp_path):
    """The same tool dispatches on default_scope: an mmdet config gets instances drawn, here beside the COCO
    annotation of the image, in the checkpoint's class colours."""
    from mmengine.registry import init_default_scope
    MODELS = require('mmdet.registry').MODELS

    from mmincnext.datasets.synthetic_coco import CLASSES, PALETTE

    config = str(REPO / 'configs' / 'demo' / 'mask_rcnn_incnext_demo.py')
    cfg = Config.fromfile(config)
    sync_bn_to_bn(cfg.model)
    init_default_scope('mmdet')
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    checkpoint = tmp_path / 'mask_rcnn.pth'
    torch.save(dict(meta=dict(dataset_meta=dict(classes=CLASSES, palette=PALETTE)), state_dict=model.state_dict()),
               checkpoint)
    image_file, out_file, ann_file = tmp_path / 'image.jpg', tmp_path / 'detections.png', tmp_path / 'gt.json'
    image = np.full((96, 128, 3), 128, np.uint8)
    mmcv.imwrite(image, str(image_file))
    square = [[20, 30, 60, 30, 60, 70, 20, 70]]  # polygon of a 40x40 square at (20, 30)
    ann_file.write_text(json.dumps(dict(
        images=[dict(id=7, file_name='val/image.jpg', height=96, width=128)],
        annotations=[dict(id=1, image_id=7, category_id=2, bbox=[20, 30, 40, 40], area=1600, iscrowd=0,
                          segmentation=square)],
        categories=[dict(id=i + 1, name=name) for i, name in enumerate(CLASSES)])))
    layout = load_tool('image_demo').main([str(image_file), config, str(checkpoint), '--out-file', str(out_file),
                                           '--score-thr', '0', '--gt', str(ann_file)])
    panels, legend = read_demo_picture(out_file, layout)
    assert list(panels) == ['input', 'prediction', 'ground truth'] and layout['factor'] == 4
    assert np.array_equal(panels['input'], enlarged(image, 4))
    assert (np.abs(panels['prediction'].astype(int) - 128).sum(-1) > 30).mean() > 0.01  # instances (score >= 0)
    assert set(legend) <= set(CLASSES) and all(legend[name] == PALETTE[CLASSES.index(name)] for name in legend)
    # The annotated square (category 2: CLASSES[1]), half covered by its class colour, away from its tag.
    assert CLASSES[1] in legend
    inside = panels['ground truth'][4 * 50:4 * 68, 4 * 22:4 * 58].reshape(-1, 3).astype(int)
    assert np.abs(inside - (128 + np.asarray(PALETTE[1])) / 2).max() <= 1
