"""Numerics equal to timm's ``inception_next_*`` (same weights) in every precision: float32, and bfloat16 and float16
autocast, in inference and training, with layer scales at their initial 1e-6 and at trained-like values, on both
fast paths and on every device present (CUDA tests skip without a GPU).

The bar is the reference's own error: ours under a half type may differ from timm's float32 results by no more than
timm under the same half type does (times a small margin for rounding in another order), and our residual stream
keeps the dtype timm's keeps it in."""
import contextlib
import copy

import pytest
import torch
from helpers import randomize_reference_state, reference_stage_outputs, relative_error

from mmincnext.compat import CPU_FP16_AUTOCAST
from mmincnext.models import InceptionNeXt

DEVICES = ['cpu', pytest.param('cuda', marks=pytest.mark.skipif(not torch.cuda.is_available(), reason='no GPU'))]
PRECISIONS = ('fp32', 'bf16', 'fp16')
DTYPES = dict(bf16=torch.bfloat16, fp16=torch.float16)
# Ours may round in another order than timm (a GEMM instead of a 1x1 convolution): allow 1.5x the reference's own
# error; in float32, where the reference has none and a nearly-0 gradient is all summation-order noise, 1e-4.
MARGIN, FLOOR = 1.5, 1e-4
# The biases that feed a training-mode BN (the stem conv's, the mixer's convs') have an exact gradient of 0: both
# implementations return rounding noise there, not comparable. Other gradients can be nearly 0 (a BN bias whose
# output is normalised again): their errors are taken relative to at least this fraction of all gradients' norm.
ZERO_GRADIENT = ('stem.0.bias', 'token_mixer.dwconv_hw.bias', 'token_mixer.dwconv_w.bias',
                 'token_mixer.dwconv_h.bias')
GRAD_SCALE_FLOOR = 1e-4
BRANCH_INSIDE_ANOTHER_OP = ('onednn', 'fused_residual')


def require_autocast(device, precision):
    """Skip where this torch has no such autocast: CPU float16 autocast came with torch 2.2."""
    if device == 'cpu' and precision == 'fp16' and not CPU_FP16_AUTOCAST:
        pytest.skip('CPU float16 autocast needs torch >= 2.2')


def autocast(device, precision):
    """torch.autocast for bf16/fp16; none for fp32 (torch 2.1 rejects even a disabled float32 autocast on CPU)."""
    return contextlib.nullcontext() if precision == 'fp32' else torch.autocast(device, dtype=DTYPES[precision])


@pytest.fixture(scope='module')
def atto_pair():
    """timm's inception_next_atto and ours with its weights: ``make(trained)`` -> (timm, ours), fresh copies.
    ``trained=False`` keeps the layer scales at their initial 1e-6 (and fresh BN statistics), ``True`` gives
    trained-like BN statistics and layer scales of 0.25-0.75."""
    import timm
    torch.manual_seed(0)
    fresh = timm.create_model('inception_next_atto', pretrained=False)
    trained = randomize_reference_state(copy.deepcopy(fresh))

    def make(is_trained: bool, device: str, fast_path: str):
        reference = copy.deepcopy(trained if is_trained else fresh).to(device)
        ours = InceptionNeXt('atto', out_norms=False, fast_path=fast_path).to(device)
        ours.load_state_dict(reference.state_dict(), strict=False)
        return reference, ours

    return make


def record_branches(model):
    """Each block's residual branch (``drop_path``'s input: ``gamma * mlp(...)``, what is added to the stream), in
    block order, through hooks on the drop-path modules both implementations have."""
    branches = []
    handles = [block.drop_path.register_forward_hook(
        lambda module, args, out: branches.append(args[0].detach().float().clone()))  # before an in-place add
        for stage in model.stages for block in stage.blocks]
    return branches, handles


def run(model, x, device, precision, training, features):
    """Features, each block's branch and (training) every parameter's gradient, all as float32 copies."""
    model.train(training)
    for module in model.modules():  # train-mode numerics, but the same BN statistics in every pass
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.momentum = 0.0
    branches, handles = record_branches(model)
    model.zero_grad(set_to_none=True)
    with torch.set_grad_enabled(training), autocast(device, precision):
        outs = features(model, x)
    for handle in handles:
        handle.remove()
    result = dict(features=[o.detach().float() for o in outs], dtypes=[o.dtype for o in outs],
                  branches=branches)
    if training:
        sum((o.float() ** 2).mean() for o in outs).backward()
        result['grads'] = {n: p.grad.float() for n, p in model.named_parameters() if p.grad is not None}
    return result


def assert_within_reference_error(ours, reference_low, reference_fp32, what, min_scale=0.0):
    scale = max(reference_fp32.norm().item(), min_scale)
    ours_err = (ours - reference_fp32).norm().item() / scale
    bound = max(MARGIN * (reference_low - reference_fp32).norm().item() / scale, FLOOR)
    assert ours_err <= bound, f'{what}: ours {ours_err:.2e} against float32, the reference {bound / MARGIN:.2e}'


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('fast_path', ['onednn', 'gemm', 'fused_residual', 'reference'])
@pytest.mark.parametrize('trained', [False, True], ids=['scale1e-6', 'trained'])
@pytest.mark.parametrize('training', [False, True], ids=['infer', 'train'])
@pytest.mark.parametrize('precision', PRECISIONS)
def test_equals_timm_within_its_own_error(atto_pair, device, fast_path, trained, training, precision):
    if device == 'cpu' and fast_path == 'reference' and not training:
        pytest.skip("timm's own op sequence (the CUDA default): its training pass checks the same forward on CPU")
    require_autocast(device, precision)
    if device != 'cpu' and fast_path == 'onednn':
        pytest.skip('oneDNN is a CPU path: on other devices the block runs the GEMM path')
    if fast_path == 'onednn' and training:
        pytest.skip("with autograd recording the oneDNN block runs the GEMM path, whose training pass is checked")
    reference, ours = atto_pair(trained, device, fast_path)
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1)).to(device)
    truth = run(reference, x, device, 'fp32', training, reference_stage_outputs)
    low = run(reference, x, device, precision, training, reference_stage_outputs)
    mine = run(ours, x, device, precision, training, lambda m, t: m(t))
    assert mine['dtypes'] == low['dtypes'], 'the residual stream must keep the dtype timm keeps it in'
    for i, (a, b, c) in enumerate(zip(mine['features'], low['features'], truth['features'])):
        assert_within_reference_error(a, b, c, f'stage {i} output')
    assert len(truth['branches']) == 12
    # Paths that add the branch inside another op (fc2's GEMM, addcmul) never hand it to drop_path: their tiny layer
    # scale is checked through the output (tests/test_models/test_cpu_fast_path.py::test_tiny_layer_scale_survives).
    assert len(mine['branches']) == (0 if fast_path in BRANCH_INSIDE_ANOTHER_OP else 12)
    for i, (a, b, c) in enumerate(zip(mine['branches'], low['branches'], truth['branches'])):
        assert_within_reference_error(a, b, c, f'block {i} branch')
    if training:
        assert mine['grads'].keys() == truth['grads'].keys()
        total = torch.cat([g.flatten() for g in truth['grads'].values()]).norm().item()
        for name, grad in mine['grads'].items():
            if name.endswith(ZERO_GRADIENT):
                continue
            assert_within_reference_error(grad, low['grads'][name], truth['grads'][name], f'grad {name}',
                                          min_scale=GRAD_SCALE_FLOOR * total)


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('precision', PRECISIONS)
def test_deployed_model_keeps_reference_numerics(atto_pair, device, precision):
    """switch_to_deploy folds BNs and trained layer scales into the convs: under autocast its stream still has
    timm's dtype and its error stays within (a margin over) timm's own."""
    require_autocast(device, precision)
    reference, ours = atto_pair(True, device, 'auto')
    ours.eval().switch_to_deploy()
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1)).to(device)
    truth = run(reference, x, device, 'fp32', False, reference_stage_outputs)
    low = run(reference, x, device, precision, False, reference_stage_outputs)
    with torch.no_grad(), autocast(device, precision):
        mine = ours(x)
    assert [o.dtype for o in mine] == low['dtypes']
    for i, (a, b, c) in enumerate(zip(mine, low['features'], truth['features'])):
        # Folding rounds the products W * gamma once more in the half type: twice the margin.
        ours_err, ref_err = relative_error(a.float(), c), relative_error(b, c)
        assert ours_err <= max(2 * MARGIN * ref_err, FLOOR), f'stage {i}: {ours_err:.2e} vs {ref_err:.2e}'


def test_fp16_keeps_tiny_layer_scale():
    """The finding behind these tests: with the layer scale folded into fc2's weight, float16 autocast turned
    W * 1e-6 (~2e-8, below float16's smallest subnormal) into 0 and the branch was lost. Unfolded, it survives."""
    require_autocast('cpu', 'fp16')
    model = InceptionNeXt('atto', out_norms=False, fast_path='gemm').train()
    block = model.stages[2].blocks[0]
    x = torch.randn(2, 160, 8, 8, generator=torch.Generator().manual_seed(0))

    def branch():  # what the block adds to its input (drop_path's input)
        captured = []
        handle = block.drop_path.register_forward_hook(lambda module, args, out: captured.append(args[0]))
        block(x)
        handle.remove()
        return captured[0]

    exact = branch()
    with autocast('cpu', 'fp16'):
        low = branch()
    assert low.dtype == torch.float32  # fp16 branch times the float32 layer scale, as in timm
    assert relative_error(low.float(), exact) < 0.1
