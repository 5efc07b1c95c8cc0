"""Fixtures for every test module, and the session-wide setup (the helpers are in helpers.py)."""
import copy
import functools

import pytest
import timm
import torch
from mmengine.config import utils as config_utils

from helpers import randomize_reference_state

# mmengine resolves every `mmdet::`/`mmseg::` base by parsing all of that package's metafiles again (~100 YAML
# files, over a second of CPU each time here); a test session parses each file once (they do not change under it).
config_utils.load = functools.lru_cache(maxsize=None)(config_utils.load)


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
