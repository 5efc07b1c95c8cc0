"""The ImageNet-1K configs' schedule equals timm's own, as the official train.py creates it (create_scheduler with
--sched cosine, --cooldown-epochs 10, stepped once per epoch), epoch by epoch."""
import pytest
import torch
from mmengine.registry import PARAM_SCHEDULERS
from timm.scheduler import create_scheduler_v2
from helpers import load_config

import mmincnext  # noqa: F401  (registers TimmCosineLR)

# config, timm's --epochs, --warmup-epochs, --warmup-lr, --min-lr (official scripts; atto: the paper's 450 epochs)
RECIPES = [('incnext_t_in1k.py', 300, 20, 1e-6, 1e-5), ('incnext_atto_in1k.py', 450, 5, 5e-7, 5e-7)]


def sgd(lr: float) -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)


@pytest.mark.parametrize('config,epochs,warmup_epochs,warmup_lr,min_lr', RECIPES)
def test_lr_per_epoch_is_timms(config, epochs, warmup_epochs, warmup_lr, min_lr):
    cfg = load_config(config)
    lr = cfg.optim_wrapper.optimizer.lr
    timm_optimizer = sgd(lr)
    timm_scheduler, num_epochs = create_scheduler_v2(
        timm_optimizer, sched='cosine', num_epochs=epochs, warmup_epochs=warmup_epochs, warmup_lr=warmup_lr,
        min_lr=min_lr, cooldown_epochs=10)
    assert cfg.train_cfg.max_epochs == num_epochs == epochs + 10

    optimizer = sgd(lr)
    schedulers = [PARAM_SCHEDULERS.build(dict(scheduler, optimizer=optimizer)) for scheduler in cfg.param_scheduler]
    assert all(scheduler.by_epoch for scheduler in schedulers)
    ours, timms = [], []
    for epoch in range(num_epochs):  # train.py: epoch e runs at the lr of step(e); mmengine steps after each epoch
        timm_scheduler.step(epoch)
        timms.append(timm_optimizer.param_groups[0]['lr'])
        ours.append(optimizer.param_groups[0]['lr'])
        for scheduler in schedulers:
            scheduler.step()
    assert ours == pytest.approx(timms, rel=1e-12, abs=0)
    if config == 'incnext_t_in1k.py':  # the checkpoints the report names, and what they are
        at = dict(zip(range(num_epochs), ours))
        assert at[0] == warmup_lr and at[10] == pytest.approx((warmup_lr + lr) / 2)
        assert at[299] > min_lr and at[300] == at[305] == at[309] == min_lr


def test_recipe_settings_of_train_py():
    cfg = load_config('incnext_t_in1k.py')
    assert cfg.randomness.seed == 42 and cfg.randomness.diff_rank_seed
    assert 'SyncBuffersHook' in [hook['type'] for hook in cfg.custom_hooks]
    assert cfg.train_dataloader.drop_last
    crop = cfg.train_dataloader.dataset.pipeline[1]  # timm's --train-interpolation 'random'
    assert crop.type == 'RandomChoice'
    assert sorted(t[0]['interpolation'] for t in crop.transforms) == ['bicubic', 'bilinear']
    drop_paths = {arch: load_config(f'incnext_{arch}_in1k.py').model.backbone.drop_path_rate
                  for arch in ('atto', 't', 's', 'b')}
    assert drop_paths == dict(atto=0.1, t=0.1, s=0.3, b=0.4)
