"""Helpers the test modules share (``from helpers import ...``): where the repository is, skipping where a
library is missing, configs and tools loaded as the command line would, timm's reference run stage by stage."""
import copy
import functools
import importlib
import importlib.util
from pathlib import Path

import mmcv
import numpy as np
import pytest
import timm
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.hub import get_config
from mmengine.registry import HOOKS

from mmincnext.compat import DISTRIBUTIONS

REPO = Path(__file__).resolve().parents[1]


def require(module: str):
    """``module`` imported for a test, or the test skipped where the environment lacks it (make test-min's venv has
    mmcv-lite, without compiled ops, and no task library). Called at a test module's top, it skips the whole module.

    Only the absence of ``module`` itself, or of mmcv's compiled ops (which mmseg and mmdet import), skips: any other
    import error, e.g. a dependency a task library forgot to declare, fails as usual."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as err:
        missing = err.name or ''
        if missing == 'mmcv._ext':
            reason = f"needs mmcv's compiled ops ({module} imports them): mmcv or onedl-mmcv with ops, not mmcv-lite"
        elif missing and (module == missing or module.startswith(missing + '.')):
            families = DISTRIBUTIONS.get(missing)
            reason = f'needs {missing}' + (f' ({families[0]} or {families[1]})' if families else '')
        else:
            raise
        pytest.skip(reason, allow_module_level=True)


# The task library each of our configs builds with, by the dataset in its name; the embedded demos by name.
CONFIG_LIBRARIES = {'ade20k': 'mmseg', 'coco': 'mmdet', 'in1k': 'mmpretrain', 'upernet_incnext_demo': 'mmseg',
                    'mask_rcnn_incnext_demo': 'mmdet', 'incnext_cls_demo': 'mmpretrain'}


def require_config(name: str):
    """:func:`require` the task library that ``configs/<name>`` (or an ``'mmseg::...'``/``'mmdet::...'`` config)
    inherits from and builds with."""
    if '::' in name:
        return require(name.split('::')[0])
    stem = Path(name).stem
    libraries = {library for key, library in CONFIG_LIBRARIES.items() if key in stem}
    assert len(libraries) == 1, f'{name}: add its task library to CONFIG_LIBRARIES in tests/helpers.py'
    return require(libraries.pop())


def load_tool(name: str):
    """``tools/<name>.py`` as a module, to call its ``main(argv)`` as the command line would."""
    spec = importlib.util.spec_from_file_location(f'mmincnext_tools_{name}', REPO / 'tools' / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_config(name: str) -> Config:
    """``configs/<name>`` (the test skips where its task library is missing: :func:`require_config`)."""
    require_config(name)
    return Config.fromfile(str(REPO / 'configs' / name))


@functools.lru_cache(maxsize=None)
def _parsed_config(name: str) -> Config:
    return get_config(name) if '::' in name else load_config(name)


def config_copy(name: str) -> Config:
    """``configs/<name>``, or an mmseg/mmdet config ``'pkg::path'``, parsed once per session (a copy each call, so
    a test may change it; the test skips where its task library is missing: :func:`require_config`)."""
    require_config(name)
    return copy.deepcopy(_parsed_config(name))


def unscoped(node):
    """A config node as plain dicts and lists, without the ``_scope_`` keys that inheriting another package's base
    adds."""
    if isinstance(node, dict):
        return {k: unscoped(v) for k, v in node.items() if k != '_scope_'}
    if isinstance(node, (list, tuple)):
        return type(node)(unscoped(v) for v in node)
    return node


@functools.lru_cache(maxsize=None)
def timm_backbone_params(arch: str) -> int:
    """Parameters of timm's ``inception_next_<arch>`` without its classification head: the independent count of the
    backbone."""
    model = timm.create_model(f'inception_next_{arch}', pretrained=False)
    return sum(p.numel() for n, p in model.named_parameters() if not n.startswith('head.'))


def reference_stage_outputs(timm_model, x):
    """timm's InceptionNeXt (or ConvNeXt) run stage by stage: the four stage outputs our backbone returns without its
    output norms."""
    x = timm_model.stem(x)
    outs = []
    for stage in timm_model.stages:
        x = stage(x)
        outs.append(x)
    return outs


def relative_error(ours: torch.Tensor, reference: torch.Tensor) -> float:
    return ((ours - reference).norm() / reference.norm()).item()


def randomize_reference_state(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give a freshly built timm model non-trivial BN statistics, BN affine parameters and layer scales, so that
    a checkpoint made from it exercises every tensor (fresh ones are 0/1 and 1e-6 and would hide mix-ups)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                channels = module.num_features
                module.running_mean.copy_(torch.randn(channels, generator=gen) * 0.1)
                module.running_var.copy_(torch.rand(channels, generator=gen) + 0.5)
                module.weight.copy_(torch.rand(channels, generator=gen) + 0.5)
                module.bias.copy_(torch.randn(channels, generator=gen) * 0.1)
        for name, param in model.named_parameters():
            if name.endswith('gamma'):
                param.copy_(torch.rand(param.shape, generator=gen) * 0.5 + 0.25)
    return model.eval()


def enlarged(image: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour enlargement, as tools/image_demo.py draws small images."""
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


def read_demo_picture(out_file: Path, layout: dict):
    """The PNG written by tools/image_demo.py, its panels cut out by the layout it reported."""
    assert out_file.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    picture = mmcv.imread(str(out_file), channel_order='rgb')
    boxes = list(layout['panels'].values())
    assert len({y for _, y, _, _ in boxes}) == 1  # one row, left to right, not overlapping
    assert all(x0 + w0 < x1 for (x0, _, w0, _), (x1, _, _, _) in zip(boxes, boxes[1:]))
    assert all(x + w <= picture.shape[1] and y + h <= picture.shape[0] for x, y, w, h in boxes)
    panels = {title: picture[y:y + h, x:x + w] for title, (x, y, w, h) in layout['panels'].items()}
    for name, colour, (x, y, w, h) in layout['legend']:  # each swatch is its class's colour
        assert (picture[y:y + h, x:x + w] == colour).all(), name
    return panels, {name: tuple(colour) for name, colour, _ in layout['legend']}


# A small InceptionNeXt (every stage, both band kernels shorter) for tests that run many models.
TINY = dict(depths=(1, 1, 2, 1), dims=(16, 32, 64, 128), band_kernel_size=5, branch_ratio=0.25)


# The UperNet-T config and a tiny ADE20K-layout dataset for the tools' end-to-end tests.
UPERNET_T_CONFIG = str(REPO / 'configs' / 'upernet_incnext_t_ade20k.py')
NUM_LABELS = 4  # label values 0 (ADE20K's "other", ignored) and classes 1..3


def write_ade20k(root: Path, counts=(('training', 4), ('validation', 2)), size=64) -> Path:
    """ADEChallengeData2016 layout: RGB jpg images and 8-bit png label maps (0 = other) with the same stem."""
    rng = np.random.default_rng(0)
    colors = rng.integers(0, 256, (NUM_LABELS, 3))
    for split, count in counts:
        (root / 'images' / split).mkdir(parents=True)
        (root / 'annotations' / split).mkdir(parents=True)
        for i in range(count):
            label = np.zeros((size, size), np.uint8)
            cut = rng.integers(size // 4, 3 * size // 4)
            label[:, :cut], label[:, cut:] = 1, 2
            y, x = rng.integers(0, size // 2, 2)
            label[y:y + size // 3, x:x + size // 3] = 3
            label[:4] = 0
            image = np.clip(colors[label] + rng.normal(0, 20, (size, size, 3)), 0, 255).astype(np.uint8)
            stem = f'ADE_{split[:5]}_{i:08d}'
            mmcv.imwrite(image, str(root / 'images' / split / f'{stem}.jpg'))
            mmcv.imwrite(label, str(root / 'annotations' / split / f'{stem}.png'))
    return root


def tiny_options(data_root, checkpoint) -> list:
    """--cfg-options that make the UperNet-T config cheap on a CPU, on data written by :func:`write_ade20k`."""
    options = [
        'model.backbone.arch=atto', f'model.backbone.init_cfg.checkpoint={checkpoint}',
        'model.decode_head.in_channels=[40,80,160,320]', 'model.decode_head.channels=16',
        'model.auxiliary_head.in_channels=160', 'model.auxiliary_head.channels=8',
        'model.data_preprocessor.size=(64,64)',
        'train_dataloader.dataset.pipeline.2.scale=(256,64)',  # RandomResize
        'train_dataloader.dataset.pipeline.3.crop_size=(64,64)',  # RandomCrop
        'train_cfg.max_iters=2', 'train_cfg.val_interval=2', 'default_hooks.checkpoint.interval=2',
        'default_hooks.logger.interval=1',
    ]
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        options += [f'{loader}.dataset.data_root={data_root}', f'{loader}.num_workers=0',
                    f'{loader}.persistent_workers=False']
        if loader != 'train_dataloader':
            options.append(f'{loader}.dataset.pipeline.1.scale=(256,64)')  # Resize
    return options


# The segmentation demo config as a short training run (resume, compile).
DEMO_CONFIG = REPO / 'configs' / 'demo' / 'upernet_incnext_demo.py'


@HOOKS.register_module(force=True)
class _InterruptAfter(Hook):
    """Kills the run right after iteration ``iteration`` (and its checkpoint), like a pre-empted job."""

    priority = 'LOWEST'

    def __init__(self, iteration):
        self.iteration = iteration

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.iter + 1 == self.iteration:
            raise KeyboardInterrupt(f'interrupted after iteration {self.iteration}')


def demo_child_config(tmp_path, name, interrupt_after=None):
    """The demo config on a small generated set, 4 iterations, drop path on (so the model draws random numbers)."""
    require_config(DEMO_CONFIG.name)
    hooks = "[dict(type='NonFiniteLossHook'), dict(type='RandomStateHook')]"
    if interrupt_after:
        hooks = hooks[:-1] + f", dict(type='_InterruptAfter', iteration={interrupt_after})]"
    path = tmp_path / f'{name}.py'
    path.write_text(
        f"_base_ = '{DEMO_CONFIG}'\n"
        f"scenes = dict(data_root='{tmp_path / 'scenes'}', num_train=16, num_val=4, image_size=64)\n"
        "model = dict(data_preprocessor=dict(size=(64, 64)), backbone=dict(drop_path_rate=0.2))\n"
        "train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False, dataset=scenes)\n"
        "val_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False, dataset=scenes)\n"
        "test_dataloader = val_dataloader\n"
        "train_cfg = dict(max_iters=4, val_interval=100)\n"
        "default_hooks = dict(checkpoint=dict(interval=2, max_keep_ckpts=3), logger=dict(interval=1))\n"
        f"custom_hooks = {hooks}\n"
        "randomness = dict(seed=0, deterministic=True)\n")
    return str(path)


# The model index (model-index.yml and configs/metafiles/*.yml), as mim reads it.
INDEX = REPO / 'model-index.yml'
# The parameters (with the 1000-class head) and MACs at 224x224 the paper prints for them, at its precision
# (../shared/PAPER.md: the ablation table, Table 10 and Table 3).
PAPER_SIZES = {
    **{f'incnext_t_{name}_in1k': (params, '4.2G') for name, params in dict(
        no_w_band='28.0M', no_h_band='28.0M', no_square='28.0M', bands_in_sequence='28.1M', band7='28.0M',
        band9='28.1M', band13='28.1M', ratio1_4='28.1M', ratio1_16='28.0M').items()},
    'convnext_t_k7_in1k': ('28.6M', '4.5G'), 'convnext_t_k5_in1k': ('28.4M', '4.4G'),
    **{f'convnext_t_k3{ratio}_in1k': ('28.3M', '4.4G')
       for ratio in ('', '_par1_2', '_par3_8', '_par1_4', '_par1_8', '_par1_16')},
    'incnext_s_iso_in1k': ('22M', '4.2G'), 'incnext_b_iso_in1k': ('86M', '16.8G'),
    'metanext_attn_s_iso_in1k': ('22M', '4.6G'), 'convnext_s_iso_in1k': ('22M', '4.3G'),
    'convnext_b_iso_in1k': ('87M', '16.9G'),
}


@functools.lru_cache(maxsize=None)
def model_index():
    from modelindex.load_model_index import load  # openmim's, in the tests' requirements
    return load(str(INDEX))


def entries() -> dict:
    """The model index's entries by name."""
    return {model.name: model for model in model_index().models}


def paper_precision(count: int, printed: str) -> str:
    """``count`` (parameters or MACs) written as the paper writes ``printed`` (e.g. '28.0M', '22M', '4.2G')."""
    unit = printed[-1]
    digits = len(printed[:-1].partition('.')[2])
    return f'{count / dict(M=1e6, G=1e9)[unit]:.{digits}f}{unit}'


# Classification configs run small: one step of a classifier, a child config on the embedded ImageNet-layout data.
def classifier_train_step(model, optim_wrapper):
    """One ``train_step`` of an mmpretrain classifier on 4 random 64x64 uint8 images labelled 0-3: its losses, and the
    names of the parameters the step left unchanged."""
    from mmpretrain.structures import DataSample
    torch.manual_seed(0)
    data = dict(inputs=[torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8) for _ in range(4)],
                data_samples=[DataSample().set_gt_label(i) for i in range(4)])
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    losses = model.train_step(data, optim_wrapper)
    return losses, [n for n, p in model.named_parameters() if torch.equal(p, before[n])]


def small_classification_config(tmp_path: Path, base: str, arch: dict, head_in_channels: int, model_extra: str = '',
                                name: str = 'child.py') -> Path:
    """A config inheriting ``configs/<base>`` as a user writes one: ``arch`` instead of the base's, the head to match
    (``model_extra``: more of ``model``'s arguments, as config text), one epoch on the embedded ImageNet-layout data
    (10 images, one per class, batch 4: two steps), then a validation; the rest is the base's."""
    extra = f', {model_extra}' if model_extra else ''
    child = tmp_path / name
    child.write_text(f"""
_base_ = {str(REPO / 'configs' / base)!r}
model = dict(backbone=dict(arch=dict(_delete_=True, **{dict(arch)!r})),
             head=dict(in_channels={head_in_channels}){extra})
data = dict(type='SyntheticImageNet', data_root={str(tmp_path / 'data')!r}, num_train=1, num_val=1, image_size=48)
train_dataloader = dict(batch_size=4, num_workers=0, persistent_workers=False, dataset=data)
val_dataloader = dict(batch_size=10, num_workers=0, persistent_workers=False, dataset=data)
train_cfg = dict(max_epochs=1)
default_hooks = dict(logger=dict(interval=1))
""")
    return child
