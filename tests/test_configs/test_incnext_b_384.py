"""InceptionNeXt-B at 384x384 (configs/incnext_b_in1k_384.py): the official fine-tune's recipe value by value
(scripts/inceptionnext/finetune_inceptionnext_base.sh and the official train.py's defaults), timm's evaluation of
inception_next_base.sail_in1k_384, its weights in both released layouts, its size, the EMA against timm's
ModelEmaV2, and the config training and evaluating end to end on the embedded data."""
import copy
import inspect

import mmcv
import numpy as np
import pytest
import timm
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.dataset import Compose
from mmengine.evaluator import BaseMetric, Evaluator
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from mmengine.registry import init_default_scope
from mmengine.runner import Runner
from PIL import Image
from safetensors.torch import save_file
from timm.data import create_transform, resolve_data_config
from timm.loss import LabelSmoothingCrossEntropy
from timm.utils import ModelEmaV2
from helpers import (REPO, load_config, load_tool, randomize_reference_state, relative_error, require,
                      require_config, small_classification_config)

import mmincnext.engine.hooks as hooks_module
from mmincnext.checkpoint import read_checkpoint
from mmincnext.engine import TimmEMAHook
from mmincnext.models import InceptionNeXt

CONFIG = 'incnext_b_in1k_384.py'
RELEASE = 'https://github.com/sail-sg/inceptionnext/releases/download/model/inceptionnext_{}.pth'
TIMM_NAME = 'inception_next_base.sail_in1k_384'
# scripts/inceptionnext/finetune_inceptionnext_base.sh, as it passes them to train.py (also --sched None and
# --mixup 0 --cutmix 0, which turn the schedule and the batch augments off).
SCRIPT = dict(img_size=384, epochs=30, opt='adamw', lr=5e-5, total_batch=1024, per_gpu_batch=32,
              model_ema_decay=0.9999, drop_path=0.7, drop=0.5, initial_checkpoint=RELEASE.format('base'))
# The official train.py's defaults (timm 0.6.11's train.py with the DeiT values its docstring lists) that the script
# leaves as they are and that act in this run. Its schedule arguments (--warmup-epochs 5, --warmup-lr 1e-6,
# --min-lr 1e-5, --cooldown-epochs 10) do not: timm 0.6.11's create_scheduler builds no scheduler for --sched None
# and returns --epochs as the number of epochs.
TRAIN_PY = dict(weight_decay=0.05, opt_eps=1e-8, opt_betas=(0.9, 0.999), clip_grad=None, smoothing=0.1,
                aa=dict(magnitude_level=9, magnitude_std=0.5, policies='timm_increasing', num_policies=2),
                reprob=0.25, recount=1, hflip=0.5, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3),
                train_interpolation=('bilinear', 'bicubic'), seed=42)
# ../shared/PAPER.md and the official README: InceptionNeXt-B at 384.
# (Its top-1, 85.2, is the model index's: tests/test_configs/test_model_index.py.)
PAPER = dict(params_m=86.67, macs_g=43.6)
TINY_ARCH = dict(depths=(1, 1, 1, 1), dims=(16, 32, 64, 128))


def build(cfg_model):
    MODELS = require('mmpretrain.registry').MODELS
    init_default_scope('mmpretrain')
    return MODELS.build(cfg_model)


def hook_cfg(cfg, hook_type):
    hooks = [hook for hook in cfg.custom_hooks if hook['type'] == hook_type]
    assert len(hooks) == 1, f'{hook_type}: {cfg.custom_hooks}'
    return hooks[0]


# --- the recipe ---
def test_recipe_is_the_official_fine_tune():
    cfg = load_config(CONFIG)
    model = cfg.model
    assert model.init_cfg == dict(type='Pretrained', checkpoint=SCRIPT['initial_checkpoint'])
    assert model.backbone.arch == 'base' and model.backbone.drop_path_rate == SCRIPT['drop_path']
    assert model.head.dropout == SCRIPT['drop']
    assert model.train_cfg is None  # --mixup 0 --cutmix 0: no batch augments
    assert model.head.loss == dict(type='LabelSmoothLoss', label_smooth_val=TRAIN_PY['smoothing'], mode='original')

    optimizer = cfg.optim_wrapper.optimizer
    assert (optimizer.type.lower(), optimizer.lr) == (SCRIPT['opt'], SCRIPT['lr'])
    assert optimizer.weight_decay == TRAIN_PY['weight_decay'] and cfg.optim_wrapper.paramwise_cfg.flat_decay_mult == 0
    assert (optimizer.eps, tuple(optimizer.betas)) == (TRAIN_PY['opt_eps'], TRAIN_PY['opt_betas'])
    assert cfg.optim_wrapper.get('clip_grad') is TRAIN_PY['clip_grad']
    assert cfg.optim_wrapper.get('type', 'OptimWrapper') == 'OptimWrapper'  # float32: the script has no --amp
    assert cfg.optim_wrapper.get('accumulative_counts', 1) == 1
    assert cfg.param_scheduler == []  # --sched None: the lr is constant, no warm-up, no cool-down
    assert cfg.train_cfg.max_epochs == SCRIPT['epochs'] and cfg.train_cfg.val_interval == 1
    # 32 per GPU as the script's forward passes; the total batch at the GPU count the lr is given for.
    assert cfg.train_dataloader.batch_size == SCRIPT['per_gpu_batch']
    assert cfg.auto_scale_lr == dict(base_batch_size=SCRIPT['total_batch'], enable=True)

    ema = hook_cfg(cfg, 'TimmEMAHook')
    assert 1 - ema['momentum'] == pytest.approx(SCRIPT['model_ema_decay'], rel=1e-12) and ema['update_buffers']
    assert ema.get('ema_type', 'ExponentialMovingAverage') == 'ExponentialMovingAverage'
    hook_cfg(cfg, 'SyncBuffersHook')  # --dist-bn reduce
    assert cfg.randomness.seed == TRAIN_PY['seed'] and cfg.randomness.diff_rank_seed
    assert cfg.train_dataloader.drop_last


def test_train_pipeline_is_the_b_recipe_at_384():
    """The B config's augmentation (pinned to train.py's defaults in test_imagenet_recipe.py) with 384 crops;
    RandAugment's translations are relative to the image size in both timm's rand-increasing ops and mmpretrain's."""
    pipeline = load_config(CONFIG).train_dataloader.dataset.pipeline
    b_pipeline = load_config('incnext_b_in1k.py').train_dataloader.dataset.pipeline
    crop = pipeline[1]
    assert crop.type == 'RandomChoice'
    crops = [choice[0] for choice in crop.transforms]
    assert sorted(c.interpolation for c in crops) == sorted(TRAIN_PY['train_interpolation'])
    assert {c.scale for c in crops} == {SCRIPT['img_size']}
    defaults = inspect.signature(require('mmpretrain.datasets').RandomResizedCrop).parameters
    for key, expected in (('crop_ratio_range', TRAIN_PY['scale']), ('aspect_ratio_range', TRAIN_PY['ratio'])):
        assert all(tuple(c.get(key, defaults[key].default)) == pytest.approx(expected) for c in crops), key
    at_224 = copy.deepcopy(pipeline)
    for choice in at_224[1].transforms:
        choice[0].scale = 224
    assert at_224 == b_pipeline

    flip, rand_augment, erasing = pipeline[2:5]
    assert (flip.type, flip.prob, flip.direction) == ('RandomFlip', TRAIN_PY['hflip'], 'horizontal')
    assert {k: rand_augment[k] for k in TRAIN_PY['aa']} == TRAIN_PY['aa'] and rand_augment.total_level == 10
    assert (erasing.type, erasing.erase_prob, erasing.mode) == ('RandomErasing', TRAIN_PY['reprob'], 'rand')
    assert erasing.get('max_count', 1) == TRAIN_PY['recount']


def test_loss_is_timms_label_smoothing():
    """Without mixup train.py trains with LabelSmoothingCrossEntropy(0.1) on the hard labels."""
    loss = build(load_config(CONFIG).model.head.loss)
    logits = torch.randn(8, 1000, generator=torch.Generator().manual_seed(0)) * 3
    labels = torch.randint(0, 1000, (8, ), generator=torch.Generator().manual_seed(1))
    expected = LabelSmoothingCrossEntropy(smoothing=TRAIN_PY['smoothing'])(logits, labels)
    assert loss(logits, labels).item() == pytest.approx(expected.item(), rel=1e-6)


def test_drop_path_and_head_dropout_are_timms():
    """--drop-path 0.7 and --drop 0.5 as timm's inception_next_base takes them (drop_path_rate, drop_rate): the same
    stochastic depth in every block and the same head dropout. (timm's widths are shrunk: the rates depend on the
    depths alone.)"""
    ours = build(load_config(CONFIG).model)
    reference = timm.create_model('inception_next_base', drop_path_rate=SCRIPT['drop_path'], drop_rate=SCRIPT['drop'],
                                  dims=(8, 16, 32, 64))
    assert ours.data_preprocessor.batch_augments is None

    def drop_paths(module):
        return [float(getattr(block.drop_path, 'drop_prob', 0.)) for stage in module.stages for block in stage.blocks]

    assert len(drop_paths(reference)) == sum(InceptionNeXt.arch_settings['base']['depths'])
    assert drop_paths(ours.backbone) == pytest.approx(drop_paths(reference), rel=1e-6)
    assert drop_paths(ours.backbone)[-1] == pytest.approx(SCRIPT['drop_path'])
    assert ours.head.drop.p == reference.head.drop.p == SCRIPT['drop']


# --- evaluation: timm's pretrained config of the released weights ---
def test_test_pipeline_is_timms_pretrained_cfg(tmp_path):
    """The config's test pipeline and data preprocessor give the tensors timm's transform for
    inception_next_base.sail_in1k_384 (384, crop_pct 1.0, bicubic) gives, on landscape and portrait images whose
    resized long side is not a whole number."""
    pretrained_cfg = timm.models.get_pretrained_cfg(TIMM_NAME).to_dict()
    data_config = resolve_data_config(pretrained_cfg=pretrained_cfg)
    assert (data_config['input_size'], data_config['crop_pct'], data_config['interpolation']) == (
        (3, 384, 384), 1.0, 'bicubic')
    reference = create_transform(**data_config)

    cfg = load_config(CONFIG)
    init_default_scope('mmpretrain')
    pipeline = Compose(cfg.test_dataloader.dataset.pipeline)
    preprocessor = build(dict(type='ClsDataPreprocessor', **cfg.data_preprocessor))
    rng = np.random.default_rng(0)
    for height, width in ((343, 457), (512, 401)):
        path = tmp_path / f'{height}x{width}.png'  # lossless: both readers see the same pixels
        image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        image[::7] = 255 - image[::7]  # some structure for bicubic to resample
        mmcv.imwrite(image, str(path))
        ours = preprocessor(dict(inputs=[pipeline(dict(img_path=str(path)))['inputs']]))['inputs'][0]
        expected = reference(Image.open(path).convert('RGB'))
        assert ours.shape == expected.shape == (3, 384, 384)
        torch.testing.assert_close(ours, expected, rtol=0, atol=1e-5)


@pytest.fixture(scope='module')
def released_384_files(tmp_path_factory):
    """timm's inception_next_base.sail_in1k_384 with random, non-trivial weights, written as the official release
    (inceptionnext_base_384.pth: a flat state_dict) and as timm's hub file (model.safetensors); its logits at 384."""
    root = tmp_path_factory.mktemp('base_384')
    torch.manual_seed(0)
    reference = randomize_reference_state(timm.create_model(TIMM_NAME, pretrained=False))
    state_dict = reference.state_dict()
    torch.save(state_dict, root / 'inceptionnext_base_384.pth')
    save_file({k: v.contiguous() for k, v in state_dict.items()}, str(root / 'model.safetensors'))
    x = torch.randn(1, 3, 384, 384, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits = reference(x)
    return dict(root=root, state_dict=state_dict, x=x, logits=logits)


def test_released_384_weights_give_timms_logits(released_384_files, tmp_path):
    """Both layouts load strictly into the config's classifier, which then computes timm's logits at 384x384; so
    does tools/convert_checkpoint.py's output of the official file (what tools/test.py takes): the same tensors."""
    root = released_384_files['root']
    model = build(load_config(CONFIG).model).eval()  # built once, loaded from each file

    def load(path):
        with torch.no_grad():
            for tensor in model.state_dict().values():
                tensor.zero_()  # nothing left from the previous file
        model.init_cfg = dict(type='Pretrained', checkpoint=str(path))
        model.init_weights()
        return copy.deepcopy(model.state_dict())

    for path in (root / 'inceptionnext_base_384.pth', root / 'model.safetensors'):
        loaded = load(path)
        with torch.no_grad():
            logits = model(released_384_files['x'])
        error = relative_error(logits, released_384_files['logits'])
        assert error < 1e-5, f'{path.name}: relative error {error:.2e}'

    converted = tmp_path / 'incnext_b_in1k_384.pth'
    checkpoint = load_tool('convert_checkpoint').main([str(root / 'inceptionnext_base_384.pth'), str(converted)])
    assert checkpoint['meta']['arch'] == 'base'
    from_converted = load(converted)
    assert all(torch.equal(from_converted[k], v) for k, v in loaded.items())


def test_released_384_weights_initialise_a_dense_backbone(released_384_files):
    """The 384 weights fit the dense configs' B backbone (four outputs with new output norms) as the 224 ones do."""
    path = released_384_files['root'] / 'model.safetensors'
    backbone = InceptionNeXt('base', out_indices=(0, 1, 2, 3), out_norms=True,
                             init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    backbone.init_weights()
    expected = {k: v for k, v in released_384_files['state_dict'].items() if not k.startswith('head.')}
    loaded = {k: v for k, v in backbone.state_dict().items() if not k.startswith(('norm0.', 'norm1.', 'norm2.',
                                                                                  'norm3.'))}
    assert set(loaded) == set(expected)
    assert all(torch.equal(loaded[k], v) for k, v in expected.items())


def test_get_flops_counts_the_papers_figures_at_384(capsys):
    """With no --shape, tools/get_flops.py counts a classifier at its test crop: 384 here."""
    require_config(CONFIG)
    load_tool('get_flops').main([str(REPO / 'configs' / CONFIG)])
    out = capsys.readouterr().out
    assert 'input 3x384x384' in out
    params = float(out.split('params:')[1].split('M')[0])
    macs = float(out.split('MACs:')[1].split('G')[0])
    assert round(params, 2) == PAPER['params_m'] and round(macs, 1) == PAPER['macs_g']
    with torch.device('meta'):
        assert params == round(sum(p.numel() for p in timm.create_model(TIMM_NAME).parameters()) / 1e6, 2)


# --- the EMA: timm's ModelEmaV2 as train.py updates it ---
class ToyClassifier(BaseModel):
    """Conv, BN (buffers to average), linear: enough to tell an average of parameters and buffers apart."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 2)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        logits = self.fc(self.bn(self.conv(inputs)).mean((2, 3)))
        if mode == 'loss':
            return dict(loss=F.cross_entropy(logits, data_samples))
        return logits


class Recorder(Hook):
    """The weights training starts from, after every optimizer step, and those validation runs."""
    priority = 'LOWEST'

    def __init__(self):
        self.start, self.steps, self.validated = None, [], []

    def before_train(self, runner):
        self.start = copy.deepcopy(runner.model.state_dict())

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.optim_wrapper.should_update():
            self.steps.append(copy.deepcopy(runner.model.state_dict()))

    def before_val_epoch(self, runner):  # after TimmEMAHook swapped the average in
        self.validated.append((len(self.steps), copy.deepcopy(runner.model.state_dict())))


class NoMetric(BaseMetric):
    def process(self, data_batch, data_samples):
        self.results.append(0)

    def compute_metrics(self, results):
        return dict(none=0.)


def timm_ema(start, steps, decay):
    """timm's ModelEmaV2 as train.py runs it: created from the weights training starts from, updated after every
    optimizer step."""
    model = ToyClassifier()
    model.load_state_dict(start)
    ema = ModelEmaV2(model, decay=decay)
    for weights in steps:
        model.load_state_dict(weights)
        ema.update(model)
    return ema.module.state_dict()


def assert_same_weights(ours, expected):
    keys = [k for k in expected if not k.endswith('num_batches_tracked')]  # BN momentum is set: never read
    assert sorted(keys) == sorted(k for k in ours if not k.endswith('num_batches_tracked'))
    for key in keys:
        torch.testing.assert_close(ours[key], expected[key], rtol=1e-5, atol=1e-7, msg=key)


@pytest.mark.parametrize('accumulative_counts', [1, 3])
def test_ema_is_timms_model_ema_v2(accumulative_counts, tmp_path):
    """The average equals ModelEmaV2's over the same optimizer steps, gradient accumulation or not; validation runs
    the average, and the checkpoint keeps it as its state_dict, the trained weights as ema_state_dict. A decay of
    0.5 (not the config's 0.9999) makes every update visible."""
    decay = 0.5
    generator = torch.Generator().manual_seed(0)
    data = [dict(inputs=torch.randn(3, 8, 8, generator=generator), data_samples=i % 2) for i in range(6)]
    recorder = Recorder()
    torch.manual_seed(0)
    runner = Runner(
        model=ToyClassifier(), work_dir=str(tmp_path),
        train_dataloader=dict(dataset=data, batch_size=1, sampler=dict(type='DefaultSampler', shuffle=False),
                              collate_fn=dict(type='default_collate')),
        val_dataloader=dict(dataset=data[:2], batch_size=2, sampler=dict(type='DefaultSampler', shuffle=False),
                            collate_fn=dict(type='default_collate')),
        val_evaluator=Evaluator([NoMetric()]), val_cfg=dict(),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=0.05), accumulative_counts=accumulative_counts),
        train_cfg=dict(by_epoch=True, max_epochs=2, val_interval=1),
        custom_hooks=[dict(type='TimmEMAHook', momentum=1 - decay, update_buffers=True, priority='ABOVE_NORMAL'),
                      recorder],
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=2)), default_scope='mmengine')
    runner.train()
    ema_hook, = [hook for hook in runner.hooks if isinstance(hook, TimmEMAHook)]
    assert len(recorder.steps) == 2 * 6 // accumulative_counts

    expected = timm_ema(recorder.start, recorder.steps, decay)
    assert_same_weights(ema_hook.ema_model.module.state_dict(), expected)
    for steps_so_far, validated in recorder.validated:  # after epoch 1 and 2, the average of the steps so far
        assert_same_weights(validated, timm_ema(recorder.start, recorder.steps[:steps_so_far], decay))
    assert_same_weights(runner.model.state_dict(), recorder.steps[-1])  # swapped back after validating

    checkpoint = read_checkpoint(str(tmp_path / 'epoch_2.pth'))
    assert_same_weights(checkpoint['state_dict'], expected)
    trained = {k.removeprefix('module.'): v for k, v in checkpoint['ema_state_dict'].items() if k != 'steps'}
    assert_same_weights(trained, recorder.steps[-1])


def test_ema_buffers_are_averaged_over_processes_each_epoch(monkeypatch):
    """train.py's --dist-bn reduce averages the EMA's BN statistics over the GPUs, as the model's."""
    reduced = []
    monkeypatch.setattr(hooks_module, 'is_distributed', lambda: True)
    monkeypatch.setattr(hooks_module, 'all_reduce_params', lambda params, op: reduced.append((list(params), op)))

    class FakeRunner:
        model = ToyClassifier()

    hook = TimmEMAHook(momentum=1e-4, update_buffers=True)
    hook.before_run(FakeRunner())
    hook.after_train_epoch(FakeRunner())
    buffers, op = reduced[0]
    assert op == 'mean' and len(reduced) == 1
    assert [id(b) for b in buffers] == [id(b) for b in hook.ema_model.module.buffers()]
    assert len(buffers) == 3  # running_mean, running_var, num_batches_tracked


# --- the config end to end ---
@pytest.mark.integration
def test_config_trains_with_ema_and_evaluates_at_384(tmp_path):
    """A config inheriting configs/incnext_b_in1k_384.py, as a user writes one: a small arch from a checkpoint in the
    official layout, the embedded ImageNet-layout data; everything else (pipelines at 384, EMA, optimizer, constant
    lr) is the config's. Trains an epoch of two steps through tools/train.py, then validates the EMA at 384."""
    require_config(CONFIG)
    torch.manual_seed(0)
    start = timm.models.inception_next.MetaNeXt(num_classes=1000, **TINY_ARCH)  # the official layout
    checkpoint = tmp_path / 'start.pth'
    torch.save(start.state_dict(), checkpoint)
    child = small_classification_config(tmp_path, CONFIG, TINY_ARCH, 128,
                                        f'init_cfg=dict(checkpoint={str(checkpoint)!r})', name='incnext_small_384.py')
    runner = load_tool('train').main([str(child), '--work-dir', str(tmp_path / 'work_dir')])

    assert runner.iter == 2  # 10 images (one per class), batch 4, the last incomplete batch dropped
    lr = SCRIPT['lr'] * 4 / SCRIPT['total_batch']  # auto_scale_lr, then constant
    model_params = {id(p) for p in runner.model.parameters()}  # (not the scalar mmengine adds to log the settings)
    lrs = [group['lr'] for group in runner.optim_wrapper.param_groups if id(group['params'][0]) in model_params]
    assert lrs == pytest.approx([lr] * len(lrs), rel=1e-12) and len(lrs) > 1
    assert runner.message_hub.get_scalar('train/lr').data[0].tolist() == pytest.approx([lr, lr])
    for loader in (runner.train_dataloader, runner.val_dataloader):
        assert loader.dataset[0]['inputs'].shape == (3, 384, 384)
    ema_hook, = [hook for hook in runner.hooks if isinstance(hook, TimmEMAHook)]
    assert ema_hook.ema_model.momentum == pytest.approx(1 - SCRIPT['model_ema_decay'])
    assert int(ema_hook.ema_model.steps) == 1 + 2  # the start, then one update per optimizer step
    assert 0 <= runner.message_hub.get_scalar('val/accuracy/top1').current() <= 100

    ema = ema_hook.ema_model.module.state_dict()
    saved = read_checkpoint(str(tmp_path / 'work_dir' / 'epoch_1.pth'))
    assert all(torch.equal(saved['state_dict'][k], v) for k, v in ema.items())
    # The EMA is 0.9999 of the start: after two small steps it is nearly the loaded weights, the trained ones less so.
    started = {f'backbone.{k}' if not k.startswith('head.') else k: v for k, v in start.state_dict().items()}
    trained = runner.model.state_dict()
    moved = [k for k, v in started.items() if v.is_floating_point() and not torch.equal(trained[k], v)]
    assert moved
    for key in moved:
        assert (ema[key] - started[key]).abs().max() < (trained[key] - started[key]).abs().max()
