"""The embedded segmentation demo: the synthetic ADE20K-layout scenes and the UperNet demo config.

A full demo run is too slow for a test; these check the data (layout, labels, determinism, splits, atomic
creation), that mmseg's own ADE20K loading path reads it, and that the demo config trains, validates and
checkpoints end to end on a tiny copy of the data.
"""
import hashlib
import json
import os
import os.path as osp
from pathlib import Path

import mmcv
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import Runner
from helpers import require

require('mmseg')  # the demo's UperNet, mmseg's ADE20K loading
from mmseg.registry import DATASETS  # noqa: E402

import mmincnext.datasets.synthetic_scenes as scenes  # noqa: E402
from mmincnext.datasets.seg import SyntheticScenesDataset, generate_synthetic_scenes  # noqa: E402

DEMO_CONFIG = Path(__file__).resolve().parents[2] / 'configs' / 'demo' / 'upernet_incnext_demo.py'
SMALL = dict(num_train=24, num_val=6, image_size=64)


def digests(root):
    """{relative path: sha1} of every file under root."""
    return {osp.relpath(osp.join(d, f), root): hashlib.sha1(Path(d, f).read_bytes()).hexdigest()
            for d, _, files in os.walk(root) for f in files}


@pytest.fixture(scope='module')
def small_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('scenes') / 'synthetic_scenes'
    generate_synthetic_scenes(str(root), seed=0, **SMALL)
    return root


def test_writes_the_ade20k_layout_with_every_class(small_root):
    for split, count in (('training', SMALL['num_train']), ('validation', SMALL['num_val'])):
        images = sorted(p.stem for p in (small_root / 'images' / split).iterdir())
        labels = sorted(p.stem for p in (small_root / 'annotations' / split).iterdir())
        assert len(images) == count and images == labels
        assert all(p.suffix == '.jpg' for p in (small_root / 'images' / split).iterdir())
        assert all(p.suffix == '.png' for p in (small_root / 'annotations' / split).iterdir())
    label_files = sorted((small_root / 'annotations' / 'training').iterdir())
    label = mmcv.imread(str(label_files[0]), flag='unchanged')
    image = mmcv.imread(str(small_root / 'images' / 'training' / (label_files[0].stem + '.jpg')))
    assert label.dtype == np.uint8 and label.shape == (64, 64) and image.shape == (64, 64, 3)
    # 0 = "other" (clutter, ignored via reduce_zero_label), 1 = backdrop, 2.. = the object classes.
    found = set()
    for path in label_files:
        found |= set(np.unique(mmcv.imread(str(path), flag='unchanged')).tolist())
    assert found == set(range(len(scenes.CLASSES) + 1))
    assert len(scenes.OBJECT_CLASSES) >= 8 and len(scenes.PALETTE) == len(scenes.CLASSES)
    assert json.loads((small_root / 'meta.json').read_text())['num_images'] == dict(training=24, validation=6)


def test_same_seed_same_bytes_other_seed_other_data(small_root, tmp_path):
    generate_synthetic_scenes(str(tmp_path / 'again'), seed=0, **SMALL)
    generate_synthetic_scenes(str(tmp_path / 'other'), seed=1, **SMALL)
    reference = digests(small_root)
    assert digests(tmp_path / 'again') == reference
    other = digests(tmp_path / 'other')
    assert not {k: v for k, v in other.items() if k.endswith('.jpg') and reference[k] == v}


def test_validation_split_is_not_training_data(small_root):
    by_split = {split: {v for k, v in digests(small_root / 'images' / split).items()}
                for split in ('training', 'validation')}
    assert len(by_split['training']) == SMALL['num_train'] and len(by_split['validation']) == SMALL['num_val']
    assert not by_split['training'] & by_split['validation']


def test_colour_does_not_identify_a_class():
    """Each object gets random colours: a class's mean colour varies widely from scene to scene."""
    means = {}
    for i in range(40):
        image, label = scenes.render_scene(np.random.default_rng((7, i)), size=64)
        for value in np.unique(label):
            if value >= 2:
                means.setdefault(int(value), []).append(image[label == value].mean(axis=0))
    assert len(means) == len(scenes.OBJECT_CLASSES)
    for value, colours in means.items():
        assert np.std(colours, axis=0).mean() > 25, scenes.CLASSES[value - 1]


def test_existing_folder_with_other_settings_raises(small_root, tmp_path):
    with pytest.raises(FileExistsError, match='other settings'):
        generate_synthetic_scenes(str(small_root), seed=0, num_train=25, num_val=6, image_size=64)
    (tmp_path / 'foreign').mkdir()
    with pytest.raises(FileExistsError, match='no meta.json'):
        generate_synthetic_scenes(str(tmp_path / 'foreign'), **SMALL)


def test_mmseg_ade20k_loading_path_reads_it(small_root):
    init_default_scope('mmseg')
    dataset = DATASETS.build(dict(
        type='SyntheticScenesDataset', data_root=str(small_root), **SMALL,
        data_prefix=dict(img_path='images/validation', seg_map_path='annotations/validation'),
        pipeline=[dict(type='LoadImageFromFile'), dict(type='LoadAnnotations', reduce_zero_label=True),
                  dict(type='PackSegInputs')]))
    assert isinstance(dataset, SyntheticScenesDataset) and len(dataset) == SMALL['num_val']
    assert dataset.metainfo['classes'] == scenes.CLASSES and dataset.metainfo['reduce_zero_label']
    sample = dataset[0]
    gt = sample['data_samples'].gt_sem_seg.data[0].numpy()
    raw = mmcv.imread(sample['data_samples'].seg_map_path, flag='unchanged').astype(np.int64)
    # reduce_zero_label: "other" (0) becomes the ignore index, every class shifts down by one.
    np.testing.assert_array_equal(gt, np.where(raw == 0, 255, raw - 1))
    assert set(np.unique(gt).tolist()) <= set(range(len(scenes.CLASSES))) | {255}
    assert sample['inputs'].shape == (3, 64, 64) and sample['inputs'].dtype == torch.uint8


@pytest.mark.integration
def test_demo_config_trains_validates_and_checkpoints(tmp_path):
    """The demo config, unchanged but for a tiny copy of the data and two iterations, runs end to end."""
    cfg = Config.fromfile(str(DEMO_CONFIG))
    backbone = cfg.model.backbone
    assert backbone.type == 'InceptionNeXt' and backbone.norm_cfg.type == 'BN'
    assert 'SyncBN' not in cfg.pretty_text and cfg.optim_wrapper.type == 'OptimWrapper'
    assert cfg.model.decode_head.num_classes == len(scenes.CLASSES)
    data = dict(data_root=str(tmp_path / 'scenes'), num_train=8, num_val=4)
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.update(data)
        cfg[loader].update(num_workers=0, persistent_workers=False)
    cfg.train_cfg.update(max_iters=2, val_interval=2)
    cfg.param_scheduler = [dict(type='ConstantLR', factor=1., by_epoch=False)]
    cfg.default_hooks.checkpoint.interval = 2
    cfg.work_dir = str(tmp_path / 'work_dir')
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert (tmp_path / 'work_dir' / 'iter_2.pth').is_file()
    metrics = runner.val_loop.run()
    assert 0 <= metrics['mIoU'] <= 100
