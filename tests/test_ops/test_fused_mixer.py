"""The fused Inception depthwise mixer (``mmincnext.ops.inception_dwconv``) against the eager mixer and float64.

The kernels themselves are checked without a GPU through Triton's CPU interpreter. Triton decides between compiling
and interpreting when a kernel is decorated, i.e. when ``mmincnext.ops`` is first imported, and reads
``TRITON_INTERPRET`` then; in a pytest process that already imported it (the backbone does) setting the variable is
too late, and setting it for the whole session would put every Triton kernel (Inductor's too, on a GPU machine) under
the interpreter. So the ``cpu-interpreter`` cases run in a child pytest started with ``TRITON_INTERPRET=1``
(:func:`test_cpu_cases_run_in_a_subprocess`); ``TRITON_INTERPRET=1 pytest tests/test_ops/test_fused_mixer.py`` runs
them in process. The ``cuda`` cases run the compiled kernels where a GPU is present.

fp32 is checked against the eager mixer run in fp64 (``atol = 1e-5 * max|ref|``, ``rtol = 1e-5``). bf16 and fp16 are
checked per element: each output and gradient value must be a value of that dtype within half a unit in its last
place of the exact (fp64) result on the values the convs see, plus the error bound of the fp32 sums (which matters
only where a sum cancels) -- i.e. rounded once, to nearest even. The interpreter truncates float32 to bfloat16; the
kernels round bfloat16 by bit arithmetic there (see ``mmincnext/ops/inception_dwconv.py``), so bf16 is checked that way
on CPU too, fp16 through the interpreter's own (numpy's) rounding.
"""
import contextlib
import importlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from mmincnext import compat
from mmincnext.ops import (fused_inception_dwconv_available, fused_inception_dwconv_unavailable_reason,
                           inception_dwconv, inception_dwconv_reference)

# The module (the package's attribute of that name is the function).
mixer_ops = importlib.import_module('mmincnext.ops.inception_dwconv')

INTERPRETED = mixer_ops._INTERPRETED
HAS_KERNELS = mixer_ops._KERNELS
NO_KERNELS_REASON = fused_inception_dwconv_unavailable_reason()
CUDA = HAS_KERNELS and torch.cuda.is_available()
NO_CUDA_REASON = NO_KERNELS_REASON if torch.cuda.is_available() else 'needs a GPU'
# The cpu-interpreter cases exist only in a process whose kernels the interpreter runs (the child below); elsewhere
# test_cpu_cases_run_in_a_subprocess stands for them.
DEVICES = ([pytest.param('cpu', id='cpu-interpreter')] if INTERPRETED else []) + [
    pytest.param('cuda', id='cuda', marks=pytest.mark.skipif(not CUDA, reason=str(NO_CUDA_REASON))),
]
TOL = {torch.float32: 1e-5, torch.bfloat16: 2 ** -6, torch.float16: 2 ** -9}
GRAD_NAMES = ('x', 'w_hw', 'b_hw', 'w_w', 'b_w', 'w_h', 'b_h')
LOW_PRECISION = {'bf16': torch.bfloat16, 'fp16': torch.float16}

# (id, channels, band kernel k, branch ratio, batch, H, W, channels_last): every stage of every arch in
# InceptionNeXt.arch_settings (small/tiny share dims), custom archs, odd sizes, 1x1, kernels wider than the input,
# batch 1 and 2, both layouts.
SHAPES = [
    ('atto-s1', 40, 9, 1 / 4, 2, 13, 17, False),
    ('atto-s2', 80, 9, 1 / 4, 1, 9, 7, True),
    ('atto-s3', 160, 9, 1 / 4, 2, 5, 6, False),
    ('atto-s4', 320, 9, 1 / 4, 1, 3, 2, True),
    ('tiny-s1', 96, 11, 1 / 8, 1, 13, 17, True),
    ('tiny-s2', 192, 11, 1 / 8, 2, 7, 9, False),
    ('tiny-s3', 384, 11, 1 / 8, 1, 4, 5, True),
    ('tiny-s4', 768, 11, 1 / 8, 2, 2, 3, False),
    ('base-s1', 128, 11, 1 / 8, 2, 7, 9, True),
    ('base-s2', 256, 11, 1 / 8, 1, 9, 5, False),
    ('base-s3', 512, 11, 1 / 8, 2, 3, 4, True),
    ('base-s4', 1024, 11, 1 / 8, 1, 1, 1, False),
    ('custom-k5-r0.25', 24, 5, 0.25, 2, 7, 9, True),
    ('custom-k5-r0.25-nchw', 24, 5, 0.25, 1, 13, 17, False),
    ('custom-k3-r1/3-no-identity', 18, 3, 1 / 3, 1, 5, 5, False),
]
# A small shape for the dtype tests (each kernel launch under the interpreter costs ~0.3 s here, ~4 s at tiny-s1).
SMALL = ('custom-k5-r0.25', 24, 5, 0.25, 2, 7, 9, True)


def make_inputs(channels, k, ratio, batch, h, w, channels_last, device, dtype=torch.float32, seed=0):
    """x and the six parameters, as InceptionDWConv2d(channels, 3, k, ratio) would hold them (random values)."""
    gen = torch.Generator().manual_seed(seed)
    g = int(channels * ratio)
    x = torch.randn(batch, channels, h, w, generator=gen)
    params = [torch.randn(g, 1, 3, 3, generator=gen), torch.randn(g, generator=gen),
              torch.randn(g, 1, 1, k, generator=gen), torch.randn(g, generator=gen),
              torch.randn(g, 1, k, 1, generator=gen), torch.randn(g, generator=gen)]
    x = x.to(device, dtype)
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    return [x] + [p.to(device, dtype) for p in params]


def identity_channels(inputs) -> int:
    return inputs[0].shape[1] - 3 * inputs[1].shape[0]


def run(fn, inputs, grad_out=None, seed=1):
    """fn(*inputs) and the gradients of <fn, grad_out> in all seven inputs (a fixed random grad_out by default)."""
    inputs = [t.detach().clone(memory_format=torch.preserve_format).requires_grad_() for t in inputs]
    out = fn(*inputs)
    if grad_out is None:
        gen = torch.Generator().manual_seed(seed)
        grad_out = torch.randn(out.shape, generator=gen).to(out.device, out.dtype)
    grads = torch.autograd.grad(out, inputs, grad_out)
    return out, grads, grad_out


def under_autocast(fn, device, dtype, **kwargs):
    """``fn`` called under ``torch.autocast(device, dtype)`` (with ``kwargs``); no autocast for dtype None."""

    def wrapped(*args):
        with torch.autocast(device, dtype=dtype) if dtype is not None else contextlib.nullcontext():
            return fn(*args, **kwargs)

    return wrapped


def assert_close(actual, expected, tol, what):
    scale = expected.abs().max().item() or 1.0
    torch.testing.assert_close(actual.double(), expected.double(), rtol=tol, atol=tol * scale,
                               msg=lambda m: f'{what}: {m}')


def check_against(out, grads, ref_out, ref_grads, tol, what):
    assert_close(out, ref_out, tol, f'{what} output')
    for name, grad, ref in zip(GRAD_NAMES, grads, ref_grads):
        assert_close(grad, ref, tol, f'{what} grad {name}')


def ulp(values: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The spacing of ``dtype``'s numbers at ``|values|`` (fp64), its subnormal spacing at least."""
    info = torch.finfo(dtype)
    exponent = torch.frexp(values.abs())[1].double()  # |v| = m * 2**e with 0.5 <= m < 1
    return torch.clamp(2.0 ** (exponent - 1) * info.eps, min=info.smallest_normal * info.eps)


def assert_rounded_once(actual, exact, sums_bound, dtype, what):
    """``actual`` holds values of ``dtype``, each within half an ulp of ``exact`` (fp64) plus ``sums_bound`` (the
    fp32 sums' error bound, n * 2^-24 * sum of |terms|): the exact result rounded once, to nearest even."""
    assert torch.equal(actual.to(dtype).to(actual.dtype), actual), f'{what}: values that are not {dtype} values'
    actual = actual.double()
    spacing = ulp(torch.maximum(actual.abs(), exact.abs()), dtype)
    error = (actual - exact).abs()
    bad = error > 0.5 * spacing + 1.01 * sums_bound
    assert not bad.any(), (f'{what}: {int(bad.sum())} of {bad.numel()} values further than half an ulp of {dtype} '
                           f'(+ the fp32 sums\' bound) from the exact result; worst {(error / spacing).max():.2f} ulp')


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('shape', SHAPES, ids=[s[0] for s in SHAPES])
def test_fp32_matches_eager(device, shape):
    """Output and all seven gradients equal the eager mixer's (run in fp64); layout and dtypes kept."""
    inputs = make_inputs(*shape[1:], device)
    x = inputs[0]
    assert fused_inception_dwconv_available(x)
    out, grads, grad_out = run(inception_dwconv, inputs)
    ref_out, ref_grads, _ = run(inception_dwconv_reference, [t.double() for t in inputs], grad_out.double())
    check_against(out, grads, ref_out, ref_grads, TOL[torch.float32], shape[0])
    assert out.dtype == torch.float32 and out.shape == x.shape
    memory_format = torch.channels_last if shape[-1] else torch.contiguous_format
    assert out.is_contiguous(memory_format=memory_format)
    assert grads[0].is_contiguous(memory_format=memory_format)
    for grad, t in zip(grads, inputs):
        assert grad.dtype == t.dtype and grad.shape == t.shape


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('mode', ['inputs', 'autocast'])
@pytest.mark.parametrize('dtype', LOW_PRECISION.values(), ids=LOW_PRECISION.keys())
def test_low_precision_is_rounded_once(device, dtype, mode):
    """bf16/fp16, given as the inputs' dtype or by ``torch.autocast`` over fp32 inputs and parameters: the output and
    all seven gradients rounded once from the exact result on the values the convs see (the conv channels, the
    parameters and, backwards, the conv channels' output gradient rounded to ``dtype``), where the eager convs round
    (cuDNN sums in fp32 and rounds once). The identity channels are copies (fp32 under autocast, as the eager ``cat``
    promotes). Removing the kernels' rounding of the taps, the inputs or the gradients fails this test."""
    channels, k, _, batch, h, w, _ = SMALL[1:]
    inputs = make_inputs(*SMALL[1:], device, dtype if mode == 'inputs' else torch.float32)
    fused = under_autocast(inception_dwconv, device, dtype if mode == 'autocast' else None)
    out, grads, grad_out = run(fused, inputs)
    assert out.dtype == (torch.float32 if mode == 'autocast' else dtype)
    assert all(grad.dtype == t.dtype for grad, t in zip(grads, inputs))

    c_id = identity_channels(inputs)

    def as_convs_see_it(t):  # fp64, the conv channels rounded to dtype (a no-op where t has that dtype)
        t = t.detach().double().clone()
        t[:, c_id:] = t[:, c_id:].to(dtype).double()
        return t

    exact_inputs = [as_convs_see_it(inputs[0])] + [p.detach().to(dtype).double() for p in inputs[1:]]
    exact_grad_out = as_convs_see_it(grad_out)
    exact_out, exact_grads, _ = run(inception_dwconv_reference, exact_inputs, exact_grad_out)
    # The same sums over |terms|, for the fp32 sums' error bound: each output and input gradient sums at most
    # max(9, k) + 1 terms, each parameter gradient one per pixel.
    abs_out, abs_grads, _ = run(inception_dwconv_reference, [t.abs() for t in exact_inputs], exact_grad_out.abs())
    per_output, per_param = (max(9, k) + 1) * 2.0 ** -24, batch * h * w * 2.0 ** -24

    assert torch.equal(out[:, :c_id].double(), inputs[0][:, :c_id].double()), 'identity channels are copies'
    assert torch.equal(grads[0][:, :c_id].double(), grad_out[:, :c_id].double()), 'identity gradient is a copy'
    assert_rounded_once(out[:, c_id:], exact_out[:, c_id:], per_output * abs_out[:, c_id:], dtype, 'output')
    assert_rounded_once(grads[0][:, c_id:], exact_grads[0][:, c_id:], per_output * abs_grads[0][:, c_id:], dtype,
                        'grad x')
    for name, grad, exact, abs_sum in zip(GRAD_NAMES[1:], grads[1:], exact_grads[1:], abs_grads[1:]):
        assert_rounded_once(grad, exact, per_param * abs_sum, dtype, f'grad {name}')

    if mode == 'autocast':  # the eager mixer under autocast: the same dtypes, and values within its own rounding
        ref_out, ref_grads, _ = run(under_autocast(inception_dwconv_reference, device, dtype), inputs, grad_out)
        assert ref_out.dtype == out.dtype and all(r.dtype == g.dtype for r, g in zip(ref_grads, grads))
        check_against(out, grads, ref_out, ref_grads, 2 * TOL[dtype], f'autocast {dtype} vs eager autocast')


OUT_DTYPE_CASES = {  # (autocast dtype or None, out_dtype)
    'autocast-bf16': (torch.bfloat16, torch.bfloat16),
    'autocast-fp16': (torch.float16, torch.float16),
    'fp32-out-bf16': (None, torch.bfloat16),
}


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('case', OUT_DTYPE_CASES.values(), ids=OUT_DTYPE_CASES.keys())
def test_out_dtype_is_the_cast_of_the_output(device, case):
    """``out_dtype`` writes the dtype the next layer consumes: exactly ``.to(out_dtype)`` of the default output (the
    identity channels rounded to nearest even, the conv channels already in it under autocast), layout kept, and the
    same gradients as the default output given the same (cast) output gradient; and within the eager mixer's
    rounding of the eager mixer's cast."""
    autocast_dtype, out_dtype = case
    inputs = make_inputs(*SMALL[1:], device)
    gen = torch.Generator().manual_seed(1)
    grad_out = torch.randn(inputs[0].shape, generator=gen).to(device, out_dtype)
    out, grads, _ = run(under_autocast(inception_dwconv, device, autocast_dtype, out_dtype=out_dtype), inputs, grad_out)
    default_out, default_grads, _ = run(under_autocast(inception_dwconv, device, autocast_dtype), inputs,
                                        grad_out.float())
    assert out.dtype == out_dtype and out.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(out, default_out.to(out_dtype))
    for name, grad, default in zip(GRAD_NAMES, grads, default_grads):
        assert grad.dtype == default.dtype and torch.equal(grad, default), name
    eager = under_autocast(inception_dwconv_reference, device, autocast_dtype, out_dtype=out_dtype)(*inputs)
    assert eager.dtype == out_dtype
    assert_close(out, eager, 2 * TOL[out_dtype], 'vs the eager cast')


SAVED_CASES = ['autocast-bf16', 'fp32', 'frozen-parameters']


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('case', SAVED_CASES)
def test_backward_keeps_no_more_than_eager(device, case):
    """What autograd keeps for backward (its saved-tensor hooks; bytes of the storages kept alive, parameters
    excluded): under autocast over an fp32 input only the conv branches' channels in bf16 (the eager convs keep the
    same, plus bf16 copies of their weights); in fp32 the input itself (the eager convs keep views of it); nothing
    of the input where no parameter needs a gradient (the eager convs keep it all the same)."""
    inputs = make_inputs(*SMALL[1:], device)
    x, params = inputs[0].requires_grad_(), [p.requires_grad_(case != 'frozen-parameters') for p in inputs[1:]]
    parameter_storages = {p.untyped_storage().data_ptr() for p in params}

    def saved_bytes(fn):
        kept = {}

        def pack(t):
            storage = t.untyped_storage()
            if storage.data_ptr() not in parameter_storages:
                kept[storage.data_ptr()] = storage.nbytes()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            under_autocast(fn, device, torch.bfloat16 if case.startswith('autocast') else None)(x, *params)
        return sum(kept.values())

    fused, eager = saved_bytes(inception_dwconv), saved_bytes(inception_dwconv_reference)
    conv_channels = x.shape[1] - identity_channels(inputs)
    expected = {
        'autocast-bf16': x[:, :conv_channels].numel() * 2,
        'fp32': x.numel() * 4,
        'frozen-parameters': 0,
    }[case]
    assert fused == expected, (fused, eager)
    assert fused <= eager


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('channels_last', [False, True], ids=['nchw', 'channels_last'])
def test_small_tiles_cross_halos(device, channels_last, monkeypatch):
    """Tiles much smaller than the image and channel blocks smaller than a branch: every tap's halo crosses into
    neighbouring tiles (what a large image does with the default tiles)."""
    monkeypatch.setattr(mixer_ops, '_tile_config', lambda *args: (2, 2, 4, 4))  # (BLOCK_C, _H, _W, num_warps)
    # g = 3: each branch is a full and a half-masked channel block; 5x9 with k=5: 3x3 tiles, halos of 2 both ways.
    inputs = make_inputs(14, 5, 1 / 4, 1, 5, 9, channels_last, device)
    out, grads, grad_out = run(inception_dwconv, inputs)
    ref_out, ref_grads, _ = run(inception_dwconv_reference, [t.double() for t in inputs], grad_out.double())
    check_against(out, grads, ref_out, ref_grads, TOL[torch.float32], 'small tiles')


@pytest.mark.parametrize('device', DEVICES)
def test_odd_layouts_partial_grads_and_empty_batch(device):
    """A non-dense input (a channel slice) is made dense; grad_output in the other layout; only some inputs
    requiring grad; batch 0."""
    inputs = make_inputs(48, 5, 0.25, 2, 6, 7, True, device)
    wide = torch.cat([inputs[0], inputs[0]], dim=1)[:, 5:53]  # channels_last storage, not dense
    assert not wide.is_contiguous() and not wide.is_contiguous(memory_format=torch.channels_last)
    params = [p.double() for p in inputs[1:]]
    assert_close(inception_dwconv(wide, *inputs[1:]), inception_dwconv_reference(wide.double(), *params),
                 TOL[torch.float32], 'non-dense x')

    x = inputs[0].detach().requires_grad_()
    out = inception_dwconv(x, *inputs[1:])  # parameters need no grad: the weight-grad kernel does not run
    grad_out = torch.randn(out.shape, device=device).contiguous()  # NCHW grad for a channels-last output
    (grad_x, ) = torch.autograd.grad(out, [x], grad_out)
    ref = torch.autograd.grad(inception_dwconv_reference(x.double(), *params), [x], grad_out.double())[0]
    assert_close(grad_x, ref, TOL[torch.float32], 'grad x alone')

    w = inputs[1].detach().requires_grad_()
    out = inception_dwconv(inputs[0], w, *inputs[2:])  # x needs no grad: no grad_input kernel
    (grad_w, ) = torch.autograd.grad(out, [w], grad_out)
    w64 = w.detach().double().requires_grad_()
    ref_out = inception_dwconv_reference(inputs[0].double(), w64, *params[1:])
    assert_close(grad_w, torch.autograd.grad(ref_out, [w64], grad_out.double())[0], TOL[torch.float32], 'grad w')

    wide_w = wide.detach()  # backward reads the conv channels of a non-dense input in place
    out = inception_dwconv(wide_w, w, *inputs[2:])
    (grad_w, ) = torch.autograd.grad(out, [w], grad_out)
    ref_out = inception_dwconv_reference(wide_w.double(), w64, *params[1:])
    assert_close(grad_w, torch.autograd.grad(ref_out, [w64], grad_out.double())[0], TOL[torch.float32],
                 'grad w, non-dense x')

    empty = inputs[0][:0]
    assert inception_dwconv(empty, *inputs[1:]).shape == empty.shape


# Tensors whose last channel (row, column) lies past element 2^31 while every factor of its offset fits in 32 bits
# (Triton passes the strides as int32): (C, H, W) and (N, C, H, W) strides.
BIG_LAYOUTS = {
    # NCHW's c * stride_c, as in one image whose conv channels hold 2^31 elements; no identity channels.
    'channel-offsets': ((3, 4, 5), (0, 2 ** 30 + 64, 5, 1)),
    # channels-last's h * stride_h, as in one image of 2^31 elements; one identity channel.
    'row-offsets': ((4, 4, 5), (0, 1, 2 ** 31 // 3 + 64, 4)),
    # w * stride_w: one row of 2^31 elements (W * C in channels-last); one identity channel.
    'column-offsets': ((4, 3, 4), (0, 1, 4, 2 ** 31 // 3 + 64)),
}


@pytest.mark.parametrize('device', [
    pytest.param('cpu', id='cpu-interpreter', marks=pytest.mark.skipif(
        not INTERPRETED, reason='interpreter only: runs in test_cpu_cases_run_in_a_subprocess'))
])
@pytest.mark.parametrize('layout', BIG_LAYOUTS.values(), ids=BIG_LAYOUTS.keys())
def test_offsets_past_2_31(device, layout):
    """The kernels (forward with its saved conv input, grad_input, weight gradients) address elements more than 2^31
    elements past a tensor's start: small fp16 tensors (convs in bf16) laid out in a 4 GiB buffer (virtual memory;
    only the pages the kernels touch become real) with strides that put their last channel (row, column) past 2^31,
    against the exact results. With 32-bit offsets those addresses wrap below the buffer (wrong values, or a crash).
    A real image of 2^31 elements would take the interpreter hours; the CUDA variant below runs one."""
    (channels, h, w), strides = layout
    shape, dtype, conv_dtype, g = (1, channels, h, w), torch.float16, torch.bfloat16, 1
    c_id = channels - 3 * g
    inputs = make_inputs(channels, 5, g / channels, 1, h, w, False, device)
    x, params = inputs[0].to(dtype), inputs[1:]
    grad = torch.randn(shape, generator=torch.Generator().manual_seed(1)).to(dtype)
    span = 160 + sum((n - 1) * stride for n, stride in zip(shape, strides))
    assert span > 2 ** 31
    try:
        buffer = torch.empty(span, dtype=dtype, device=device)
    except RuntimeError as e:  # an allocator that refuses 4 GiB of address space
        pytest.skip(f'cannot reserve 4 GiB of virtual memory: {e}')
    # x, y, saved conv input (bf16), grad_y, grad_x: side by side in each channel plane (row, column) of the buffer.
    big_x, big_y, big_dy, big_dx = (buffer.as_strided(shape, strides, offset) for offset in (0, 32, 96, 128))
    big_saved = buffer.view(conv_dtype).as_strided((1, 3 * g, h, w), strides, 64)
    big_x.copy_(x)
    big_dy.copy_(grad)
    mixer_ops._launch_mixer(big_x, big_y, big_saved, *params, conv_dtype, False, (1, 2, 4, 1))
    mixer_ops._launch_mixer(big_dy, big_dx, None, *params, conv_dtype, True, (1, 2, 4, 1))
    big_grads = mixer_ops._launch_param_grads(big_x[:, c_id:], big_dy[:, c_id:], g, 3, 5, conv_dtype, (1, 2, 4, 1))

    exact_inputs = [x.to(conv_dtype).double()] + [p.to(conv_dtype).double() for p in params]
    exact_y, exact_grads, _ = run(inception_dwconv_reference, exact_inputs, grad.to(conv_dtype).double())
    abs_y, abs_grads, _ = run(inception_dwconv_reference, [t.abs() for t in exact_inputs],
                              grad.to(conv_dtype).double().abs())
    bound = 10 * 2.0 ** -24  # each output sums at most 9 taps and a bias
    assert torch.equal(big_y[:, :c_id], x[:, :c_id]) and torch.equal(big_dx[:, :c_id], grad[:, :c_id])
    assert_rounded_once(big_y[:, c_id:], exact_y[:, c_id:], bound * abs_y[:, c_id:], conv_dtype, 'y')
    assert_rounded_once(big_dx[:, c_id:], exact_grads[0][:, c_id:], bound * abs_grads[0][:, c_id:], conv_dtype,
                        'grad x')
    assert torch.equal(big_saved, x[:, c_id:].to(conv_dtype))
    gw_hw, gw_w, gw_h, gb = big_grads  # fp32 sums, (taps, g) and (3, g)
    for name, grad_p, exact in zip(GRAD_NAMES[1:], (gw_hw.t(), gb[0], gw_w.t(), gb[1], gw_h.t(), gb[2]),
                                   exact_grads[1:]):
        assert_close(grad_p.reshape(exact.shape), exact, TOL[torch.float32], f'grad {name}')


def check_last_rows(device, channels, k, ratio, size, rows, channels_last, dtype=torch.bfloat16):
    """The mixer on one (1, channels, size, size) image, forward and backward, against the exact result on a crop of
    its last ``rows`` rows (with their halo): each value rounded once. The output gradient is zero outside those rows,
    so the crop's weight-gradient sums are the whole image's."""
    g, halo = int(channels * ratio), k // 2
    gen = torch.Generator(device).manual_seed(0)
    shape = (1, size, size, channels) if channels_last else (1, channels, size, size)
    x = torch.empty(shape, device=device, dtype=dtype).normal_(generator=gen)
    x = x.permute(0, 3, 1, 2) if channels_last else x
    params = [p.to(dtype).requires_grad_() for p in make_inputs(channels, k, ratio, 1, 1, 1, False, device)[1:]]
    x.requires_grad_()
    y = inception_dwconv(x, *params)
    grad = torch.zeros_like(y)
    grad[:, :, -rows:] = torch.randn(1, channels, rows, size, device=device, generator=gen).to(dtype)
    grads = torch.autograd.grad(y, [x] + params, grad)

    top = size - rows - 2 * halo  # the crop: the last rows and two halos above them
    crop = [x.detach()[:, :, top:].double()] + [p.detach().double() for p in params]
    exact_y, exact_grads, _ = run(inception_dwconv_reference, crop, grad[:, :, top:].double())
    abs_y, abs_grads, _ = run(inception_dwconv_reference, [t.abs() for t in crop], grad[:, :, top:].double().abs())
    per_output, per_param = (max(9, k) + 1) * 2.0 ** -24, size * size * 2.0 ** -24
    c_id = channels - 3 * g
    assert torch.equal(y[:, :c_id, -rows:], x.detach()[:, :c_id, -rows:]), 'identity channels are copies'
    assert_rounded_once(y[:, c_id:, -rows:], exact_y[:, c_id:, -rows:], per_output * abs_y[:, c_id:, -rows:], dtype,
                        'output')
    assert_rounded_once(grads[0][:, c_id:, top + halo:], exact_grads[0][:, c_id:, halo:],
                        per_output * abs_grads[0][:, c_id:, halo:], dtype, 'grad x')
    for name, grad_p, exact, abs_sum in zip(GRAD_NAMES[1:], grads[1:], exact_grads[1:], abs_grads[1:]):
        assert_rounded_once(grad_p, exact, per_param * abs_sum, dtype, f'grad {name}')


@pytest.mark.skipif(not CUDA, reason=str(NO_CUDA_REASON))
@pytest.mark.parametrize('channels_last', [False, True], ids=['nchw', 'channels_last'])
def test_offsets_past_2_31_on_cuda(channels_last):
    """One image whose mixer input has more than 2^31 elements (tiny's stage 1 at 4800 x 4800, bf16, 4.4 GB): NCHW's
    last channels and channels-last's last rows lie past element 2^31. Forward, grad_input and the weight gradients
    there, each rounded once from the exact result."""
    channels, size = 96, 4800
    assert channels * size * size > 2 ** 31
    check_last_rows('cuda', channels, 11, 1 / 8, size, 8, channels_last)


@pytest.mark.parametrize('device', DEVICES)
def test_torch_compile_fullgraph(device):
    """``torch.compile(fullgraph=True)`` traces through the op (no graph break) and its autograd. On a GPU it is
    Inductor with the kernels inlined; the interpreter cannot run inside AOTAutograd/Inductor graphs, so on CPU the
    check is Dynamo alone (backend='eager'), which still goes through the op's fake (shape) implementation."""
    torch._dynamo.reset()
    backend = 'inductor' if device == 'cuda' else 'eager'
    compiled = torch.compile(inception_dwconv, backend=backend, fullgraph=True)
    inputs = make_inputs(*SMALL[1:], device)
    out, grads, grad_out = run(compiled, inputs)
    ref_out, ref_grads, _ = run(inception_dwconv, inputs, grad_out)
    check_against(out, grads, ref_out, ref_grads, TOL[torch.float32], f'compiled ({backend})')
    if device == 'cpu':
        with pytest.raises(Exception, match='interpreter'):
            torch.compile(inception_dwconv, backend='aot_eager', fullgraph=True)(*inputs)


@pytest.mark.parametrize('device', DEVICES)
def test_onnx_export_takes_the_eager_path(device, monkeypatch):
    """During ONNX export the entry runs the eager formula (an exporter knows convs, not Triton kernels)."""
    inputs = make_inputs(24, 5, 0.25, 1, 5, 6, False, device)

    def no_kernels(*args, **kwargs):
        raise AssertionError('a Triton kernel was launched')

    monkeypatch.setattr(mixer_ops, '_launch', no_kernels)
    monkeypatch.setattr(torch.onnx, 'is_in_onnx_export', lambda: True)
    assert torch.equal(inception_dwconv(*inputs), inception_dwconv_reference(*inputs))


@pytest.mark.skipif(INTERPRETED, reason='this process builds the kernels for the interpreter')
def test_plain_cpu_takes_the_eager_path(monkeypatch):
    """Without the interpreter a CPU tensor is not for the kernels: unavailable, with the reason, and the entry is the
    eager mixer (``out_dtype`` as its cast). Without Triton, or with a torch before 2.6, nothing is available, and the
    reason names what is missing."""
    inputs = make_inputs(40, 9, 1 / 4, 1, 5, 6, False, 'cpu')
    assert not fused_inception_dwconv_available(inputs[0])
    reason = fused_inception_dwconv_unavailable_reason(inputs[0])
    assert reason == NO_KERNELS_REASON if not HAS_KERNELS else 'runs on CUDA tensors' in reason

    def no_kernels(*args, **kwargs):
        raise AssertionError('a Triton kernel was launched')

    monkeypatch.setattr(mixer_ops, '_launch', no_kernels)
    assert torch.equal(inception_dwconv(*inputs), inception_dwconv_reference(*inputs))
    assert torch.equal(inception_dwconv(*inputs, out_dtype=torch.bfloat16),
                       inception_dwconv_reference(*inputs).to(torch.bfloat16))
    with pytest.raises(ValueError, match='out_dtype'):
        inception_dwconv(*inputs, out_dtype=torch.int8)
    assert (NO_KERNELS_REASON if not HAS_KERNELS else 'float64') in fused_inception_dwconv_unavailable_reason(
        inputs[0].double())

    monkeypatch.setattr(mixer_ops, 'triton', None)
    monkeypatch.setattr(compat, 'TRITON_OP', True)  # a torch with triton_op, so Triton is what is missing
    assert 'Triton' in fused_inception_dwconv_unavailable_reason()
    assert not fused_inception_dwconv_available(inputs[0])
    if torch.cuda.is_available():
        assert not fused_inception_dwconv_available(inputs[0].cuda())
    monkeypatch.setattr(compat, 'TRITON_OP', False)
    assert 'torch >= 2.6' in fused_inception_dwconv_unavailable_reason(inputs[0])


@pytest.mark.skipif(INTERPRETED, reason='this process runs the cpu-interpreter cases itself')
@pytest.mark.skipif(not HAS_KERNELS, reason=str(NO_KERNELS_REASON))
def test_cpu_cases_run_in_a_subprocess():
    """The ``cpu-interpreter`` cases of this file, in a child pytest with ``TRITON_INTERPRET=1`` set before anything
    imports Triton; its report is shown on failure."""
    tests = str(Path(__file__).resolve().parents[1])  # helpers.py, which --noconftest leaves off sys.path
    env = dict(os.environ, TRITON_INTERPRET='1',
               PYTHONPATH=os.pathsep.join(p for p in (tests, os.environ.get('PYTHONPATH')) if p))
    cmd = [sys.executable, '-m', 'pytest', __file__, '-q', '-k', 'cpu-interpreter', '-p', 'no:cacheprovider',
           '--noconftest', '-o', 'addopts=-ra --durations=5']
    start = time.perf_counter()
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900,
                            cwd=Path(__file__).resolve().parents[2])
    report = result.stdout[-12000:] + result.stderr[-4000:]
    assert result.returncode == 0, report
    summary = [line for line in result.stdout.splitlines() if ' passed' in line]
    assert summary and 'skipped' not in summary[-1] and 'deselected' in summary[-1], report
    print(f'interpreter cases: {time.perf_counter() - start:.1f} s\n{result.stdout[-3000:]}')


@pytest.mark.skipif(INTERPRETED or not HAS_KERNELS, reason='needs the kernels as Triton builds them for a GPU')
def test_kernels_compile_for_sm90_without_spills():
    """The interpreter runs the kernels as Python and checks none of Triton's typing rules, so compile them here,
    without a GPU, the whole way to an H100/H200 (sm_90) binary with the default tiles, as a launch on the GPU would
    (unit strides specialised), and check that no registers spill to local memory and that three programs of 4 warps
    fit on an SM (at most 168 registers a thread: the occupancy the tiles are sized for)."""
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    import inspect
    import re
    import tempfile
    import triton

    def compile_kernel(kernel, dtype, constexprs):
        names = list(inspect.signature(kernel.fn).parameters)
        pointer_types = {'src_ptr': dtype, 'dst_ptr': dtype, 'x_ptr': dtype, 'dy_ptr': dtype, 'save_ptr': '*bf16'}
        signature = {n: 'constexpr' if n in constexprs else pointer_types.get(n, '*fp32') if n.endswith('_ptr')
                     else 'i32' for n in names}
        source = ASTSource(fn=kernel, signature=signature,
                           constexprs={(names.index(n), ): v for n, v in constexprs.items()})
        compiled = triton.compile(source, target=GPUTarget('cuda', 90, 32), options=dict(num_warps=4))
        cuobjdump = os.path.join(triton.__path__[0], 'backends', 'nvidia', 'bin', 'cuobjdump')
        if os.path.exists(cuobjdump):
            with tempfile.NamedTemporaryFile(suffix='.cubin') as f:
                f.write(compiled.asm['cubin'])
                f.flush()
                usage = subprocess.run([cuobjdump, '-res-usage', f.name], capture_output=True, text=True).stdout
            assert re.search(r'STACK:0\b', usage) and re.search(r'LOCAL:0\b', usage), usage
            assert int(re.search(r'REG:(\d+)', usage).group(1)) <= 65536 // (3 * 4 * 32), usage

    # (layout, H=W, g, dtype, conv dtype (0 fp32, 1 fp16, 2 bf16), transposed): tiny's stage 1 and 4, both layouts,
    # all three dtypes; the fp32 ones as under bf16 autocast in training (rounding, saving the conv input).
    for channels_last, size, g, dtype, conv, transposed in [(False, 56, 12, '*bf16', 2, False),
                                                           (True, 56, 12, '*fp16', 1, True),
                                                           (True, 7, 96, '*fp32', 2, False),
                                                           (False, 56, 12, '*fp32', 2, False)]:
        block_c, block_h, block_w, _ = mixer_ops._tile_config(channels_last, size, size, g)
        unit = 'c' if channels_last else 'w'
        meta = dict(S=3, K=11, CONV=conv, WIDE_COLUMNS=False, BLOCK_C=block_c, BLOCK_H=block_h, BLOCK_W=block_w)
        rounds = dtype == '*fp32' and conv != 0
        save = rounds and not transposed
        compile_kernel(mixer_ops._inception_dwconv_kernel,
                       dtype, dict(meta, TRANSPOSED=transposed, ROUND_SRC=rounds, SAVE=save,
                                   **{f'stride_{unit}': 1}, **({f'save_stride_{unit}': 1} if save else {})))
        compile_kernel(mixer_ops._inception_dwconv_wgrad_kernel, dtype,
                       dict(meta, ROUND_X=False, ROUND_DY=rounds, **{f'x_stride_{unit}': 1, f'dy_stride_{unit}': 1}))


# ----------------------------------------------------------------------------------------------------------------
# The backbone's switch: fused_mixer / MMINCNEXT_FUSED_MIXER
# ----------------------------------------------------------------------------------------------------------------
@pytest.mark.skipif(not compat.TRITON_OP, reason=compat.torch_requirement(*compat.TRITON_OP_TORCH, 'The fused mixer'))
def test_backbone_switch_and_environment(monkeypatch):
    from mmincnext.models import FusedInceptionDWConv2d, InceptionNeXt
    from mmincnext.models.layers.fast_paths import FUSED_MIXER_DEFAULT, FUSED_MIXER_ENV

    def fused(**kwargs):
        model = InceptionNeXt('atto', **kwargs)
        kinds = {type(block.token_mixer) is FusedInceptionDWConv2d for stage in model.stages for block in stage.blocks}
        assert len(kinds) == 1
        return kinds.pop()

    monkeypatch.delenv(FUSED_MIXER_ENV, raising=False)
    assert fused() == FUSED_MIXER_DEFAULT
    assert fused(fused_mixer=True) and not fused(fused_mixer=False)
    monkeypatch.setenv(FUSED_MIXER_ENV, '1')
    assert fused() and not fused(fused_mixer=False)  # the argument wins over the environment
    monkeypatch.setenv(FUSED_MIXER_ENV, '0')
    assert not fused() and fused(fused_mixer=True)
    monkeypatch.setenv(FUSED_MIXER_ENV, 'yes please')
    with pytest.raises(ValueError, match=FUSED_MIXER_ENV):
        InceptionNeXt('atto')


@pytest.mark.parametrize('device', DEVICES)
def test_backbone_with_fused_mixer_keeps_checkpoints_and_equals_eager(device):
    """Same parameters and state_dict keys either way, and the whole backbone's outputs and gradients (a training
    step) equal to the eager mixer's on the same weights: on CPU with the kernels run by Triton's interpreter."""
    from helpers import randomize_reference_state
    from mmincnext.models import FusedInceptionDWConv2d, InceptionNeXt
    torch.manual_seed(0)
    eager = randomize_reference_state(InceptionNeXt('atto', out_norms=False, fused_mixer=False)).to(device)
    fused = InceptionNeXt('atto', out_norms=False, fused_mixer=True).to(device)
    assert isinstance(fused.stages[0].blocks[0].token_mixer, FusedInceptionDWConv2d)
    assert list(fused.state_dict()) == list(eager.state_dict())
    fused.load_state_dict(eager.state_dict())
    for model in (eager, fused):
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.momentum = 0.0
    x = torch.randn(1, 3, 64, 96, generator=torch.Generator().manual_seed(1)).to(device)
    outs = {}
    for name, model in (('eager', eager), ('fused', fused)):
        model.train()
        features = model(x)
        sum(f.square().mean() for f in features).backward()
        outs[name] = ([f.detach() for f in features], [p.grad for p in model.parameters()])
    for a, b in zip(outs['fused'][0], outs['eager'][0]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    total = torch.cat([g.flatten() for g in outs['eager'][1]]).norm()
    for (name, _), a, b in zip(eager.named_parameters(), outs['fused'][1], outs['eager'][1]):
        assert (a - b).norm() <= 1e-4 * max(b.norm(), 1e-2 * total), name


@pytest.mark.parametrize('device', DEVICES)
def test_deployed_fused_mixer_writes_the_dtype_fc1_consumes(device):
    """Deployed (its BN folded into fc1), the fused mixer feeds fc1 directly: under autocast it writes fc1's input
    dtype instead of float32, and the backbone's outputs stay those of the deployed eager model."""
    from helpers import randomize_reference_state
    from mmincnext.models import InceptionNeXt
    torch.manual_seed(0)
    eager = randomize_reference_state(InceptionNeXt('atto', out_norms=False, fused_mixer=False)).to(device)
    fused = InceptionNeXt('atto', out_norms=False, fused_mixer=True).to(device).eval()
    fused.load_state_dict(eager.state_dict())
    eager.switch_to_deploy()
    fused.switch_to_deploy()
    x = torch.randn(1, 3, 64, 96, generator=torch.Generator().manual_seed(1)).to(device)
    mixer_dtypes = []
    fused.stages[1].blocks[1].token_mixer.register_forward_hook(lambda m, args, out: mixer_dtypes.append(out.dtype))
    with torch.no_grad(), torch.autocast(torch.device(device).type, dtype=torch.bfloat16):
        expected, outs = eager(x), fused(x)
    assert mixer_dtypes == [torch.bfloat16]  # float32 (the residual stream's dtype) before switch_to_deploy
    for a, b in zip(outs, expected):
        assert a.dtype == b.dtype
        assert ((a.float() - b.float()).norm() / b.float().norm()).item() < 1e-2


@pytest.mark.skipif(not CUDA, reason=str(NO_CUDA_REASON))
@pytest.mark.parametrize('precision', ['fp32', 'bf16', 'fp16'])
def test_backbone_with_fused_mixer_equals_eager_on_cuda(precision):
    """The whole backbone, training step and inference, fused vs eager mixer on the same weights."""
    from helpers import randomize_reference_state
    from mmincnext.models import InceptionNeXt
    torch.manual_seed(0)
    eager = randomize_reference_state(InceptionNeXt('tiny', out_norms=False, fused_mixer=False)).cuda()
    fused = InceptionNeXt('tiny', out_norms=False, fused_mixer=True).cuda()
    fused.load_state_dict(eager.state_dict())
    x = torch.randn(2, 3, 224, 160, device='cuda', generator=torch.Generator('cuda').manual_seed(1))
    dtype = dict(bf16=torch.bfloat16, fp16=torch.float16).get(precision, torch.float32)
    tol = dict(fp32=1e-4, bf16=3e-2, fp16=5e-3)[precision]
    for model in (eager, fused):
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.momentum = 0.0
    outs = {}
    for name, model in (('eager', eager), ('fused', fused)):
        model.train()
        with torch.autocast('cuda', dtype=dtype, enabled=precision != 'fp32'):
            features = model(x)
        sum(f.float().square().mean() for f in features).backward()
        outs[name] = ([f.detach().float() for f in features], [p.grad.float() for p in model.parameters()])
    for a, b in zip(outs['fused'][0], outs['eager'][0]):
        assert ((a - b).norm() / b.norm()).item() < tol
    total = torch.cat([g.flatten() for g in outs['eager'][1]]).norm()
    for (name, _), a, b in zip(eager.named_parameters(), outs['fused'][1], outs['eager'][1]):
        assert (a - b).norm() <= tol * max(b.norm(), 1e-2 * total), name
