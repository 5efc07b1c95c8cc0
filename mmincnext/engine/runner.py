"""The Runner every config uses (``runner_type`` in ``configs/_base_/reliable_runtime.py``): mmengine's Runner with
checkpoints that are never half-written and a ``compile=True`` that works, each in a mixin named for what it does."""
import os
import os.path as osp

import torch.nn as nn
from mmengine.dist import master_only
from mmengine.model import is_model_wrapper
from mmengine.registry import RUNNERS
from mmengine.runner import Runner


class AtomicCheckpointMixin:
    """Checkpoints written under a temporary name in the same folder and renamed over the final name only once
    complete (``os.replace`` is atomic on POSIX).

    mmengine writes a checkpoint in place, so a crash (or a full disk) while saving leaves a truncated file under the
    final name, possibly the one ``--resume auto`` picks.
    """

    @master_only  # as Runner.save_checkpoint: only rank 0 writes
    def save_checkpoint(self, out_dir, filename, *args, **kwargs):
        partial = f'.{filename}.partial'
        super().save_checkpoint(out_dir, partial, *args, **kwargs)
        os.replace(osp.join(out_dir, partial), osp.join(out_dir, filename))


class CompileNetworkMixin:
    """``compile=True`` (or a dict of ``torch.compile`` options) compiles the network, not the training step.

    mmengine 0.10.7 compiles ``model.train_step`` whole, data preprocessing, loss parsing and ``OptimWrapper.step``
    included, and dynamo fails inside the optimizer wrapper (torch 2.14: ``InternalTorchDynamoError:
    'UserDefinedDictVariable' object has no attribute 'items'``) in the first iteration. What compiling pays for is
    the tensor-to-tensor network: here the ``backbone`` and ``neck`` (any task's) are compiled in place
    (``nn.Module.compile``: the state_dict keys stay as they are, so checkpoints load either way); heads, whose losses
    walk Python data samples, and the optimizer step stay eager.
    """

    def _maybe_compile(self, target: str) -> None:
        compile_cfg = self.cfg.get('compile', None)
        if not compile_cfg:
            return
        compile_cfg = {} if compile_cfg is True else dict(compile_cfg)
        model = self.model.module if is_model_wrapper(self.model) else self.model
        compiled = [name for name in ('backbone', 'neck') if isinstance(getattr(model, name, None), nn.Module)]
        for name in compiled:
            getattr(model, name).compile(**compile_cfg)
        self.logger.info(f'compile: torch.compile({compile_cfg}) on the model\'s {" and ".join(compiled)} (the '
                         f'first iterations compile; {target} itself runs eagerly)')


# 'AtomicCheckpointRunner': the name configs written for earlier releases use.
@RUNNERS.register_module(name=['MMIncNeXtRunner', 'AtomicCheckpointRunner'])
class MMIncNeXtRunner(AtomicCheckpointMixin, CompileNetworkMixin, Runner):
    """mmengine's Runner with atomic checkpoints (:class:`AtomicCheckpointMixin`) and a network-only
    ``compile=True`` (:class:`CompileNetworkMixin`)."""
