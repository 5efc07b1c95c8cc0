"""timm's cosine learning-rate schedule as an mmengine parameter scheduler, for the official ImageNet recipe."""
import math

from mmengine.optim.scheduler.param_scheduler import INF, _ParamScheduler
from mmengine.registry import PARAM_SCHEDULERS


@PARAM_SCHEDULERS.register_module()
class TimmCosineLR(_ParamScheduler):
    """The schedule of timm's ``CosineLRScheduler`` as its train.py builds it (``--sched cosine``, one cycle, no
    warm-up prefix), which mmengine's LinearLR + CosineAnnealingLR cannot express:

    - steps ``t < warmup_t``: linear from ``warmup_lr_init`` towards the base lr; the warm-up *overrides* the
      cosine, which is evaluated at ``t`` itself (not ``t - warmup_t``), so it still reaches ``lr_min`` at
      ``t_initial``;
    - ``warmup_t <= t < t_initial``: ``lr_min + (base - lr_min) * (1 + cos(pi * t / t_initial)) / 2``;
    - ``t >= t_initial``: ``lr_min`` (timm's cool-down epochs, until ``end``).

    ``lr_min`` and ``warmup_lr_init`` are absolute, the base lr is each group's initial lr (after auto_scale_lr).

    Args:
        optimizer (Optimizer | OptimWrapper): the optimizer.
        t_initial (int): length of the cosine in steps (timm's ``--epochs``).
        lr_min (float): lr at and after ``t_initial`` (timm's ``--min-lr``). Defaults to 0.
        warmup_t (int): warm-up steps (timm's ``--warmup-epochs``). Defaults to 0.
        warmup_lr_init (float): lr at step 0 of the warm-up (timm's ``--warmup-lr``). Defaults to 0.
        begin, end, last_step, by_epoch, verbose: as for every mmengine parameter scheduler. A step is an epoch
            when ``by_epoch`` (timm's ``t_in_epochs``, what its train.py does for cosine).
    """

    def __init__(self, optimizer, t_initial: int, lr_min: float = 0., warmup_t: int = 0, warmup_lr_init: float = 0.,
                 begin: int = 0, end: int = INF, last_step: int = -1, by_epoch: bool = True, verbose: bool = False):
        if t_initial <= 0 or not 0 <= warmup_t <= t_initial:
            raise ValueError(f'need t_initial > 0 and 0 <= warmup_t <= t_initial, got t_initial={t_initial}, '
                             f'warmup_t={warmup_t}')
        self.t_initial, self.lr_min = t_initial, lr_min
        self.warmup_t, self.warmup_lr_init = warmup_t, warmup_lr_init
        super().__init__(optimizer, 'lr', begin=begin, end=end, last_step=last_step, by_epoch=by_epoch,
                         verbose=verbose)

    def _lr_at(self, base: float, t: int) -> float:
        if t < self.warmup_t:
            return self.warmup_lr_init + t * (base - self.warmup_lr_init) / self.warmup_t
        if t >= self.t_initial:
            return self.lr_min
        return self.lr_min + 0.5 * (base - self.lr_min) * (1 + math.cos(math.pi * t / self.t_initial))

    def _get_value(self):
        return [self._lr_at(base, self.last_step) for base in self.base_values]
