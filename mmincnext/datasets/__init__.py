"""Datasets: layout-checked ADE20K and COCO, and the synthetic sets the demos generate on first use.

Each task's datasets need that task's library, so they register per task, when a config imports them through
``custom_imports``: ``mmincnext.datasets.seg`` (mmsegmentation), ``mmincnext.datasets.det`` (mmdet) or
``mmincnext.datasets.cls`` (mmpretrain). Importing this package alone needs none of them.
"""


class DatasetLayoutError(FileNotFoundError):
    """The dataset is not where the config says, or not in the expected layout."""


__all__ = ['DatasetLayoutError']
