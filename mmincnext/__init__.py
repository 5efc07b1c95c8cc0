"""mmincnext: InceptionNeXt for the OpenMMLab ecosystem.

Importing the package (``custom_imports=dict(imports=['mmincnext'])`` in a config) registers the backbone in
mmengine's root registry and routes mmengine's local checkpoint loading through the safe reader. It imports no task
library (mmseg, mmdet, mmpretrain): the parts that need one register when a config imports them
(e.g. ``mmincnext.datasets.seg``/``det``/``cls``, ``mmincnext.models.classifiers``).
"""
# mmengine and mmcv come from either OpenMMLab family (mmengine/mmcv or onedl-mmengine/onedl-mmcv), so they are not
# install requirements: say which to install before the first import fails (mmincnext/compat.py).
from .compat import find_config_bases_by_module, require

require('mmengine', 'mmcv')
find_config_bases_by_module()  # `mmseg::` config bases under OneDL (onedl-mmsegmentation)

from . import checkpoint  # noqa: F401  (registers the safe local checkpoint loader)
from .engine import *  # noqa: F401,F403
from .models import *  # noqa: F401,F403
from .version import __version__

__all__ = ['__version__']
