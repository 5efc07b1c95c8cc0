"""The fused Inception depthwise mixer (``mmincnext.ops.inception_dwconv``) against the eager mixer.

The kernels themselves are checked without a GPU through Triton's CPU interpreter. Triton decides between compiling
and interpreting when a kernel is decorated, i.e. when ``mmincnext.ops`` is first imported, and reads
``TRITON_INTERPRET`` then; in a pytest process that already imported it (the backbone does) setting the variable is
too late, and setting it for the whole session would put every Triton kernel (Inductor's too, on a GPU machine) under
the interpreter. So the ``cpu-interpreter`` cases run in a child pytest started with ``TRITON_INTERPRET=1``
(:func:`test_cpu_cases_run_in_a_subprocess`); ``TRITON_INTERPRET=1 pytest tests/test_fused_mixer.py`` runs them in
process. The ``cuda`` cases run the compiled kernels where a GPU is present.

Tolerances are relative to the largest reference value (``atol = tol * max|ref|``, ``rtol = tol``): fp32 against an
fp64 reference at 1e-5; bf16/fp16 at about two units in the last place (their outputs and gradients are rounded once
from fp32 accumulators) against an fp64 reference on the same (rounded) values, and at four against the eager mixer
run in that dtype, whose own rounding differs.
"""
import importlib
import os
import subprocess
import sys
import time

import pytest
import torch

from mmincnext.ops import fused_inception_dwconv_available, inception_dwconv, inception_dwconv_reference

# The module (the package's attribute of that name is the function).
mixer_ops = importlib.import_module('mmincnext.ops.inception_dwconv')

INTERPRETED = mixer_ops._INTERPRETED
HAS_TRITON = mixer_ops.triton is not None
# The cpu-interpreter cases exist only in a process whose kernels the interpreter runs (the child below); elsewhere
# test_cpu_cases_run_in_a_subprocess stands for them.
DEVICES = ([pytest.param('cpu', id='cpu-interpreter')] if INTERPRETED else []) + [
    pytest.param('cuda', id='cuda',
                 marks=pytest.mark.skipif(not (HAS_TRITON and torch.cuda.is_available()), reason='needs a GPU')),
]
TOL = {torch.float32: 1e-5, torch.bfloat16: 2 ** -6, torch.float16: 2 ** -9}
GRAD_NAMES = ('x', 'w_hw', 'b_hw', 'w_w', 'b_w', 'w_h', 'b_h')

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
    ('base-s2', 256, 11, 1 / 8, 1, 13, 17, False),
    ('base-s3', 512, 11, 1 / 8, 2, 3, 4, True),
    ('base-s4', 1024, 11, 1 / 8, 1, 1, 1, False),
    ('custom-k5-r0.25', 24, 5, 0.25, 2, 7, 9, True),
    ('custom-k5-r0.25-nchw', 24, 5, 0.25, 1, 13, 17, False),
    ('custom-k3-r1/3-no-identity', 18, 3, 1 / 3, 1, 5, 5, False),
]


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


def run(fn, inputs, grad_out=None, seed=1):
    """fn(*inputs) and the gradients of <fn, grad_out> in all seven inputs (a fixed random grad_out by default)."""
    inputs = [t.detach().clone(memory_format=torch.preserve_format).requires_grad_() for t in inputs]
    out = fn(*inputs)
    if grad_out is None:
        gen = torch.Generator().manual_seed(seed)
        grad_out = torch.randn(out.shape, generator=gen).to(out.device, out.dtype)
    grads = torch.autograd.grad(out, inputs, grad_out)
    return out, grads, grad_out


def assert_close(actual, expected, tol, what):
    scale = expected.abs().max().item() or 1.0
    torch.testing.assert_close(actual.double(), expected.double(), rtol=tol, atol=tol * scale,
                               msg=lambda m: f'{what}: {m}')


def check_against(out, grads, ref_out, ref_grads, tol, what):
    assert_close(out, ref_out, tol, f'{what} output')
    for name, grad, ref in zip(GRAD_NAMES, grads, ref_grads):
        assert_close(grad, ref, tol, f'{what} grad {name}')


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


LOW_PRECISION = [('tiny-s1', 96, 11, 1 / 8, 1, 13, 17, True), ('atto-s2', 80, 9, 1 / 4, 2, 7, 9, False)]


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16], ids=['bf16', 'fp16'])
@pytest.mark.parametrize('shape', LOW_PRECISION, ids=[s[0] for s in LOW_PRECISION])
def test_low_precision_matches_eager(device, dtype, shape):
    """bf16/fp16 inputs and parameters: fp32 accumulation, outputs and gradients in the input dtype."""
    inputs = make_inputs(*shape[1:], device, dtype)
    out, grads, grad_out = run(inception_dwconv, inputs)
    assert out.dtype == dtype and all(g.dtype == dtype for g in grads)
    # The same (rounded) values in fp64: only the kernel's final rounding differs.
    ref_out, ref_grads, _ = run(inception_dwconv_reference, [t.double() for t in inputs], grad_out.double())
    check_against(out, grads, ref_out, ref_grads, TOL[dtype], f'{shape[0]} {dtype} vs fp64')
    # The eager mixer in this dtype.
    ref_out, ref_grads, _ = run(inception_dwconv_reference, inputs, grad_out)
    check_against(out, grads, ref_out, ref_grads, 2 * TOL[dtype], f'{shape[0]} {dtype} vs eager {dtype}')


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16], ids=['bf16', 'fp16'])
def test_autocast_mirrors_eager(device, dtype):
    """Under autocast the eager convs run in the autocast dtype while the identity slice stays fp32 and ``cat``
    promotes: fp32 output, identity channels exact, conv channels rounded to ``dtype``; fp32 gradients."""
    shape = ('custom-k5-r0.25', 24, 5, 0.25, 2, 7, 9, True)
    inputs = make_inputs(*shape[1:], device)

    def autocast(fn):
        def wrapped(*args):
            with torch.autocast(device, dtype=dtype):
                return fn(*args)
        return wrapped

    out, grads, grad_out = run(autocast(inception_dwconv), inputs)
    ref_out, ref_grads, _ = run(autocast(inception_dwconv_reference), inputs, grad_out)
    assert out.dtype == ref_out.dtype == torch.float32
    assert all(g.dtype == torch.float32 for g in grads)
    c_id = 24 - 3 * 6
    assert torch.equal(out[:, :c_id], inputs[0][:, :c_id])
    assert torch.equal(out[:, c_id:].to(dtype).float(), out[:, c_id:])  # conv channels hold `dtype` values
    check_against(out, grads, ref_out, ref_grads, 2 * TOL[dtype], f'autocast {dtype} vs eager autocast')
    # Autocast off inside: the op on the same values in fp32 is within the dtype's rounding of it.
    out32, grads32, _ = run(inception_dwconv, inputs, grad_out)
    check_against(out, grads, out32, grads32, 4 * TOL[dtype], f'autocast {dtype} vs fp32')


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

    empty = inputs[0][:0]
    assert inception_dwconv(empty, *inputs[1:]).shape == empty.shape


@pytest.mark.parametrize('device', DEVICES)
def test_torch_compile_fullgraph(device):
    """``torch.compile(fullgraph=True)`` traces through the op (no graph break) and its autograd. On a GPU it is
    Inductor with the kernels inlined; the interpreter cannot run inside AOTAutograd/Inductor graphs, so on CPU the
    check is Dynamo alone (backend='eager'), which still goes through the op's fake (shape) implementation."""
    torch._dynamo.reset()
    backend = 'inductor' if device == 'cuda' else 'eager'
    compiled = torch.compile(inception_dwconv, backend=backend, fullgraph=True)
    inputs = make_inputs(96, 11, 1 / 8, 2, 7, 9, True, device)
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
    """Without the interpreter a CPU tensor is not for the kernels: unavailable, and the entry is the eager mixer.
    Without Triton nothing is available."""
    inputs = make_inputs(40, 9, 1 / 4, 1, 5, 6, False, 'cpu')
    assert not fused_inception_dwconv_available(inputs[0])

    def no_kernels(*args, **kwargs):
        raise AssertionError('a Triton kernel was launched')

    monkeypatch.setattr(mixer_ops, '_launch', no_kernels)
    assert torch.equal(inception_dwconv(*inputs), inception_dwconv_reference(*inputs))
    monkeypatch.setattr(mixer_ops, 'triton', None)
    assert not fused_inception_dwconv_available(inputs[0])
    if torch.cuda.is_available():
        assert not fused_inception_dwconv_available(inputs[0].cuda())


@pytest.mark.skipif(INTERPRETED, reason='this process runs the cpu-interpreter cases itself')
@pytest.mark.skipif(not HAS_TRITON, reason='triton is not installed (it comes with torch on Linux)')
def test_cpu_cases_run_in_a_subprocess():
    """The ``cpu-interpreter`` cases of this file, in a child pytest with ``TRITON_INTERPRET=1`` set before anything
    imports Triton; its report is shown on failure."""
    env = dict(os.environ, TRITON_INTERPRET='1')
    cmd = [sys.executable, '-m', 'pytest', __file__, '-q', '-k', 'cpu-interpreter', '-p', 'no:cacheprovider',
           '--noconftest', '-o', 'addopts=-ra --durations=5']
    start = time.perf_counter()
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900,
                            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    report = result.stdout[-12000:] + result.stderr[-4000:]
    assert result.returncode == 0, report
    summary = [line for line in result.stdout.splitlines() if ' passed' in line]
    assert summary and 'skipped' not in summary[-1] and 'deselected' in summary[-1], report
    print(f'interpreter cases: {time.perf_counter() - start:.1f} s\n{result.stdout[-3000:]}')


@pytest.mark.skipif(INTERPRETED or not HAS_TRITON, reason='needs the kernels as Triton builds them for a GPU')
def test_kernels_compile_for_sm90_without_spills():
    """The interpreter runs the kernels as Python and checks none of Triton's typing rules, so compile them here,
    without a GPU, the whole way to an H100/H200 (sm_90) binary with the default tiles, as a launch on the GPU would
    (unit strides specialised), and check that no registers spill to local memory."""
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    import inspect
    import re
    import tempfile
    import triton

    def compile_kernel(kernel, dtype, constexprs):
        names = list(inspect.signature(kernel.fn).parameters)
        signature = {n: 'constexpr' if n in constexprs else
                     (dtype if n in ('src_ptr', 'dst_ptr', 'x_ptr', 'dy_ptr') else '*fp32') if n.endswith('_ptr')
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

    # (layout, H=W, g, dtype, autocast rounding, transposed): tiny's stage 1 and 4, both layouts, all three dtypes.
    for channels_last, size, g, dtype, rounding, transposed in [(False, 56, 12, '*bf16', 0, False),
                                                                 (True, 56, 12, '*fp16', 0, True),
                                                                 (True, 7, 96, '*fp32', 2, False)]:
        block_c, block_h, block_w, _ = mixer_ops._tile_config(channels_last, size, size, g)
        meta = dict(S=3, K=11, ROUND=rounding, BLOCK_C=block_c, BLOCK_H=block_h, BLOCK_W=block_w)
        meta['stride_c' if channels_last else 'stride_w'] = 1
        compile_kernel(mixer_ops._inception_dwconv_kernel, dtype, dict(meta, TRANSPOSED=transposed))
        compile_kernel(mixer_ops._inception_dwconv_wgrad_kernel, dtype, meta)


# ----------------------------------------------------------------------------------------------------------------
# The backbone's switch: fused_mixer / MMINCNEXT_FUSED_MIXER
# ----------------------------------------------------------------------------------------------------------------
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


def test_backbone_with_fused_mixer_keeps_checkpoints_and_cpu_outputs():
    """Same parameters and state_dict keys either way; CPU inputs take the eager mixer, so outputs are identical."""
    from mmincnext.models import InceptionNeXt
    torch.manual_seed(0)
    eager = InceptionNeXt('atto', fused_mixer=False).eval()
    fused = InceptionNeXt('atto', fused_mixer=True).eval()
    fused.load_state_dict(eager.state_dict())
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        for a, b in zip(fused(x), eager(x)):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.skipif(not torch.cuda.is_available() or not HAS_TRITON, reason='needs a GPU and Triton')
@pytest.mark.parametrize('precision', ['fp32', 'bf16', 'fp16'])
def test_backbone_with_fused_mixer_equals_eager_on_cuda(precision):
    """The whole backbone, training step and inference, fused vs eager mixer on the same weights."""
    from conftest import randomize_reference_state
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
