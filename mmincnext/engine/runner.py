import os
import os.path as osp

from mmengine.dist import master_only
from mmengine.registry import RUNNERS
from mmengine.runner import Runner


@RUNNERS.register_module()
class AtomicCheckpointRunner(Runner):
    """A Runner whose checkpoints are never half-written.

    mmengine writes a checkpoint in place, so a crash (or a full disk) while saving leaves a truncated file under the
    final name, possibly the one ``--resume auto`` picks. Here the checkpoint is written under a temporary name in the
    same folder and renamed over the final name only once complete (``os.replace`` is atomic on POSIX).
    """

    @master_only  # as Runner.save_checkpoint: only rank 0 writes
    def save_checkpoint(self, out_dir, filename, *args, **kwargs):
        partial = f'.{filename}.partial'
        super().save_checkpoint(out_dir, partial, *args, **kwargs)
        os.replace(osp.join(out_dir, partial), osp.join(out_dir, filename))
