"""An input smaller than the backbone's total stride stops with a clear error up front (instead of PyTorch's
"Kernel size can't be greater than actual input size" from the last downsample), and the smallest valid one runs."""
import pytest
import torch

from mmincnext.models import InceptionNeXt

TINY = dict(depths=(1, 1, 1, 1), dims=(8, 16, 24, 32), mlp_ratios=(2, 2, 2, 2), band_kernel_size=5, branch_ratio=0.25)


@pytest.mark.parametrize('height,width', [(20, 20), (16, 16), (31, 64), (64, 31)])
def test_too_small_input_names_its_size_and_the_minimum(height, width):
    with pytest.raises(ValueError, match=f'at least 32x32 pixels .* got {height}x{width} '):
        InceptionNeXt(TINY).eval()(torch.randn(1, 3, height, width))


def test_smallest_input_runs():
    outs = InceptionNeXt(TINY).eval()(torch.randn(1, 3, 32, 33))
    assert [tuple(out.shape[-2:]) for out in outs] == [(8, 8), (4, 4), (2, 2), (1, 1)]
