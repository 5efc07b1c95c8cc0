"""Datasets (need mmsegmentation; configs import this package through ``custom_imports``)."""
from .ade20k import CheckedADE20KDataset, DatasetLayoutError

__all__ = ['CheckedADE20KDataset', 'DatasetLayoutError']
