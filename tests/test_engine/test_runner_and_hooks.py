"""Nothing lost, nothing silent: resume equals an uninterrupted run, checkpoints are atomic, NaN stops training."""
import copy

import numpy as np
import pytest
import torch
from mmengine.model import BaseModel
from mmengine.registry import DATASETS, MODELS
from torch.utils.data import Dataset

from mmincnext.checkpoint import read_checkpoint
from mmincnext.engine import MMIncNeXtRunner


@DATASETS.register_module(force=True)
class _NoisyPoints(Dataset):
    """Samples drawn with numpy's global RNG at load time, like an augmentation pipeline."""

    def __len__(self):
        return 64

    def __getitem__(self, idx):
        x = torch.full((4, ), idx / len(self)) + torch.from_numpy(np.random.randn(4).astype('float32'))
        return dict(inputs=x, target=x.sum(0, keepdim=True))


@MODELS.register_module(force=True)
class _DropoutRegressor(BaseModel):
    """Uses torch's RNG in the forward pass, as drop path does."""

    def __init__(self, bad_loss_at_iter=None, bad_loss=float('nan')):
        super().__init__()
        self.fc = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Dropout(0.5), torch.nn.Linear(16, 1))
        self.bad_loss_at_iter, self.bad_loss = bad_loss_at_iter, bad_loss
        self.calls = 0

    def forward(self, inputs, target, mode='loss'):
        self.calls += 1
        loss = ((self.fc(inputs) - target)**2).mean()
        if self.bad_loss_at_iter == self.calls:
            loss = loss + self.bad_loss
        return dict(loss=loss)


def runner_cfg(work_dir, max_iters, resume=False, hooks=True, bad_loss_at_iter=None, bad_loss=float('nan')):
    return dict(
        model=dict(type='_DropoutRegressor', bad_loss_at_iter=bad_loss_at_iter, bad_loss=bad_loss),
        work_dir=str(work_dir),
        train_dataloader=dict(dataset=dict(type='_NoisyPoints'), sampler=dict(type='InfiniteSampler', shuffle=True),
                              batch_size=4, num_workers=0, collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01, momentum=0.9)),
        train_cfg=dict(type='IterBasedTrainLoop', max_iters=max_iters),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=3, by_epoch=False),
                           logger=dict(type='LoggerHook', interval=1)),
        custom_hooks=[dict(type='NonFiniteLossHook'), dict(type='RandomStateHook')] if hooks else [],
        randomness=dict(seed=7, deterministic=True),
        resume=resume,
        default_scope='mmengine',
        experiment_name=f'{work_dir.name}-{max_iters}-{resume}',
    )


def train(cfg):
    runner = MMIncNeXtRunner.from_cfg(copy.deepcopy(cfg))
    runner.train()
    return {k: v.clone() for k, v in runner.model.state_dict().items()}


@pytest.mark.parametrize('hooks', [True, False])
def test_resume_equals_uninterrupted_run(tmp_path, hooks):
    straight = train(runner_cfg(tmp_path / 'straight', 6, hooks=hooks))
    train(runner_cfg(tmp_path / 'resumed', 3, hooks=hooks))  # "interrupted" after iteration 3
    resumed = train(runner_cfg(tmp_path / 'resumed', 6, resume=True, hooks=hooks))
    same = all(torch.equal(straight[k], resumed[k]) for k in straight)
    # Without the saved random state dropout draws other masks after the resume: the hook is what makes it exact.
    assert same == hooks


def test_checkpoint_is_written_atomically(tmp_path, monkeypatch):
    train(runner_cfg(tmp_path, 3))
    good = read_checkpoint(tmp_path / 'iter_3.pth')  # an mmengine checkpoint passes the weights-only reader
    assert 'random_state' in good and good['meta']['iter'] == 3

    def crash(*args, **kwargs):
        raise KeyboardInterrupt('killed while saving')

    import mmengine.runner.runner as runner_module
    monkeypatch.setattr(runner_module, 'save_checkpoint', lambda checkpoint, path, **kw: (
        open(path, 'wb').write(b'half a checkpoint'), crash()))
    runner = MMIncNeXtRunner.from_cfg(runner_cfg(tmp_path, 3))
    runner.train_loop  # build the loop so that save_checkpoint has what it needs
    with pytest.raises(KeyboardInterrupt):
        runner.save_checkpoint(str(tmp_path), 'iter_3.pth', by_epoch=False, save_optimizer=False)
    assert torch.equal(read_checkpoint(tmp_path / 'iter_3.pth')['state_dict']['fc.0.weight'],
                       good['state_dict']['fc.0.weight'])


@pytest.mark.parametrize('bad_loss', ['nan', 'inf', '-inf'])
def test_non_finite_loss_stops_with_iteration_named(tmp_path, bad_loss):
    with pytest.raises(FloatingPointError, match=rf'Non-finite loss at iteration 4 \(epoch 0\): loss={bad_loss};'):
        train(runner_cfg(tmp_path, 6, bad_loss_at_iter=4, bad_loss=float(bad_loss)))
    assert not (tmp_path / 'iter_6.pth').exists()  # it stopped there
