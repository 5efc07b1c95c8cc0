"""The InceptionNeXt backbone against timm's reference implementation and the paper's sizes."""
import pytest
import torch
from helpers import reference_stage_outputs, require
from mmengine.registry import DefaultScope
from torch.nn.modules.batchnorm import _BatchNorm

from mmincnext.models import InceptionNeXt

ARCHS = ('atto', 'tiny', 'small', 'base')
# ../shared/PAPER.md: parameters with the ImageNet-1K classification head, in millions.
PAPER_PARAMS_M = dict(atto=4.16, tiny=28.06, small=49.37, base=86.67)
ODD_INPUT = (1, 3, 97, 131)  # sides not multiples of 32


def n_params(module):
    return sum(p.numel() for p in module.parameters())


def paper_head_params(channels, num_classes=1000):
    hidden = 3 * channels  # MlpHead: Linear(C, 3C), GELU, LayerNorm(3C), Linear(3C, classes)
    return channels * hidden + hidden + 2 * hidden + hidden * num_classes + num_classes


@pytest.mark.integration
@pytest.mark.parametrize('arch', ARCHS)
def test_stage_outputs_equal_timm(arch, timm_reference, tmp_path):
    reference = timm_reference(arch)
    path = tmp_path / f'inceptionnext_{arch}.pth'
    torch.save(reference.state_dict(), path)
    model = InceptionNeXt(arch, init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    model.init_weights()
    model.eval()

    x = torch.randn(ODD_INPUT, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours = model(x)
        expected = reference_stage_outputs(reference, x)
    assert len(ours) == 4
    bn_eps = model.norm0.eps
    for i, (out, ref) in enumerate(zip(ours, expected)):
        assert out.shape == ref.shape == (1, model.dims[i], 97 // 4 // 2**i, 131 // 4 // 2**i)
        # A fresh output BN in eval mode divides by sqrt(1 + eps); everything before it must equal timm.
        ref = ref / (1 + bn_eps) ** 0.5
        rel_err = ((out - ref).norm() / ref.norm()).item()
        assert rel_err < 1e-5, f'{arch} stage {i}: relative error {rel_err:.2e}'


@pytest.mark.parametrize('arch', ARCHS)
def test_parameter_counts_match_timm_and_paper(arch, timm_reference):
    model = InceptionNeXt(arch)
    reference = timm_reference(arch)
    output_norms = sum(n_params(getattr(model, f'norm{i}')) for i in range(4))
    backbone = n_params(model) - output_norms
    assert backbone == n_params(reference) - n_params(reference.head)
    with_head = backbone + paper_head_params(model.dims[-1])
    assert round(with_head / 1e6, 2) == PAPER_PARAMS_M[arch]


@pytest.mark.parametrize('scope', ['mmseg', 'mmdet'])
def test_builds_from_downstream_registries(scope):
    registry = require(f'{scope}.registry')
    with DefaultScope.overwrite_default_scope(scope):
        model = registry.MODELS.build(dict(type='InceptionNeXt', arch='atto', out_indices=(1, 3)))
    assert isinstance(model, InceptionNeXt)
    outs = model(torch.randn(1, 3, 64, 64))
    assert [o.shape[1] for o in outs] == [80, 320]


def test_config_with_custom_imports_builds(tmp_path):
    from mmengine.config import Config
    MODELS = require('mmseg.registry').MODELS
    cfg_file = tmp_path / 'cfg.py'
    cfg_file.write_text("custom_imports = dict(imports=['mmincnext'], allow_failed_imports=False)\n"
                        "default_scope = 'mmseg'\n"
                        "model = dict(type='InceptionNeXt', arch='atto', drop_path_rate=0.1)\n")
    cfg = Config.fromfile(str(cfg_file))
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        assert isinstance(MODELS.build(cfg.model), InceptionNeXt)


def test_custom_arch_dict():
    arch = dict(depths=(1, 1, 2, 1), dims=(16, 32, 64, 128), band_kernel_size=5, branch_ratio=0.25)
    model = InceptionNeXt(arch)
    outs = model(torch.randn(2, 3, 64, 96))
    assert [tuple(o.shape) for o in outs] == [(2, 16, 16, 24), (2, 32, 8, 12), (2, 64, 4, 6), (2, 128, 2, 3)]
    assert model.stages[2].blocks[0].token_mixer.dwconv_w.kernel_size == (1, 5)


@pytest.mark.parametrize('out_indices, channels', [((0, 1, 2, 3), [40, 80, 160, 320]), ((1, 3), [80, 320]),
                                                   (2, [160]), ((-1, ), [320])])
def test_out_indices_subsets(out_indices, channels):
    model = InceptionNeXt('atto', out_indices=out_indices)
    outs = model(torch.randn(1, 3, 64, 64))
    assert [o.shape[1] for o in outs] == channels
    assert [n for n, _ in model.named_children() if n.startswith('norm')] == \
        [f'norm{i}' for i in model.out_indices]


SMALL_ARCH = dict(depths=(1, 1, 2, 1), dims=(16, 32, 64, 128), band_kernel_size=5, branch_ratio=0.25)


@pytest.mark.parametrize('out_indices', [(0, 1, 2, 3), (1, 3)])
def test_each_output_norm_normalises_its_own_stage(out_indices):
    """Output i is norm{i} (with its own statistics and affine parameters) of stage i's raw output, and every output
    norm gets its gradient. Fresh output BNs are the identity to within 5e-6 and would hide a skipped one."""
    torch.manual_seed(0)
    model = InceptionNeXt(SMALL_ARCH, out_indices=out_indices)
    raw = InceptionNeXt(SMALL_ARCH, out_indices=out_indices, out_norms=False)
    gen = torch.Generator().manual_seed(0)
    norms = {i: getattr(model, f'norm{i}') for i in out_indices}
    with torch.no_grad():
        for norm in norms.values():
            channels = norm.num_features
            norm.running_mean.copy_(torch.randn(channels, generator=gen))
            norm.running_var.copy_(torch.rand(channels, generator=gen) * 2 + 0.1)
            norm.weight.copy_(torch.randn(channels, generator=gen))
            norm.bias.copy_(torch.randn(channels, generator=gen))
    raw.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith('norm')})
    model.eval(), raw.eval()  # the output norms use the statistics set above

    x = torch.randn(2, 3, 64, 96, generator=gen)
    outs = model(x)
    with torch.no_grad():
        stages = raw(x)
    assert len(outs) == len(stages) == len(out_indices)
    upstream = [torch.randn(o.shape, generator=gen) for o in outs]
    sum((o * g).sum() for o, g in zip(outs, upstream)).backward()
    for i, out, stage, grad in zip(out_indices, outs, stages, upstream):
        norm = norms[i]
        mean, var, weight, bias = (t[:, None, None] for t in (norm.running_mean, norm.running_var, norm.weight,
                                                                 norm.bias))
        normalised = (stage - mean) / torch.sqrt(var + norm.eps)
        torch.testing.assert_close(out, normalised * weight + bias, msg=f'output {i} is not norm{i}(stage {i})')
        # in eval mode BN is affine per channel: d/d bias sums the upstream gradient, d/d weight weighs it by the input
        torch.testing.assert_close(norm.bias.grad, grad.sum((0, 2, 3)), msg=f'norm{i}.bias gradient')
        torch.testing.assert_close(norm.weight.grad, (grad * normalised).sum((0, 2, 3)), msg=f'norm{i}.weight gradient')


def test_frozen_stages_get_no_gradients():
    model = InceptionNeXt('atto', frozen_stages=2)
    model.train()
    sum(o.sum() for o in model(torch.randn(2, 3, 64, 64))).backward()
    frozen = [model.stem, model.stages[0], model.stages[1]]
    for module in frozen:
        assert not module.training
        assert all(not p.requires_grad and p.grad is None for p in module.parameters())
    for module in (model.stages[2], model.stages[3], model.norm0):
        assert module.training
        assert all(p.grad is not None for p in module.parameters())


def test_norm_eval_keeps_bn_statistics():
    model = InceptionNeXt('atto', norm_eval=True)
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items() if 'running' in k}
    model(torch.randn(2, 3, 64, 64) * 3 + 1)
    assert all(not m.training for m in model.modules() if isinstance(m, _BatchNorm))
    after = model.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in before.items())
    # and without norm_eval the same forward does move them
    model = InceptionNeXt('atto').train()
    model(torch.randn(2, 3, 64, 64) * 3 + 1)
    assert not torch.equal(model.stem[1].running_mean, torch.zeros_like(model.stem[1].running_mean))


def test_with_cp_same_outputs_and_gradients():
    torch.manual_seed(0)
    plain = InceptionNeXt('atto', layer_scale_init_value=0.5)
    checkpointed = InceptionNeXt('atto', layer_scale_init_value=0.5, with_cp=True)
    checkpointed.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 64, 64)
    results = []
    for model in (plain, checkpointed):
        model.train()
        outs = model(x)
        sum((o * o).mean() for o in outs).backward()
        results.append((outs, {n: p.grad.clone() for n, p in model.named_parameters()}))
    (outs_a, grads_a), (outs_b, grads_b) = results
    for a, b in zip(outs_a, outs_b):
        torch.testing.assert_close(a, b)
    for name, grad in grads_a.items():
        torch.testing.assert_close(grad, grads_b[name], msg=name)


def test_channels_last_input():
    model = InceptionNeXt('atto', layer_scale_init_value=0.5).eval()
    x = torch.randn(2, 3, 97, 131)
    with torch.no_grad():
        plain = model(x)
        model_cl = model.to(memory_format=torch.channels_last)
        fast = model_cl(x.contiguous(memory_format=torch.channels_last))
    for a, b in zip(plain, fast):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_drop_path_rises_linearly():
    model = InceptionNeXt('tiny', drop_path_rate=0.2)
    rates = [b.drop_path.drop_prob for s in model.stages for b in s.blocks if hasattr(b.drop_path, 'drop_prob')]
    assert len(rates) == 3 + 3 + 9 + 3 - 1  # the first block's rate is 0: no DropPath at all
    assert rates[-1] == pytest.approx(0.2) and rates == sorted(rates)


@pytest.mark.parametrize('kwargs, message', [
    (dict(arch='huge'), "valid archs are ['atto', 'base', 'small', 'tiny']"),
    (dict(arch=dict(depths=(1, 1, 1))), "needs the keys ['dims']"),
    (dict(arch=dict(depths=(1, 1, 1), dims=(8, 16, 32))), "must have 4 entries"),
    (dict(out_indices=(0, 4)), 'out of range [4]'),
    (dict(frozen_stages=5), 'frozen_stages=5 is out of range'),
])
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError) as err:
        InceptionNeXt(**kwargs)
    assert message in str(err.value)
