"""Metrics on mmseg: need mmsegmentation, so configs import this package through ``custom_imports`` and
``import mmincnext`` does not depend on it."""
from .metrics import SingleScaleIoUMetric

__all__ = ['SingleScaleIoUMetric']
