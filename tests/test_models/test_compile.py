"""torch.compile: the backbone compiles as one graph (fullgraph=True) for training and inference with eager's outputs
and gradients, and a config's ``compile=True`` trains through tools/train.py (mmengine 0.10.7's own compile of
the whole train_step fails in the optimizer step; our Runner compiles the network instead)."""
import copy

import pytest
import torch
from helpers import TINY, demo_child_config, relative_error

from mmincnext.compat import DYNAMO_TRACES_PROMOTE_TYPES
from mmincnext.models import InceptionNeXt


def test_backbone_compiles_fullgraph_and_equals_eager():
    """Inductor on the CPU's path (the reference path's single graph is checked without code generation in
    tests/test_models/test_speed.py)."""
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = InceptionNeXt(TINY, layer_scale_init_value=0.5)
    twin = copy.deepcopy(model)  # its own BN statistics, updated by the compiled passes only
    compiled = torch.compile(twin, fullgraph=True)
    x = torch.randn(2, 3, 64, 96, generator=torch.Generator().manual_seed(1))
    # Training: outputs, every gradient and the updated BN statistics.
    model.train(), twin.train()
    eager_outs, compiled_outs = model(x), compiled(x)
    for a, b in zip(compiled_outs, eager_outs):
        assert relative_error(a, b) < 1e-5
    sum(o.square().mean() for o in eager_outs).backward()
    sum(o.square().mean() for o in compiled_outs).backward()
    # Inductor's BN decomposition sums in another order; the stem conv's gradient, through a training-mode BN that
    # cancels most of it, is the most exposed (~4e-3 of its own small norm): errors are taken relative to at least
    # 1e-4 of the norm of all gradients.
    total = torch.cat([p.grad.flatten() for p in model.parameters()]).norm()
    for (name, a), b in zip(twin.named_parameters(), model.parameters()):
        assert (a.grad - b.grad).norm() <= 1e-4 * max(b.grad.norm(), total), name
    for (name, a), b in zip(twin.named_buffers(), model.buffers()):
        torch.testing.assert_close(a, b, msg=name)
    # Inference (no autograd: the GEMM path's in-place GELU and residual add are traced too; older dynamo breaks
    # the graph at the add's dtype check).
    model.eval(), twin.eval()
    if not DYNAMO_TRACES_PROMOTE_TYPES:
        compiled = torch.compile(twin)
    with torch.no_grad():
        for a, b in zip(compiled(x), model(x)):
            assert relative_error(a, b) < 1e-5


def test_config_compile_true_trains_the_demo(tmp_path):
    """`--cfg-options compile=True` as a user would write it: the demo trains and its losses follow the eager run's
    (compiled kernels round differently, so not bit for bit); checkpoints keep the plain module names."""
    from helpers import load_tool
    from mmincnext.checkpoint import read_checkpoint
    train = load_tool('train')
    torch._dynamo.reset()
    losses = {}
    for mode in ('eager', 'compiled'):
        cfg = demo_child_config(tmp_path, mode)
        options = ['--cfg-options', 'train_cfg.max_iters=2', 'model.backbone.drop_path_rate=0.']
        if mode == 'compiled':
            options.append('compile=True')
        runner = train.main([cfg, '--work-dir', str(tmp_path / mode)] + options)
        losses[mode] = runner.message_hub.get_scalar('train/loss').data[0]
        if mode == 'compiled':
            assert runner.model.backbone._compiled_call_impl is not None
        state = read_checkpoint(str(tmp_path / mode / 'iter_2.pth'))['state_dict']
        assert 'backbone.stem.0.weight' in state and not any('_orig_mod' in k for k in state)
    assert losses['compiled'] == pytest.approx(losses['eager'], rel=1e-3)
