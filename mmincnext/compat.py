"""Upstream OpenMMLab and the OneDL forks: one import name, two distributions.

OpenMMLab's libraries come from two families that install the same modules under different distribution names:

=============  ==================  =========================
import name    upstream            OneDL
=============  ==================  =========================
mmengine       mmengine            onedl-mmengine
mmcv           mmcv                onedl-mmcv
mmseg          mmsegmentation      onedl-mmsegmentation
mmdet          mmdet               onedl-mmdetection
mmpretrain     mmpretrain          onedl-mmpretrain
=============  ==================  =========================

So mmincnext's ``install_requires`` names neither (pip would install one family's files over the other's); the
extras pick a family, and this module checks the import names and bridges what mmengine looks up by distribution.
"""
import importlib.metadata
import importlib.util

# import name -> (upstream distribution, OneDL distribution, the extras that bring it: upstream, OneDL)
DISTRIBUTIONS = {
    'mmengine': ('mmengine', 'onedl-mmengine', 'mminstall', 'onedl'),
    'mmcv': ('mmcv', 'onedl-mmcv', 'mminstall', 'onedl'),
    'mmseg': ('mmsegmentation', 'onedl-mmsegmentation', 'seg', 'onedl-seg'),
    'mmdet': ('mmdet', 'onedl-mmdetection', 'det', 'onedl-det'),
    'mmpretrain': ('mmpretrain', 'onedl-mmpretrain', 'cls', 'onedl-cls'),
}


def require(*modules: str) -> None:
    """Raise ModuleNotFoundError naming both families' distributions for the first of ``modules`` that is not
    importable (``find_spec`` only: nothing is imported)."""
    for module in modules:
        if not _importable(module):
            upstream, onedl, extra, onedl_extra = DISTRIBUTIONS[module]
            raise ModuleNotFoundError(
                f'mmincnext needs {module}: pip install {upstream} (upstream OpenMMLab) or {onedl} (OneDL), '
                f'whichever family the environment has; or install mmincnext with the extra '
                f'"mmincnext[{extra}]" (upstream) or "mmincnext[{onedl_extra}]" (OneDL)', name=module)


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ValueError:  # sys.modules[module] is None: importing it raises ImportError
        return False


def _distribution_installed(name: str) -> bool:
    try:
        importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def find_config_bases_by_module() -> list:
    """Let mmengine resolve ``mmseg::`` (etc.) config bases where only the OneDL distribution is installed.

    mmengine (upstream 0.10.7 and onedl-mmengine 0.10.12 alike) turns the scope of ``_base_ = 'mmseg::...'`` into a
    *distribution* name through ``mmengine.config.utils.MODULE2PACKAGE`` (``'mmseg' -> 'mmsegmentation'``) and then
    asks ``is_installed``/``get_installed_path`` for it. Only upstream installs a distribution of that name; OneDL's
    is ``onedl-mmsegmentation``, so every config inheriting an mmseg base fails there with "mmsegmentation is not
    installed". (``mmdet::`` and ``mmpretrain::`` work in both: there the distribution name equals the module name,
    which both functions also find through ``importlib.util.find_spec``.)

    The fix: for a task library whose module imports but whose upstream distribution is absent, map the scope to the
    module name itself, which both functions resolve through ``find_spec`` to the installed package directory (with
    its ``.mim/configs``). Upstream environments are left as they are. Called once by ``import mmincnext``; it
    returns the scopes it remapped.
    """
    from mmengine.config import utils as config_utils
    remapped = []
    for module, (upstream, *_) in DISTRIBUTIONS.items():
        if config_utils.MODULE2PACKAGE.get(module, module) == module:
            continue  # already looked up by its module name (mmdet, mmpretrain), or not a config scope
        if not _distribution_installed(upstream) and _importable(module):
            config_utils.MODULE2PACKAGE[module] = module  # the same dict as PKG2PROJECT and the registry's import
            remapped.append(module)
    return remapped
