"""Shared test helpers (imported as ``from conftest import ...``) and fixtures."""
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
from mmengine.config import utils as config_utils
from mmengine.hub import get_config

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
    assert len(libraries) == 1, f'{name}: add its task library to CONFIG_LIBRARIES in tests/conftest.py'
    return require(libraries.pop())

# mmengine resolves every `mmdet::`/`mmseg::` base by parsing all of that package's metafiles again (~100 YAML
# files, over a second of CPU each time here); a test session parses each file once (they do not change under it).
config_utils.load = functools.lru_cache(maxsize=None)(config_utils.load)


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


@pytest.fixture(scope='session')
def timm_reference():
    """``timm_reference(arch)`` -> timm's ``inception_next_<arch>`` with random, non-trivial weights: built once,
    handed out as a copy, since a test that trains it (BN statistics, gradients) must not change another's."""
    cache = {}

    def make(arch: str):
        if arch not in cache:
            torch.manual_seed(0)
            cache[arch] = randomize_reference_state(timm.create_model(f'inception_next_{arch}', pretrained=False))
        return copy.deepcopy(cache[arch])

    return make


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
