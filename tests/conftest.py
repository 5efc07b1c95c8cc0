"""Shared test helpers (imported as ``from conftest import ...``) and fixtures."""
import copy
import importlib.util
from pathlib import Path

import pytest
import timm
import torch
from mmengine.config import Config

REPO = Path(__file__).resolve().parents[1]


def load_tool(name: str):
    """``tools/<name>.py`` as a module, to call its ``main(argv)`` as the command line would."""
    spec = importlib.util.spec_from_file_location(f'mmincnext_tools_{name}', REPO / 'tools' / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_config(name: str) -> Config:
    """``configs/<name>``."""
    return Config.fromfile(str(REPO / 'configs' / name))


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
