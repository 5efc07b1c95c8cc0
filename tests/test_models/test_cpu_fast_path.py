"""The block classes beside the paper's: the oneDNN CPU path and the one-op residual, each against
:class:`MetaNeXtBlock` (timm's op sequence) on the same weights, in float32 and bfloat16 (autocast, and bfloat16
weights), inference and training, deployed and not; and which class ``select_block`` picks.

The bar in bfloat16 is the reference's own: our error against the float32 reference may exceed the reference's
bfloat16 error against it by at most ``MARGIN`` (rounding in another order)."""
import copy

import pytest
import torch
from helpers import randomize_reference_state, relative_error

from mmincnext.compat import (CPU_FP16_AUTOCAST, DYNAMO_TRACES_PROMOTE_TYPES, ONEDNN_LINEAR_POINTWISE,
                              onednn_linear_dtypes)
from mmincnext.models import InceptionNeXt
from mmincnext.models.layers import fast_paths
from mmincnext.models.layers.fast_paths import (FusedResidualMetaNeXtBlock, GemmMetaNeXtBlock, OneDNNMetaNeXtBlock,
                                                select_block)
from mmincnext.models.layers.metanext_block import MetaNeXtBlock

MIXER = dict(type='InceptionDWConv2d', band_kernel_size=5, branch_ratio=0.25)
CHANNELS = 32
MARGIN, FLOOR = 1.5, 1e-5
NEW_BLOCKS = [OneDNNMetaNeXtBlock, FusedResidualMetaNeXtBlock]
needs_onednn_bf16 = pytest.mark.skipif(torch.bfloat16 not in onednn_linear_dtypes(),
                                       reason='no oneDNN bfloat16 linear on this CPU / PyTorch build')


def reference_block(drop_path: float = 0.) -> MetaNeXtBlock:
    """The paper's block with trained-like BN statistics and layer scales (0.25-0.75)."""
    torch.manual_seed(0)
    return randomize_reference_state(MetaNeXtBlock(CHANNELS, MIXER, dict(type='BN'), drop_path=drop_path))


def same_weights(cls: type, reference: MetaNeXtBlock) -> MetaNeXtBlock:
    block = cls(CHANNELS, MIXER, dict(type='BN'), drop_path=getattr(reference.drop_path, 'drop_prob', 0.))
    block.load_state_dict(reference.state_dict())
    return block


def inputs(batch: int = 2, scale: float = 1.) -> torch.Tensor:
    """Channels-last, as the backbone feeds the CPU paths; odd sizes."""
    x = torch.randn(batch, CHANNELS, 11, 13, generator=torch.Generator().manual_seed(1)) * scale
    return x.contiguous(memory_format=torch.channels_last)


def branch(block, x, precision='fp32'):
    """What the block adds to its input, in float64 (the output minus the input), in eval mode without autograd."""
    with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16, enabled=precision == 'autocast'):
        if precision == 'weights':
            block, x = copy.deepcopy(block).to(torch.bfloat16), x.to(torch.bfloat16)
        out = block.eval()(x)
    return out, out.double() - x.double()


def assert_within_reference_error(ours, reference_low, truth, what, margin=MARGIN):
    ours_err, ref_err = relative_error(ours, truth), relative_error(reference_low, truth)
    assert ours_err <= max(margin * ref_err, FLOOR), f'{what}: ours {ours_err:.2e}, the reference {ref_err:.2e}'


@pytest.mark.parametrize('cls', NEW_BLOCKS)
@pytest.mark.parametrize('precision', ['fp32', pytest.param('autocast', marks=needs_onednn_bf16),
                                       pytest.param('weights', marks=needs_onednn_bf16)])
@pytest.mark.parametrize('deployed', [False, True], ids=['eager', 'deployed'])
def test_inference_equals_reference(cls, precision, deployed):
    reference = reference_block()
    block = same_weights(cls, reference)
    if deployed:
        block.eval().switch_to_deploy()
    x = inputs()
    _, truth = branch(reference, x)
    ref_out, ref_low = branch(reference, x, precision)
    out, ours = branch(block, x, precision)
    assert out.dtype == ref_out.dtype  # autocast: a float32 residual stream, as timm's
    assert out.is_contiguous(memory_format=torch.channels_last)
    # Folding rounds W * gamma once more in bfloat16: twice the margin, as for the whole deployed model.
    margin = 2 * MARGIN if deployed and precision != 'fp32' else MARGIN
    assert_within_reference_error(ours, ref_low, truth, f'{cls.__name__} {precision}', margin)


@needs_onednn_bf16
@pytest.mark.parametrize('cls', NEW_BLOCKS)
@pytest.mark.parametrize('deployed', [False, True], ids=['eager', 'deployed'])
@pytest.mark.parametrize('input_dtype', [torch.float32, torch.bfloat16])
def test_autocast_stream_dtype_follows_reference(cls, deployed, input_dtype):
    """Under autocast the stream's dtype is timm's: float32 after any block whose layer scale (or fc2, folded) is
    float32, even where the block's input is bfloat16 (the stem's output, under autocast)."""
    reference = reference_block()
    block = same_weights(cls, reference)
    for m in (reference, block) if deployed else ():
        m.eval().switch_to_deploy()
    x = inputs().to(input_dtype)
    with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16):
        assert block.eval()(x).dtype == reference.eval()(x).dtype == torch.float32


@needs_onednn_bf16
@pytest.mark.parametrize('precision', ['fp32', 'autocast', 'weights'])
def test_onednn_slices_keep_outputs_and_run_onednn(precision):
    """The MLP in slices (hidden activations bounded) gives the one-slice result, through oneDNN's fused ops: two
    per slice, none of aten's addmm."""
    reference = reference_block()
    whole = same_weights(OneDNNMetaNeXtBlock, reference)
    sliced = same_weights(OneDNNMetaNeXtBlock, reference)
    x = inputs(batch=3)
    sliced.hidden_slice_bytes = 100 * 4 * CHANNELS * 2  # 100 tokens a slice in bfloat16, 50 in float32
    rows = len(x) * 11 * 13
    slices = -(-rows // (100 if precision != 'fp32' else 50))
    from torch.profiler import profile
    with profile() as prof:
        out, ours = branch(sliced, x, precision)
    _, expected = branch(whole, x, precision)
    names = [e.name for e in prof.events()]
    assert names.count('mkldnn::_linear_pointwise') == 2 * slices and 'aten::addmm' not in names
    tolerance = 1e-6 if precision == 'fp32' else 1e-2
    assert relative_error(ours, expected) < tolerance


@pytest.mark.filterwarnings('ignore:.*torch.jit.trace:FutureWarning')
def test_onednn_block_takes_the_gemm_path_where_it_must():
    """With autograd recording (training), and while traced (ONNX export, complexity counts), the block runs the
    GEMM path: standard, differentiable ops, the same outputs."""
    reference = reference_block()
    block = same_weights(OneDNNMetaNeXtBlock, reference).eval()
    gemm = same_weights(GemmMetaNeXtBlock, reference).eval()
    x = inputs()
    from torch.profiler import profile
    with profile() as prof:
        out = block(x)
        traced = torch.jit.trace(block, x, check_trace=False)
    assert not any(e.name.startswith('mkldnn::') for e in prof.events())
    assert out.requires_grad
    torch.testing.assert_close(out, gemm(x))
    with torch.no_grad():
        torch.testing.assert_close(traced(x), gemm(x))
        assert 'mkldnn' not in str(traced.graph)


def train_step(block, autocast: bool):
    """One training step's branch (output minus input, float64), gradients (input and parameters) and updated BN
    mean, on a copy of ``block``."""
    block = copy.deepcopy(block).train()
    x = inputs().requires_grad_()
    with torch.autocast('cpu', dtype=torch.bfloat16, enabled=autocast):
        out = block(x)
    (out.float()**2).mean().backward()
    grads = {'x': x.grad, **{name: p.grad for name, p in block.named_parameters()}}
    return out.detach().double() - x.detach().double(), grads, block.norm.running_mean


@pytest.mark.parametrize('cls', NEW_BLOCKS)
@pytest.mark.parametrize('precision', ['fp32', pytest.param('autocast', marks=needs_onednn_bf16)])
def test_training_equals_reference(cls, precision):
    """Outputs, input and parameter gradients and BN statistics of a training step."""
    reference = reference_block()
    truth, truth_grads, _ = train_step(reference, False)
    ref_low, ref_grads, ref_mean = train_step(reference, precision == 'autocast')
    ours, ours_grads, ours_mean = train_step(same_weights(cls, reference), precision == 'autocast')
    assert ours_grads.keys() == truth_grads.keys()
    # (the mixer's conv biases feed a training-mode BN: their true gradient is 0, both sides hold rounding noise)
    checked = [name for name in ours_grads if not name.startswith('token_mixer')]
    if precision == 'fp32':
        assert relative_error(ours, truth) < FLOOR
        for name in checked:
            assert relative_error(ours_grads[name], truth_grads[name]) < 1e-4, name
    else:
        assert_within_reference_error(ours, ref_low, truth, 'branch')
        for name in checked:
            assert_within_reference_error(ours_grads[name], ref_grads[name], truth_grads[name], name)
    torch.testing.assert_close(ours_mean, ref_mean)  # the same mixer, the same statistics


@pytest.mark.parametrize('precision', ['fp32', pytest.param('autocast', marks=needs_onednn_bf16)])
def test_fused_residual_drops_the_same_samples(precision):
    """Drop path folded into the residual's scale draws mmcv's random numbers: the same seed drops the same samples,
    so training reproduces; and it does drop (some samples' branches are 0, the others scaled by 1 / keep)."""
    reference = reference_block(drop_path=0.5).train()
    fused = same_weights(FusedResidualMetaNeXtBlock, reference).train()
    x = inputs(batch=8)
    outs = []
    for block in (reference, fused):
        torch.manual_seed(3)
        with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16, enabled=precision == 'autocast'):
            outs.append(block(x).double() - x.double())
    expected, ours = outs
    dropped = expected.flatten(1).abs().amax(1) == 0
    assert 0 < dropped.sum() < len(x)
    assert torch.equal(ours.flatten(1).abs().amax(1) == 0, dropped)
    assert relative_error(ours, expected) < (FLOOR if precision == 'fp32' else 1e-2)


@pytest.mark.parametrize('cls', NEW_BLOCKS)
@pytest.mark.parametrize('precision', [
    pytest.param('fp16', marks=pytest.mark.skipif(not CPU_FP16_AUTOCAST,
                                                  reason='CPU float16 autocast needs torch >= 2.2')),
    pytest.param('bf16', marks=needs_onednn_bf16)])
def test_tiny_layer_scale_survives(cls, precision):
    """At its initial 1e-6 the layer scale must not be lost under autocast (float16 once turned W x 1e-6 into 0): the
    branch, here as large as the input, is measurable in the output."""
    torch.manual_seed(0)
    reference = MetaNeXtBlock(CHANNELS, MIXER, dict(type='BN')).eval()
    block = same_weights(cls, reference).eval()
    x = inputs(scale=1e-7)
    dtype = dict(fp16=torch.float16, bf16=torch.bfloat16)[precision]
    with torch.no_grad():
        truth = reference(x).double() - x.double()
        with torch.autocast('cpu', dtype=dtype):
            ours = block(x).double() - x.double()
    assert truth.abs().max() > 0.1 * x.abs().max()
    assert relative_error(ours, truth) < 0.05


def test_select_block(monkeypatch):
    cpu_best = OneDNNMetaNeXtBlock if ONEDNN_LINEAR_POINTWISE else GemmMetaNeXtBlock
    assert select_block('auto', 'cpu') is cpu_best
    assert select_block('auto', 'cuda') is MetaNeXtBlock
    assert select_block('gemm', 'cuda') is GemmMetaNeXtBlock
    assert select_block('fused_residual', 'cpu') is FusedResidualMetaNeXtBlock
    assert select_block('reference', 'cpu') is MetaNeXtBlock
    with pytest.raises(ValueError, match='fast_path must be one of'):
        select_block('fast', 'cpu')
    monkeypatch.setattr(fast_paths, 'ONEDNN_LINEAR_POINTWISE', False)
    assert select_block('auto', 'cpu') is GemmMetaNeXtBlock
    with pytest.warns(UserWarning, match='oneDNN'):
        assert select_block('onednn', 'cpu') is GemmMetaNeXtBlock


@needs_onednn_bf16
def test_backbone_picks_onednn_on_cpu_and_keeps_bf16_outputs():
    """The default backbone on CPU runs the oneDNN blocks channels-last; deployed with bfloat16 weights (the fast
    inference setting) its stage outputs equal the GEMM path's within bfloat16 rounding."""
    torch.manual_seed(0)
    model = randomize_reference_state(InceptionNeXt('atto', out_norms=False)).eval()
    assert model.block_type is OneDNNMetaNeXtBlock and model.block_type.channels_last
    gemm = InceptionNeXt('atto', out_norms=False, fast_path='gemm').eval()
    gemm.load_state_dict(model.state_dict())
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        truth = gemm(x)
        for m in (model, gemm):
            m.switch_to_deploy()
            m.to(torch.bfloat16)
        ours, theirs = model(x.bfloat16()), gemm(x.bfloat16())
    for a, b, t in zip(ours, theirs, truth):
        assert a.dtype == torch.bfloat16
        assert_within_reference_error(a.float(), b.float(), t, 'stage output')


@pytest.mark.skipif(not DYNAMO_TRACES_PROMOTE_TYPES, reason='one graph needs a dynamo that traces torch.promote_types '
                    '(torch >= 2.4; docs/compatibility.md)')
def test_compiles_as_one_graph_at_inference():
    """Under torch.compile the oneDNN block hands dynamo the GEMM formula (oneDNN's fused ops have no fake-tensor
    kernels): one graph, no breaks, at inference as in training."""
    import torch._dynamo
    torch._dynamo.reset()
    model = InceptionNeXt('atto', out_norms=False, fast_path='onednn').eval()
    with torch.inference_mode():
        explanation = torch._dynamo.explain(model)(torch.randn(1, 3, 64, 64))
    assert explanation.graph_break_count == 0, explanation.break_reasons
    assert explanation.graph_count == 1
