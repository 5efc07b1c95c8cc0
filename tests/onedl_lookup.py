"""mmengine's view of a OneDL environment, simulated in an upstream one (a helper, not a test module).

Where only the OneDL distributions are installed (onedl-mmsegmentation, onedl-mmdetection, onedl-mmpretrain: the
same modules mmseg, mmdet, mmpretrain), no distribution answers to the upstream names 'mmsegmentation', 'mmdet',
'mmpretrain', so mmengine's ``is_installed``/``get_installed_path`` find a package only through
``importlib.util.find_spec`` of the name they are given. :func:`simulate` makes the upstream venv look like that:

* ``importlib.metadata.distribution`` does not know the upstream task distributions (what mmincnext.compat asks);
* ``mmengine.config.config.is_installed``/``get_installed_path`` answer from ``find_spec`` alone;
* ``mmengine.config.utils.MODULE2PACKAGE`` maps 'mmseg' to 'mmsegmentation' again, as both families ship it.

In-process, pass pytest's ``monkeypatch.setattr``/``setitem`` so that everything is undone after the test; in a
subprocess call it before ``import mmincnext``, which then has to do the rest itself.
"""
import importlib.metadata
import importlib.util
import operator
import os.path as osp

UPSTREAM_TASK_DISTRIBUTIONS = ('mmsegmentation', 'mmdet', 'mmpretrain')
LOOKUPS = []  # (package, path) of every get_installed_path answer while simulated


def _spec(package):
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    return spec if spec is not None and spec.origin is not None else None


def is_installed(package):
    return _spec(package) is not None


def get_installed_path(package):
    spec = _spec(package)
    if spec is None:
        raise ModuleNotFoundError(f'{package} is not installed (simulated OneDL environment)')
    LOOKUPS.append((package, osp.dirname(spec.origin)))
    return osp.dirname(spec.origin)


def simulate(setattr=setattr, setitem=operator.setitem):
    from mmengine.config import config as config_module
    from mmengine.config import utils as config_utils

    real_distribution = importlib.metadata.distribution

    def distribution(name):
        if name in UPSTREAM_TASK_DISTRIBUTIONS:
            raise importlib.metadata.PackageNotFoundError(name)
        return real_distribution(name)

    setattr(importlib.metadata, 'distribution', distribution)
    setattr(config_module, 'is_installed', is_installed)
    setattr(config_module, 'get_installed_path', get_installed_path)
    setitem(config_utils.MODULE2PACKAGE, 'mmseg', 'mmsegmentation')
