"""The OpenMMLab Inferencers with this package's configs and checkpoints.

- A classifier converted by tools/convert_checkpoint.py from official-format (timm) weights gives timm's logits
  through mmpretrain's ``ImageClassificationInferencer`` and ``get_model``, and names ImageNet's classes.
- The three demo configs, trained for one iteration on tiny generated sets by tools/train.py (real Runner
  checkpoints, with numpy objects that only the safe reader's allow-list reads), run in mmseg's
  ``MMSegInferencer``, mmdet's ``DetInferencer`` and mmpretrain's ``ImageClassificationInferencer``: every weight
  arrives, predictions are labelled with the training set's classes and colours (the checkpoint's
  ``dataset_meta``), nothing touches the network, and SyncBN configs run on a CPU.
"""
import pickle
import socket
from pathlib import Path

import mmcv
import numpy as np
import pytest
import torch
from mmengine.config import Config
from safetensors.torch import save_file
from helpers import REPO, enlarged, load_tool, read_demo_picture, relative_error, require, require_config

import mmincnext.checkpoint
from mmincnext.checkpoint import CheckpointError, read_checkpoint

ATTO_CONFIG = str(REPO / 'configs' / 'incnext_atto_in1k.py')
DEMOS = REPO / 'configs' / 'demo'


@pytest.fixture
def offline(monkeypatch):
    """Any attempt to open a network connection fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError(f'network access attempted: {args}')

    monkeypatch.setattr(socket.socket, 'connect', refuse)
    monkeypatch.setattr(socket, 'create_connection', refuse)


@pytest.fixture
def reads(monkeypatch):
    """The files the safe reader was asked for (it is what mmengine's CheckpointLoader calls for local files)."""
    seen, read = [], mmincnext.checkpoint.read_checkpoint

    def recording(filename, *args, **kwargs):
        seen.append(str(filename))
        return read(filename, *args, **kwargs)

    monkeypatch.setattr(mmincnext.checkpoint, 'read_checkpoint', recording)
    return seen


# --- official weights -> classifier checkpoint -> mmpretrain ---------------------------------------------------
@pytest.fixture(scope='module')
def atto_files(tmp_path_factory, timm_reference):
    root = tmp_path_factory.mktemp('official')
    reference = timm_reference('atto')
    state_dict = reference.state_dict()
    torch.save(state_dict, root / 'inceptionnext_atto.pth')
    save_file({k: v.contiguous() for k, v in state_dict.items()}, str(root / 'model.safetensors'))
    return dict(root=root, reference=reference, pth=root / 'inceptionnext_atto.pth',
                safetensors=root / 'model.safetensors')


def timm_logits(reference, inputs):
    with torch.no_grad():
        return reference(inputs)


@pytest.mark.integration
@pytest.mark.parametrize('file_format', ['pth', 'safetensors'])
def test_converted_classifier_equals_timm_in_mmpretrain(atto_files, file_format, tmp_path, offline, reads):
    require('mmpretrain')
    from mmpretrain import ImageClassificationInferencer, get_model
    from mmpretrain.datasets.categories import IMAGENET_CATEGORIES

    converted = tmp_path / 'incnext_atto_in1k.pth'
    load_tool('convert_checkpoint').main([str(atto_files[file_format]), str(converted)])
    checkpoint = read_checkpoint(converted)
    assert checkpoint['meta']['dataset_meta']['classes'] == IMAGENET_CATEGORIES
    assert checkpoint['meta']['arch'] == 'atto'
    assert {k.split('.')[0] for k in checkpoint['state_dict']} == {'backbone', 'head'}
    assert not list(tmp_path.glob('.*partial'))

    image = np.random.default_rng(0).integers(0, 256, (200, 240, 3), dtype=np.uint8)
    if file_format == 'pth':
        inferencer = ImageClassificationInferencer(model=ATTO_CONFIG, pretrained=str(converted), device='cpu')
        batch = next(iter(inferencer.preprocess([image])))
        inputs = inferencer.model.data_preprocessor(batch, False)['inputs']
        expected = timm_logits(atto_files['reference'], inputs)
        prediction = inferencer(image, return_datasamples=True)[0]
        # The Inferencer reports softmax scores: compare log-probabilities.
        assert relative_error(prediction.pred_score.log(), expected.log_softmax(-1)[0]) < 1e-5
        assert inferencer(image)[0]['pred_class'] == IMAGENET_CATEGORIES[expected.argmax()]
    else:
        model = get_model(ATTO_CONFIG, pretrained=str(converted), device='cpu')
        assert model._dataset_meta['classes'] == IMAGENET_CATEGORIES
        inputs = torch.randn(2, 3, 96, 96)
        with torch.no_grad():
            assert relative_error(model(inputs, mode='tensor'), timm_logits(atto_files['reference'], inputs)) < 1e-5
    assert str(converted) in reads  # mmengine's load_checkpoint went through the safe reader


def test_converter_names_a_wrong_or_unknown_arch(atto_files, tmp_path):
    require('mmpretrain')  # the converter builds the classifier of the matching ImageNet config
    convert = load_tool('convert_checkpoint').main
    with pytest.raises(CheckpointError, match=r'--arch tiny given, but the weights are InceptionNeXt-atto'):
        convert([str(atto_files['pth']), str(tmp_path / 'out.pth'), '--arch', 'tiny'])
    state_dict = read_checkpoint(atto_files['pth'])
    shallower = {k: v for k, v in state_dict.items() if not k.startswith('stages.2.blocks.5.')}
    torch.save(shallower, tmp_path / 'shallower.pth')
    with pytest.raises(CheckpointError, match=r'depths=\(2, 2, 5, 2\).* are none of the ImageNet archs'):
        convert([str(tmp_path / 'shallower.pth'), str(tmp_path / 'out.pth')])
    headless = {k: v for k, v in state_dict.items() if k != 'head.norm.bias'}
    torch.save(headless, tmp_path / 'headless.pth')
    with pytest.raises(CheckpointError, match=r'missing in the checkpoint \(1\):\s+norm.bias'):
        convert([str(tmp_path / 'headless.pth'), str(tmp_path / 'out.pth')])
    assert not (tmp_path / 'out.pth').exists()


# --- demo checkpoints -> the three Inferencers -----------------------------------------------------------------
def train_demo(name: str, root, options: dict) -> dict:
    """One training iteration of ``configs/demo/<name>`` through tools/train.py: a real Runner checkpoint."""
    require_config(name)
    config = str(DEMOS / name)
    runner = load_tool('train').main([config, '--work-dir', str(root / 'work_dir'), '--cfg-options',
                                      'default_hooks.logger.interval=1', *(f'{k}={v}' for k, v in options.items())])
    checkpoint = next((root / 'work_dir').glob('*_1.pth'))
    with pytest.raises(pickle.UnpicklingError):  # numpy objects in its meta: only the safe reader's allow-list
        torch.load(checkpoint, weights_only=True)
    cfg = Config.fromfile(config)
    cfg.merge_from_dict(options)
    return dict(runner=runner, checkpoint=str(checkpoint), cfg=cfg)


def on_every_loader(**settings) -> dict:
    return {f'{loader}.{key}': value for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')
            for key, value in settings.items()}


def with_sync_bn(node):
    """The config with SyncBN wherever it has BN, as the full-size configs have it."""
    if isinstance(node, dict):
        return {k: 'SyncBN' if k == 'type' and v == 'BN' else with_sync_bn(v) for k, v in node.items()}
    if isinstance(node, (list, tuple)):
        return type(node)(with_sync_bn(v) for v in node)
    return node


def assert_same_weights(loaded: torch.nn.Module, trained: torch.nn.Module):
    """Every tensor of the trained model arrived (the Inferencers load non-strictly, with a mere warning)."""
    ours, reference = loaded.state_dict(), trained.state_dict()
    assert list(ours) == list(reference)
    assert all(torch.equal(ours[k], reference[k].cpu()) for k in reference)


def assert_no_sync_bn(model: torch.nn.Module):
    assert not any(isinstance(m, torch.nn.SyncBatchNorm) for m in model.modules())


@pytest.fixture(scope='module')
def seg_run(tmp_path_factory):
    root = tmp_path_factory.mktemp('seg_demo')
    return train_demo('upernet_incnext_demo.py', root, {
        **on_every_loader(num_workers=0, persistent_workers=False, batch_size=2),
        **on_every_loader(**{'dataset.data_root': str(root / 'scenes'), 'dataset.num_train': 4,
                             'dataset.num_val': 2, 'dataset.image_size': 64}),
        'train_cfg.max_iters': 1, 'train_cfg.val_interval': 1, 'default_hooks.checkpoint.interval': 1})


@pytest.fixture(scope='module')
def det_run(tmp_path_factory):
    root = tmp_path_factory.mktemp('det_demo')
    ann_file = str(root / 'coco' / 'annotations' / 'instances_val2017.json')
    return train_demo('mask_rcnn_incnext_demo.py', root, {
        **on_every_loader(num_workers=0, persistent_workers=False, batch_size=2),
        **on_every_loader(**{'dataset.data_root': str(root / 'coco'), 'dataset.generator.num_train_images': 2,
                             'dataset.generator.num_val_images': 2}),
        'val_evaluator.ann_file': ann_file, 'test_evaluator.ann_file': ann_file,
        'train_cfg.max_epochs': 1, 'train_cfg.val_interval': 1, 'default_hooks.checkpoint.interval': 1})


@pytest.fixture(scope='module')
def cls_run(tmp_path_factory):
    root = tmp_path_factory.mktemp('cls_demo')
    # 2 images of each of the 10 classes: one batch of the demo's 32, one iteration.
    return train_demo('incnext_cls_demo.py', root, {
        **on_every_loader(num_workers=0, persistent_workers=False),
        **on_every_loader(**{'dataset.data_root': str(root / 'imagenet'), 'dataset.num_train': 2,
                             'dataset.num_val': 1}),
        'train_cfg.max_epochs': 1, 'default_hooks.checkpoint.interval': 1})


@pytest.mark.integration
def test_segmentation_inferencer_labels_with_the_checkpoints_classes(seg_run, offline, reads):
    from mmseg.apis import MMSegInferencer

    from mmincnext.datasets.synthetic_scenes import CLASSES, PALETTE

    cfg = Config(with_sync_bn(seg_run['cfg'].to_dict()))
    inferencer = MMSegInferencer(model=cfg, weights=seg_run['checkpoint'], device='cpu')
    assert seg_run['checkpoint'] in reads
    assert_no_sync_bn(inferencer.model)
    assert_same_weights(inferencer.model, seg_run['runner'].model)
    assert inferencer.model.dataset_meta['classes'] == CLASSES
    assert [list(c) for c in inferencer.model.dataset_meta['palette']] == PALETTE

    image_file = seg_run['runner'].val_dataloader.dataset.get_data_info(0)['img_path']
    image = mmcv.imread(image_file, channel_order='rgb')
    result = inferencer(image_file, return_vis=True, opacity=1.0, with_labels=False)
    assert list(inferencer.visualizer.dataset_meta['classes']) == list(CLASSES)
    prediction = result['predictions']
    assert prediction.shape == image.shape[:2] and prediction.max() < len(CLASSES)
    # Each pixel is painted in its predicted class's colour.
    assert np.array_equal(result['visualization'], np.asarray(PALETTE, np.uint8)[prediction])


@pytest.mark.integration
def test_detection_inferencer_labels_with_the_checkpoints_classes(det_run, offline, reads):
    from mmdet.apis import DetInferencer

    from mmincnext.datasets.synthetic_coco import CLASSES, PALETTE

    cfg = Config(with_sync_bn(det_run['cfg'].to_dict()))
    inferencer = DetInferencer(model=cfg, weights=det_run['checkpoint'], device='cpu', show_progress=False)
    assert det_run['checkpoint'] in reads
    assert_no_sync_bn(inferencer.model)
    assert_same_weights(inferencer.model, det_run['runner'].model)
    assert inferencer.model.dataset_meta['classes'] == CLASSES
    assert [tuple(c) for c in inferencer.model.dataset_meta['palette']] == PALETTE
    assert inferencer.visualizer.dataset_meta['classes'] == CLASSES

    image_file = det_run['runner'].val_dataloader.dataset.get_data_info(0)['img_path']
    result = inferencer(image_file, return_datasamples=True, no_save_vis=True)
    instances = result['predictions'][0].pred_instances
    assert len(instances) > 0 and int(instances.labels.max()) < len(CLASSES)


@pytest.mark.integration
def test_classification_inferencer_labels_with_the_checkpoints_classes(cls_run, offline, reads):
    from mmpretrain import ImageClassificationInferencer

    from mmincnext.datasets.synthetic_imagenet import CLASSES

    inferencer = ImageClassificationInferencer(model=cls_run['cfg'], pretrained=cls_run['checkpoint'], device='cpu')
    assert cls_run['checkpoint'] in reads
    assert_same_weights(inferencer.model, cls_run['runner'].model)
    assert inferencer.model._dataset_meta['classes'] == CLASSES and inferencer.classes == CLASSES
    image_file = cls_run['runner'].val_dataloader.dataset.get_data_info(0)['img_path']
    result = inferencer(image_file)[0]
    assert result['pred_class'] == CLASSES[result['pred_label']]
    assert len(result['pred_scores']) == len(CLASSES)


def test_image_demo_lists_the_top_classes(cls_run, tmp_path):
    """tools/image_demo.py on a classifier: the 48x48 image enlarged 8x beside its top-5 classes and the truth."""
    image_file = cls_run['runner'].val_dataloader.dataset.get_data_info(0)['img_path']
    true_class = Path(image_file).parent.name
    out_file = tmp_path / 'classes.png'
    demo = load_tool('image_demo')
    layout = demo.main([image_file, str(DEMOS / 'incnext_cls_demo.py'), cls_run['checkpoint'], '--gt', true_class,
                        '--out-file', str(out_file)])
    panels, legend = read_demo_picture(out_file, layout)
    assert list(panels) == ['input', 'top-5'] and layout['factor'] == 8 and not legend
    assert np.array_equal(panels['input'], enlarged(mmcv.imread(image_file, channel_order='rgb'), 8))
    assert panels['top-5'].shape[0] == 384
    ink = panels['top-5'].reshape(-1, 3)
    # The true class is named in TRUTH's green. Its thin anti-aliased strokes are blends of that green and the white
    # panel, and whether any pixel has the exact colour depends on OpenCV's rasteriser (5.0 yes, 4.12 no): count the
    # green-dominant pixels instead (the bars are blue, the other text black).
    r, g, b = ink.astype(int).T
    assert ((g - r > 40) & (g - b > 20)).sum() >= 20
    assert (ink == demo.BAR).all(-1).sum() >= 4 * 5  # the score bars of (at least) the four other classes
