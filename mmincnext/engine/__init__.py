from .hooks import NonFiniteLossHook, RandomStateHook
from .optimizers import InceptionNeXtLearningRateDecayOptimizerConstructor
from .runner import AtomicCheckpointRunner
from .schedulers import TimmCosineLR

__all__ = [
    'AtomicCheckpointRunner', 'InceptionNeXtLearningRateDecayOptimizerConstructor', 'NonFiniteLossHook',
    'RandomStateHook', 'TimmCosineLR'
]
