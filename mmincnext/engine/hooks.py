"""Training hooks for nothing-lost, nothing-silent training."""
import math

import torch
from mmengine.dist import all_reduce_params, is_distributed
from mmengine.hooks import EMAHook, Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class NonFiniteLossHook(Hook):
    """Stop training at the first NaN or infinite loss, naming the iteration and the loss terms.

    mmdet's ``CheckInvalidLossHook`` only asserts every 50 iterations with a generic message; this one checks every
    iteration (the values are already computed) so that a run never spends hours on NaN.
    """

    priority = 'VERY_HIGH'  # before the logger and checkpoint hooks see the iteration

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if not outputs or 'loss' not in outputs:
            return
        loss = float(torch.as_tensor(outputs['loss']).detach())
        if math.isfinite(loss):
            return
        terms = ', '.join(f'{k}={float(torch.as_tensor(v).detach()):.4g}' for k, v in outputs.items() if 'loss' in k)
        raise FloatingPointError(f'Non-finite loss at iteration {runner.iter + 1} (epoch {runner.epoch}): '
                                 f'loss={loss}; terms: {terms}. Stopping instead of training on NaN; lower the '
                                 'learning rate or check the data of this iteration.')


@HOOKS.register_module()
class RandomStateHook(Hook):
    """Save the model-side random state in checkpoints and restore it on ``--resume``, so a resumed run equals an
    uninterrupted one.

    Only torch's generators are kept: the data pipeline's numpy/python randomness is reproduced by mmengine itself,
    which re-seeds and replays the dataloader up to the resumed iteration, and restoring it as well would advance it
    twice. The state is restored in ``before_train`` (after the resume, before the replay), and only when resuming
    (``runner.iter > 0``), not for ``load_from`` fine-tuning.

    onedl-mmengine >= 0.10.11 resumes an iteration-based loop by fast-forwarding the sampler without loading the
    skipped batches (``skip_iter``), so their augmentation randomness (in the main process and in every worker) is
    never drawn, and the loop creates the dataloader iterator, which draws its base seed from torch, only after this
    hook's ``before_train``. Measured: 259 of 259 tensors differed from the uninterrupted run. There this hook
    replays the skipped batches as upstream mmengine does (loading them: exact, at upstream's cost) and restores
    torch's state after the replay. ``replay_skipped_batches=False`` keeps OneDL's fast resume (not exact).
    """

    priority = 'VERY_LOW'

    def __init__(self, replay_skipped_batches=True):
        self.replay_skipped_batches = replay_skipped_batches
        self._loaded_state = None

    def before_save_checkpoint(self, runner, checkpoint):
        state = dict(torch=torch.get_rng_state())
        if torch.cuda.is_available():
            state['cuda'] = torch.cuda.get_rng_state_all()
        checkpoint['random_state'] = state

    def after_load_checkpoint(self, runner, checkpoint):
        self._loaded_state = checkpoint.get('random_state')

    def before_train(self, runner):
        state, self._loaded_state = self._loaded_state, None
        if state is None or runner.iter == 0:
            return
        iterator = getattr(runner.train_loop, 'dataloader_iterator', None)
        fast_forwards = hasattr(iterator, 'skip_iter') and not getattr(runner.train_loop, 'fast_forward_on_resume',
                                                                       False)
        if fast_forwards and self.replay_skipped_batches:
            def replay(num_iters):
                for _ in range(num_iters):
                    next(iterator)  # loads the batch: its pipeline draws what the uninterrupted run drew
                self._restore(runner, state)

            iterator.skip_iter = replay  # this instance only; the loop calls it right after before_train
            runner.logger.info(f'Replaying the {runner.iter} skipped iterations\' batches for an exact resume')
            return
        self._restore(runner, state)

    @staticmethod
    def _restore(runner, state):
        torch.set_rng_state(state['torch'])
        if 'cuda' in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state['cuda'])
        runner.logger.info(f'Restored the random state saved at iteration {runner.iter}')


@HOOKS.register_module()
class TimmEMAHook(EMAHook):
    """mmengine's ``EMAHook``, kept as timm's ``ModelEmaV2`` is in timm's train.py (``--model-ema``):

    - the average starts from the weights training starts from (e.g. the loaded checkpoint), and the first update
      averages the first optimizer step's weights into it; mmengine's starts as a copy of the weights after the
      first iteration;
    - it is updated once per optimizer step, so gradient accumulation (``optim_wrapper.accumulative_counts``) does
      not change its decay; mmengine's is updated every iteration;
    - in a distributed run its buffers (the BN statistics) are averaged over the processes after every epoch, before
      it is evaluated: train.py's ``--dist-bn reduce`` does this to the EMA as to the model (whose buffers
      ``SyncBuffersHook`` averages).

    The arguments are ``EMAHook``'s: ``momentum`` is 1 - timm's decay, and ``update_buffers=True`` averages the BN
    statistics too, as ``ModelEmaV2`` (the whole state_dict) does. As ``EMAHook``, validation and testing run the
    average, and a checkpoint's ``state_dict`` holds the average (``ema_state_dict``: the trained weights, for
    ``--resume``).
    """

    def before_train(self, runner) -> None:
        super().before_train(runner)
        if runner.iter == 0:  # a fresh start, not a resume (which restores the average and its step count)
            self.ema_model.module.load_state_dict(self.src_model.state_dict())
            self.ema_model.steps.fill_(1)  # the next update averages (step 0 of mmengine's average copies)

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        # After the iteration, should_update() tells whether this iteration's update_params() stepped.
        if runner.optim_wrapper.should_update():
            super().after_train_iter(runner, batch_idx, data_batch, outputs)

    def after_train_epoch(self, runner) -> None:
        if is_distributed():
            all_reduce_params(self.ema_model.module.buffers(), op='mean')
