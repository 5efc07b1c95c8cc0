from .hooks import NonFiniteLossHook, RandomStateHook
from .optimizers import InceptionNeXtLearningRateDecayOptimizerConstructor
from .runner import AtomicCheckpointRunner

__all__ = [
    'AtomicCheckpointRunner', 'InceptionNeXtLearningRateDecayOptimizerConstructor', 'NonFiniteLossHook',
    'RandomStateHook'
]
