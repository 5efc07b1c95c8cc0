from .hooks import NonFiniteLossHook, RandomStateHook
from .runner import AtomicCheckpointRunner

__all__ = ['AtomicCheckpointRunner', 'NonFiniteLossHook', 'RandomStateHook']
