from .hooks import NonFiniteLossHook, RandomStateHook, TimmEMAHook
from .optimizers import InceptionNeXtLearningRateDecayOptimizerConstructor
from .runner import AtomicCheckpointRunner
from .schedulers import TimmCosineLR

__all__ = [
    'AtomicCheckpointRunner', 'InceptionNeXtLearningRateDecayOptimizerConstructor', 'NonFiniteLossHook',
    'RandomStateHook', 'TimmCosineLR', 'TimmEMAHook'
]
