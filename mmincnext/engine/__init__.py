"""Engine pieces every config's runtime uses, registered on ``import mmincnext`` (mmengine's root registries)."""
from .hooks import NonFiniteLossHook, RandomStateHook, TimmEMAHook
from .optim_wrapper import CPUBF16OptimWrapper, mmcv_cpu_ops_in_float32
from .optimizers import InceptionNeXtLearningRateDecayOptimizerConstructor
from .runner import AtomicCheckpointMixin, CompileNetworkMixin, MMIncNeXtRunner
from .schedulers import TimmCosineLR

__all__ = [
    'AtomicCheckpointMixin', 'CPUBF16OptimWrapper', 'CompileNetworkMixin',
    'InceptionNeXtLearningRateDecayOptimizerConstructor', 'MMIncNeXtRunner', 'NonFiniteLossHook', 'RandomStateHook',
    'TimmCosineLR', 'TimmEMAHook', 'mmcv_cpu_ops_in_float32'
]
