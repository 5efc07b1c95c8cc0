"""ImageNet classification in the same registry: the classifier configs against the paper's sizes and timm's logits,
the recipe against timm's optimizer grouping, the synthetic ImageNet-layout set, and the pretrain -> dense hand-off.
"""
import hashlib
import json
from pathlib import Path

import mmcv
import numpy as np
import pytest
import timm
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from safetensors.torch import save_file
from timm.optim import param_groups_weight_decay
from helpers import REPO, classifier_train_step, load_config, load_tool, relative_error, require

require('mmpretrain')  # the configs, the dataset and the classifier are mmpretrain's
from mmpretrain.registry import DATASETS, MODELS  # noqa: E402

import mmincnext.datasets.synthetic_imagenet as synthetic  # noqa: E402
from mmincnext.checkpoint import CheckpointError, read_checkpoint  # noqa: E402
from mmincnext.datasets.synthetic_imagenet import SyntheticImageNet, generate_synthetic_imagenet  # noqa: E402
from mmincnext.models import InceptionNeXt  # noqa: E402
from mmincnext.models.classifiers import InceptionNeXtClassifier  # noqa: E402

CONFIGS = dict(atto='incnext_atto_in1k.py', tiny='incnext_t_in1k.py', small='incnext_s_in1k.py',
               base='incnext_b_in1k.py')
DEMO_CONFIG = REPO / 'configs' / 'demo' / 'incnext_cls_demo.py'
# ../shared/PAPER.md: parameters (with the 1000-class head) in millions, and drop path T/S/B.
PAPER_PARAMS_M = dict(atto=4.16, tiny=28.06, small=49.37, base=86.67)
PAPER_DROP_PATH = dict(tiny=0.1, small=0.3, base=0.4)
SMALL = dict(num_train=6, num_val=3, image_size=48)


def build_model(cfg_model) -> InceptionNeXtClassifier:
    init_default_scope('mmpretrain')
    return MODELS.build(cfg_model)


def digests(root: Path):
    return {str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest() for p in root.rglob('*.JPEG')}


@pytest.fixture(scope='module')
def small_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('cls') / 'synthetic_imagenet'
    generate_synthetic_imagenet(str(root), seed=0, **SMALL)
    return root


# --- the ImageNet configs ---
@pytest.mark.parametrize('arch', list(CONFIGS))
def test_configs_build_with_the_papers_sizes(arch):
    cfg = load_config(CONFIGS[arch])
    assert cfg.default_scope == 'mmpretrain' and cfg.model.backbone.type == 'InceptionNeXt'
    model = build_model(cfg.model)
    with torch.device('meta'):  # sizes only: skip allocating and initialising timm's weights
        reference = timm.create_model(f'inception_next_{arch}', pretrained=False)
    count = sum(p.numel() for p in model.parameters())
    assert count == sum(p.numel() for p in reference.parameters())
    assert round(count / 1e6, 2) == PAPER_PARAMS_M[arch]
    # Same tensors under the same names: timm's stem.*/stages.* are the classifier's backbone.*, head.* its head.*.
    expected = {(k if k.startswith('head.') else f'backbone.{k}'): tuple(v.shape)
                for k, v in reference.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == expected
    if arch in PAPER_DROP_PATH:
        assert cfg.model.backbone.drop_path_rate == PAPER_DROP_PATH[arch]


@pytest.mark.parametrize('name', ['incnext_t_in1k.py', 'incnext_atto_in1k.py', 'incnext_b_in1k_384.py'])
def test_weight_decay_groups_equal_timms(name):
    """No decay on exactly the parameters timm's optimizer exempts (every 1-D one: norms, biases, layer scales)."""
    cfg = load_config(name)
    cfg.model.backbone.arch = 'atto'
    cfg.model.head.in_channels = 320
    model = build_model(cfg.model)
    reference = timm.create_model('inception_next_atto', pretrained=False)
    names = {id(p): n for n, p in reference.named_parameters()}
    timm_no_decay = {names[id(p)] for group in param_groups_weight_decay(reference, 0.05)
                     if group['weight_decay'] == 0 for p in group['params']}

    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    ours = {id(p): n.removeprefix('backbone.') for n, p in model.named_parameters()}
    # (mmengine adds a group holding a dummy scalar, the base settings it logs: not a model parameter)
    decay = {ours[id(p)]: group['weight_decay'] for group in optim_wrapper.param_groups for p in group['params']
             if id(p) in ours}
    assert len(decay) == len(names)
    assert {n for n, wd in decay.items() if wd == 0} == timm_no_decay
    assert {wd for n, wd in decay.items() if n not in timm_no_decay} == {0.05}


def test_lr_scales_with_the_actual_batch():
    for name, base_batch, lr in (('incnext_t_in1k.py', 4096, 4e-3), ('incnext_atto_in1k.py', 1280, 1e-3)):
        cfg = load_config(name)
        assert cfg.auto_scale_lr == dict(base_batch_size=base_batch, enable=True)
        assert cfg.optim_wrapper.optimizer.lr == lr and cfg.optim_wrapper.optimizer.type == 'AdamW'


@pytest.mark.parametrize('name', ['incnext_t_in1k.py', 'incnext_atto_in1k.py'])
def test_imagenet_pipelines_read_the_folder_layout(name, small_root):
    """The configs' dataset (mmpretrain's ImageNet, its train/val folders) and pipelines, on ImageNet-layout data."""
    cfg = load_config(name)
    init_default_scope('mmpretrain')
    for loader in ('train_dataloader', 'val_dataloader'):
        dataset_cfg = cfg[loader].dataset
        assert dataset_cfg.type == 'ImageNet'
        dataset = DATASETS.build(dict(dataset_cfg, data_root=str(small_root),
                                      metainfo=dict(classes=synthetic.CLASSES)))
        split = dataset_cfg.split
        assert len(dataset) == len(synthetic.CLASSES) * SMALL[f'num_{split}']
        sample = dataset[len(dataset) - 1]
        assert sample['inputs'].shape == (3, 224, 224)
        assert sample['data_samples'].gt_label.item() == len(synthetic.CLASSES) - 1


def test_recipe_training_step_with_mixup_and_cutmix():
    """One AdamW step of the T config's model, loss and Mixup/CutMix batch augments (tiny arch, 10 classes)."""
    cfg = load_config('incnext_t_in1k.py')
    cfg.model.backbone.arch = dict(depths=(1, 1, 1, 1), dims=(16, 32, 64, 128))
    cfg.model.head.update(in_channels=128, num_classes=10)
    cfg.model.data_preprocessor = dict(cfg.data_preprocessor, num_classes=10)
    model = build_model(cfg.model)
    model.init_weights()
    losses, unchanged = classifier_train_step(model, build_optim_wrapper(model, cfg.optim_wrapper))
    assert torch.isfinite(losses['loss'])
    assert not unchanged  # every parameter changes, the head's and the layer scales included


# --- loading pretrained classifiers ---
@pytest.mark.parametrize('arch', ['atto', 'tiny'])
@pytest.mark.parametrize('file_format', ['pth', 'safetensors'])
def test_pretrained_logits_equal_timm(arch, file_format, timm_reference, tmp_path):
    reference = timm_reference(arch)
    path = tmp_path / f'inception_next_{arch}.{file_format}'
    state_dict = reference.state_dict()
    if file_format == 'pth':
        torch.save(state_dict, path)  # the official release's flat layout
    else:
        save_file({k: v.contiguous() for k, v in state_dict.items()}, str(path))
    cfg = load_config(CONFIGS[arch])
    cfg.model.init_cfg = dict(type='Pretrained', checkpoint=str(path))
    model = build_model(cfg.model)
    model.init_weights()
    model.eval()
    x = torch.randn(2, 3, 80, 112, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits, expected = model(x), reference(x)
    assert logits.shape == expected.shape == (2, 1000)
    error = relative_error(logits, expected)
    assert error < 1e-5, f'{arch} {file_format}: relative error {error:.2e}'


@pytest.fixture(scope='module')
def atto_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    state_dict = timm.create_model('inception_next_atto', pretrained=False).state_dict()
    return tmp_path_factory.mktemp('atto'), state_dict


def build_pretrained(config_name, checkpoint, **head):
    cfg = load_config(config_name)
    cfg.model.init_cfg = dict(type='Pretrained', checkpoint=str(checkpoint))
    cfg.model.head.update(head)
    model = build_model(cfg.model)
    model.init_weights()
    return model


@pytest.mark.parametrize('change, message', [
    (lambda sd: sd.pop('stages.2.blocks.3.mlp.fc1.weight'), 'missing in the checkpoint'),
    (lambda sd: sd.pop('head.norm.bias'), 'missing in the checkpoint'),
    (lambda sd: [sd.pop(k) for k in list(sd) if k.startswith('head.')], "prefix 'head.'"),
    (lambda sd: sd.update(extra=torch.zeros(1)), 'unexpected in the checkpoint'),
])
def test_incomplete_checkpoint_raises(atto_checkpoint, change, message):
    root, state_dict = atto_checkpoint
    state_dict = dict(state_dict)
    change(state_dict)
    path = root / 'changed.pth'
    torch.save(state_dict, path)
    with pytest.raises(CheckpointError, match=message):
        build_pretrained('incnext_atto_in1k.py', path)


def test_other_class_count_or_arch_raises(atto_checkpoint):
    root, state_dict = atto_checkpoint
    path = root / 'atto.pth'
    torch.save(state_dict, path)
    with pytest.raises(CheckpointError, match=r'fc2.weight: checkpoint \(1000, 960\) != model \(10, 960\)'):
        build_pretrained('incnext_atto_in1k.py', path, num_classes=10)
    with pytest.raises(CheckpointError, match='shape mismatch'):
        build_pretrained('incnext_t_in1k.py', path)


def test_unknown_pretrained_option_is_named(atto_checkpoint):
    cfg = load_config('incnext_atto_in1k.py')
    cfg.model.init_cfg = dict(type='Pretrained', checkpoint='x.pth', prefix='backbone.')
    with pytest.raises(ValueError, match="'checkpoint' \\(required\\) and 'map_location'; got \\['checkpoint', "
                                         "'prefix'\\]"):
        build_model(cfg.model).init_weights()


# --- the synthetic ImageNet-layout set ---
def test_writes_the_imagenet_folder_layout(small_root):
    assert len(synthetic.CLASSES) >= 10 and list(synthetic.CLASSES) == sorted(synthetic.CLASSES)
    for split in ('train', 'val'):
        folders = sorted(p.name for p in (small_root / split).iterdir())
        assert folders == list(synthetic.CLASSES)
        for folder in folders:
            files = sorted((small_root / split / folder).iterdir())
            assert len(files) == SMALL[f'num_{split}'] and all(f.suffix == '.JPEG' for f in files)
    image = mmcv.imread(str(next((small_root / 'val' / synthetic.CLASSES[0]).iterdir())))
    assert image.shape == (48, 48, 3) and image.dtype == np.uint8
    meta = json.loads((small_root / 'meta.json').read_text())
    assert meta['images_per_class'] == dict(train=6, val=3) and meta['classes'] == list(synthetic.CLASSES)


def test_same_seed_same_bytes_and_val_is_not_train(small_root, tmp_path):
    generate_synthetic_imagenet(str(tmp_path / 'again'), seed=0, **SMALL)
    assert digests(tmp_path / 'again') == digests(small_root)
    by_split = {split: set(digests(small_root / split).values()) for split in ('train', 'val')}
    assert len(by_split['train']) == 6 * len(synthetic.CLASSES) and not by_split['train'] & by_split['val']


def test_classes_differ_by_shape_and_texture_not_colour():
    """A nearest-centroid classifier on colour statistics (mean and std per channel) stays near chance."""
    def colour_features(split_id, count):
        features, labels = [], []
        for label in range(len(synthetic.CLASSES)):
            for i in range(count):
                image = synthetic.render_object_image(np.random.default_rng((5, split_id, label, i)), label, 48)
                pixels = image.reshape(-1, 3).astype(np.float32)
                features.append(np.concatenate([pixels.mean(0), pixels.std(0)]))
                labels.append(label)
        return np.array(features), np.array(labels)

    train_x, train_y = colour_features(0, 30)
    val_x, val_y = colour_features(1, 20)
    centroids = np.stack([train_x[train_y == c].mean(0) for c in range(len(synthetic.CLASSES))])
    predicted = np.linalg.norm(val_x[:, None] - centroids[None], axis=-1).argmin(1)
    assert (predicted == val_y).mean() < 0.3  # chance is 0.1


def test_existing_folder_with_other_settings_raises(small_root, tmp_path):
    with pytest.raises(FileExistsError, match='other settings'):
        generate_synthetic_imagenet(str(small_root), seed=1, **{**SMALL})
    (tmp_path / 'foreign').mkdir()
    with pytest.raises(FileExistsError, match='no meta.json'):
        generate_synthetic_imagenet(str(tmp_path / 'foreign'), **SMALL)
    with pytest.raises(ValueError, match="split must be one of \\('train', 'val'\\), got 'test'"):
        SyntheticImageNet(data_root=str(small_root), split='test', **SMALL)


# --- the demo: train with tools/train.py, then hand the backbone to a dense model ---
@pytest.fixture(scope='module')
def demo_run(tmp_path_factory):
    """The demo config through tools/train.py, as a user runs it, on a tiny copy of the data for one epoch."""
    root = tmp_path_factory.mktemp('cls_demo')
    train_tool = load_tool('train')
    options = ['train_cfg.max_epochs=1', 'default_hooks.logger.interval=1']
    for loader in ('train_dataloader', 'val_dataloader'):
        options += [f'{loader}.dataset.data_root={root / "data"}', f'{loader}.dataset.num_train=6',
                    f'{loader}.dataset.num_val=3']
    runner = train_tool.main([str(DEMO_CONFIG), '--work-dir', str(root / 'work_dir'), '--cfg-options', *options])
    return dict(runner=runner, checkpoint=root / 'work_dir' / 'epoch_1.pth', cfg=Config.fromfile(str(DEMO_CONFIG)))


def test_demo_trains_validates_and_checkpoints(demo_run):
    runner = demo_run['runner']
    assert isinstance(runner.model, InceptionNeXtClassifier)
    assert len(runner.train_dataloader.dataset) == 6 * len(synthetic.CLASSES)
    assert demo_run['checkpoint'].is_file()
    metrics = runner.message_hub.log_scalars
    assert 0 <= metrics['val/accuracy/top1'].current() <= 100
    assert 0 <= metrics['val/accuracy/top5'].current() <= 100


def test_own_checkpoint_loads_into_the_classifier(demo_run):
    cfg = demo_run['cfg']
    cfg.model.init_cfg = dict(type='Pretrained', checkpoint=str(demo_run['checkpoint']))
    model = build_model(dict(cfg.model, data_preprocessor=cfg.data_preprocessor))
    model.init_weights()
    trained = demo_run['runner'].model
    for (name, ours), (_, saved) in zip(model.state_dict().items(), trained.state_dict().items()):
        assert torch.equal(ours, saved), name


def test_demo_checkpoint_initialises_the_segmentation_demo(demo_run):
    """The segmentation demo's backbone has this demo's arch: its init_cfg can point at our checkpoint."""
    SEG_MODELS = require('mmseg.registry').MODELS
    cfg = Config.fromfile(str(REPO / 'configs' / 'demo' / 'upernet_incnext_demo.py'))
    assert cfg.model.backbone.arch == demo_run['cfg'].model.backbone.arch
    cfg.model.backbone.init_cfg = dict(type='Pretrained', checkpoint=str(demo_run['checkpoint']), prefix='backbone.')
    init_default_scope('mmseg')
    segmentor = SEG_MODELS.build(cfg.model)
    segmentor.init_weights()
    trained = demo_run['runner'].model.backbone.state_dict()
    ours = segmentor.backbone.state_dict()
    assert trained and all(torch.equal(ours[k], v) for k, v in trained.items())


def test_pretrained_backbone_hands_off_to_a_dense_backbone(demo_run):
    """The classifier checkpoint initialises InceptionNeXt with output norms (the seg / det backbone): every
    backbone key, and only the new output norms keep their initialisation."""
    checkpoint = read_checkpoint(str(demo_run['checkpoint']))['state_dict']
    arch = demo_run['cfg'].model.backbone.arch
    dense = InceptionNeXt(arch, out_indices=(0, 1, 2, 3), out_norms=True,
                          init_cfg=dict(type='Pretrained', checkpoint=str(demo_run['checkpoint']),
                                        prefix='backbone.'))
    dense.init_weights()
    loaded = {k: v for k, v in dense.state_dict().items() if not k.startswith(('norm0.', 'norm1.', 'norm2.', 'norm3.'))}
    assert set(loaded) == {k.removeprefix('backbone.') for k in checkpoint if k.startswith('backbone.')}
    for name, value in loaded.items():
        assert torch.equal(value, checkpoint[f'backbone.{name}']), name
