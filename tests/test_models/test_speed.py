"""The fast paths keep the reference's numbers: channels-last Linear MLP, deploy folding, bf16, compile, ONNX; and
the complexity tool runs. Speed itself is never asserted here: tools/benchmark.py reports it (its tests:
test_benchmark.py)."""
import copy

import pytest
import timm
import torch
from helpers import (REPO, TINY, load_tool, randomize_reference_state, reference_stage_outputs, relative_error,
                     require_config)
from torch.nn.modules.batchnorm import _BatchNorm

from mmincnext.models import InceptionNeXt


def randomized(arch=TINY, **kwargs):
    """Our backbone with non-trivial BN statistics and layer scales (fresh ones would hide folding mistakes)."""
    torch.manual_seed(0)
    return randomize_reference_state(InceptionNeXt(arch, **kwargs))


def test_training_step_equals_timm(timm_reference):
    """Our block runs its MLP as channels-last Linear layers with the layer scale folded into fc2: the outputs,
    the gradients of every parameter and the updated BN statistics must still equal timm's module-by-module
    computation."""
    reference = timm_reference('atto')
    model = InceptionNeXt('atto', out_norms=False)
    model.load_state_dict(reference.state_dict(), strict=False)
    reference, model = reference.train(), model.train()
    x = torch.randn(2, 3, 64, 96, generator=torch.Generator().manual_seed(1))
    ours = model(x)
    expected = reference_stage_outputs(reference, x)
    for out, ref in zip(ours, expected):
        assert relative_error(out, ref) < 1e-5
    sum((o * o).mean() for o in ours).backward()
    sum((o * o).mean() for o in expected).backward()
    ref_params = dict(reference.named_parameters())
    for name, param in model.named_parameters():
        # (the stem conv's bias feeds a BN: its true gradient is 0, both sides hold rounding noise)
        ref_grad = ref_params[name].grad
        assert (param.grad - ref_grad).norm() <= 1e-4 * ref_grad.norm() + 1e-6, name
    ref_state = reference.state_dict()
    for name, value in model.state_dict().items():
        if 'running' in name:
            torch.testing.assert_close(value, ref_state[name], msg=name)


def test_outputs_follow_input_memory_format():
    model = randomized().eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        plain = model(x)
        channels_last = model(x.contiguous(memory_format=torch.channels_last))
    for a, b in zip(plain, channels_last):
        assert a.is_contiguous() and b.is_contiguous(memory_format=torch.channels_last)
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize('arch', [TINY, 'atto'])
def test_switch_to_deploy_keeps_outputs(arch):
    model = randomized(arch).eval()
    x = torch.randn(2, 3, 97, 131, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        before = model(x)
        model.switch_to_deploy()
        model.switch_to_deploy()  # a second call changes nothing
        after = model(x)
    for a, b in zip(after, before):
        assert relative_error(a, b) < 1e-5
    # Only the four output norms are left; every layer scale is folded.
    assert [n for n, m in model.named_modules() if isinstance(m, _BatchNorm)] == [f'norm{i}' for i in range(4)]
    assert not any(n.endswith('gamma') for n, _ in model.named_parameters())


@pytest.mark.parametrize('fast_path', ['gemm', 'reference'])
def test_switch_to_deploy_folds_every_bn_exactly(fast_path):
    """In float64, with running variances near BN's eps (1e-5), so that every term of the fold counts: the stem, each
    downsample and each block compute what they computed before folding, to 1e-10, each on the same input."""
    torch.manual_seed(0)
    model = randomize_reference_state(InceptionNeXt(TINY, fast_path=fast_path)).double()
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for bn in (m for m in model.modules() if isinstance(m, _BatchNorm)):
            bn.running_var.copy_(torch.rand(bn.num_features, generator=gen, dtype=torch.float64) * 1e-4 + 1e-6)
    before = copy.deepcopy(model)
    model.switch_to_deploy()
    assert [n for n, m in model.named_modules() if isinstance(m, _BatchNorm)] == [f'norm{i}' for i in range(4)]

    def check(folded, unfolded, x, where):
        expected = unfolded(x)
        error = relative_error(folded(x), expected)
        assert error < 1e-10, f'{where} changed by folding: relative error {error:.1e}'
        return expected

    with torch.no_grad():
        x = check(model.stem, before.stem, torch.randn(2, 3, 64, 96, generator=gen, dtype=torch.float64), 'stem')
        for i, (stage, unfolded) in enumerate(zip(model.stages, before.stages)):
            x = check(stage.downsample, unfolded.downsample, x, f'stage {i} downsample')
            for j, (block, unfolded_block) in enumerate(zip(stage.blocks, unfolded.blocks)):
                x = check(block, unfolded_block, x, f'stage {i} block {j}')


def test_switch_to_deploy_leaves_other_norms():
    model = InceptionNeXt(TINY, norm_cfg=dict(type='GN', num_groups=4)).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        before = model(x)
        model.switch_to_deploy()
        after = model(x)
    for a, b in zip(after, before):
        assert relative_error(a, b) < 1e-5
    assert model.stages[0].blocks[0].gamma is None
    assert isinstance(model.stages[0].blocks[0].norm, torch.nn.GroupNorm)


def test_bf16_autocast_inference_and_training():
    model = randomized()
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    model.eval()
    with torch.no_grad():
        reference = model(x)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            low = model(x)
    for a, b in zip(low, reference):
        assert a.dtype == torch.float32  # bf16 branches times float32 layer scales: a float32 stream, as timm's
        assert relative_error(a.float(), b) < 5e-2
    model.train()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        loss = sum(o.float().mean() for o in model(x))
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize('fast_path', ['gemm', 'reference'])
@pytest.mark.parametrize('training', [False, True])
def test_dynamo_traces_without_graph_breaks(training, fast_path):
    """torch.compile(fullgraph=True) needs one graph; dynamo's explain shows it without compiling C++."""
    import torch._dynamo
    torch._dynamo.reset()
    model = InceptionNeXt(TINY, drop_path_rate=0.1, fast_path=fast_path).train(training)
    explanation = torch._dynamo.explain(model)(torch.randn(2, 3, 64, 64))
    assert explanation.graph_break_count == 0, explanation.break_reasons
    assert explanation.graph_count == 1


def test_onnx_backbone_matches_onnxruntime(tmp_path):
    export_onnx = load_tool('export_onnx')
    model = randomized().eval()
    path = tmp_path / 'backbone.onnx'
    errors = export_onnx.export_and_check(model, torch.randn(1, 3, 96, 128), str(path))
    assert path.exists()
    assert errors['max_rel'] < 1e-5, errors


def test_onnx_segmentor_from_config_matches_onnxruntime(tmp_path):
    require_config('upernet_incnext_t_ade20k.py')
    export_onnx = load_tool('export_onnx')
    out = tmp_path / 'upernet.onnx'
    errors = export_onnx.main([str(REPO / 'configs/upernet_incnext_t_ade20k.py'), '--shape', '64', '96', '--out',
                               str(out)])
    assert out.exists()
    assert errors['max_rel'] < 1e-4, errors


def test_get_flops_matches_paper_for_semantic_fpn():
    """../shared/PAPER.md: Semantic FPN + InceptionNeXt-T, 28M parameters, 44G MACs at 512x512."""
    require_config('fpn_incnext_t_ade20k.py')
    get_flops = load_tool('get_flops')
    result = get_flops.complexity(str(REPO / 'configs/fpn_incnext_t_ade20k.py'), shape=[512])
    assert round(result['params'] / 1e6) == 28
    assert round(result['macs'] / 1e9) == 44


def test_get_flops_of_backbone_equals_timm_count(tmp_path):
    """The backbone alone at 224: the paper's 4.2G MACs for the classifier minus its tiny head; and the same count
    as mmengine gives for timm's model."""
    get_flops = load_tool('get_flops')
    cfg = tmp_path / 'backbone.py'
    cfg.write_text("model = dict(type='InceptionNeXt', arch='tiny', out_indices=(3, ), out_norms=False)\n")
    result = get_flops.complexity(str(cfg), shape=[224])
    from mmengine.analysis import get_model_complexity_info
    reference = timm.create_model('inception_next_tiny').eval()
    reference.forward = reference.forward_features
    expected = get_model_complexity_info(reference, inputs=(torch.randn(1, 3, 224, 224), ), show_table=False,
                                         show_arch=False)
    assert result['macs'] == expected['flops']
    assert result['params'] == expected['params'] - sum(p.numel() for p in reference.head.parameters())
    assert round(result['macs'] / 1e9, 1) == 4.2
