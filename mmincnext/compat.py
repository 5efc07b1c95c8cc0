"""What differs between the environments mmincnext supports, in one place: the OpenMMLab family (upstream or OneDL)
and the PyTorch and numpy versions (torch 2.1 to the newest, numpy 1.x and 2.x; docs/compatibility.md).

Upstream OpenMMLab and the OneDL forks: one import name, two distributions.

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
import functools
import importlib.metadata
import importlib.util
import re
from typing import Tuple

import numpy as np
import torch

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


# ---------------------------------------------------------------------------------------------------------------------
# PyTorch versions. Each feature that needs a newer torch than the oldest supported one (MIN_TORCH) is named here once,
# with the version that brought it; callers test the flag (or call the wrapper) instead of probing torch themselves.
# ---------------------------------------------------------------------------------------------------------------------
MIN_TORCH = (2, 1)


def _version_tuple(version: str) -> Tuple[int, int]:
    """``'2.4.1+cu121'`` -> ``(2, 4)``."""
    match = re.match(r'(\d+)\.(\d+)', version)
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)


TORCH_VERSION = _version_tuple(torch.__version__)


def torch_at_least(major: int, minor: int) -> bool:
    return TORCH_VERSION >= (major, minor)


# torch.autocast('cpu', dtype=torch.float16): CPU float16 autocast (2.1 takes bfloat16 only).
CPU_FP16_AUTOCAST = torch_at_least(2, 2)
# torch.serialization.safe_globals with (object, 'module.name') entries: the weights-only allow-list as a context.
SAFE_GLOBALS_CONTEXT = torch_at_least(2, 6)
# torch.library.triton_op / wrap_triton: a Triton kernel as a torch op (autograd, autocast, torch.compile).
TRITON_OP_TORCH = (2, 6)
TRITON_OP = torch_at_least(*TRITON_OP_TORCH)
# wrap_triton accepts kernels built by Triton's CPU interpreter (TRITON_INTERPRET=1); 2.11 and 2.12 reject them.
WRAP_TRITON_RUNS_INTERPRETED = torch_at_least(2, 13)


# torch.ops.mkldnn._linear_pointwise: a linear layer with its bias and a pointwise op (GELU; or adding a tensor, in the
# ``.binary`` overload) fused into oneDNN's GEMM, the op inductor's CPU fusions use. In builds with oneDNN (the x86
# wheels; not every other platform's).
def _has_onednn_linear_pointwise() -> bool:
    try:
        return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, '_linear_pointwise')
    except (AttributeError, RuntimeError):
        return False


ONEDNN_LINEAR_POINTWISE = _has_onednn_linear_pointwise()


@functools.lru_cache(maxsize=None)
def onednn_linear_dtypes() -> frozenset:
    """The dtypes oneDNN's fused linear runs natively on this CPU: float32, and bfloat16 / float16 where oneDNN says
    the CPU has them (e.g. AVX512-BF16 or AMX for bfloat16, AVX512-FP16 or AMX-FP16 for float16); empty without
    :data:`ONEDNN_LINEAR_POINTWISE`."""
    if not ONEDNN_LINEAR_POINTWISE:
        return frozenset()
    dtypes = {torch.float32}
    for dtype, probe in ((torch.bfloat16, '_is_mkldnn_bf16_supported'), (torch.float16, '_is_mkldnn_fp16_supported')):
        try:
            if getattr(torch.ops.mkldnn, probe)():
                dtypes.add(dtype)
        except (AttributeError, RuntimeError):
            pass
    return frozenset(dtypes)


def torch_requirement(major: int, minor: int, feature: str) -> str:
    """The message that ``feature`` needs torch >= major.minor, naming this environment's torch."""
    return f'{feature} needs torch >= {major}.{minor}; this environment has torch {torch.__version__}'


def require_torch(major: int, minor: int, feature: str) -> None:
    """Raise a RuntimeError naming ``feature`` and the torch it needs, where this torch is older."""
    if not torch_at_least(major, minor):
        raise RuntimeError(torch_requirement(major, minor, feature))


def is_compiling() -> bool:
    """Whether torch.compile (dynamo) is tracing the caller: ``torch.compiler.is_compiling()`` (torch >= 2.3), before
    that ``torch._dynamo.is_compiling()``."""
    if torch_at_least(2, 3):
        return torch.compiler.is_compiling()
    from torch import _dynamo
    return _dynamo.is_compiling()


def is_autocast_enabled(device_type: str) -> bool:
    """``torch.is_autocast_enabled(device_type)`` (torch >= 2.4; before: no argument meant CUDA)."""
    if torch_at_least(2, 4):
        return torch.is_autocast_enabled(device_type)
    if device_type == 'cpu':
        return torch.is_autocast_cpu_enabled()
    return device_type == 'cuda' and torch.is_autocast_enabled()


def get_autocast_dtype(device_type: str) -> torch.dtype:
    """``torch.get_autocast_dtype(device_type)`` (torch >= 2.4)."""
    if torch_at_least(2, 4):
        return torch.get_autocast_dtype(device_type)
    return torch.get_autocast_cpu_dtype() if device_type == 'cpu' else torch.get_autocast_gpu_dtype()


def grad_scaler(device_type: str):
    """A float16 loss scaler for ``device_type``: ``torch.amp.GradScaler(device)`` (torch >= 2.3), else CUDA's."""
    if torch_at_least(2, 3):
        return torch.amp.GradScaler(device_type)
    if device_type != 'cuda':
        require_torch(2, 3, f'A GradScaler on {device_type!r}')
    return torch.cuda.amp.GradScaler()


# dynamo traces torch.promote_types, which the backbone's no-grad GEMM path calls: before, torch.compile breaks the
# inference graph there (fullgraph=True fails; measured on 2.1, traced on 2.4; 2.2 and 2.3 not measured).
DYNAMO_TRACES_PROMOTE_TYPES = torch_at_least(2, 4)


def onnx_export_torchscript(model, args, path, **kwargs) -> None:
    """``torch.onnx.export`` with its TorchScript-based exporter: torch 2.9 made the dynamo exporter (which needs
    onnxscript) the default, through a ``dynamo`` argument that older torch (2.1) does not take."""
    import inspect
    if 'dynamo' in inspect.signature(torch.onnx.export).parameters:
        kwargs['dynamo'] = False
    torch.onnx.export(model, args, path, **kwargs)


# ---------------------------------------------------------------------------------------------------------------------
# numpy versions (1.x and 2.x).
# ---------------------------------------------------------------------------------------------------------------------
NUMPY_VERSION = _version_tuple(np.__version__)

# numpy 2 moved its C core from numpy.core to numpy._core, and pickles name the module of the numpy that wrote them.
# numpy 1.26 ships numpy._core as a stub whose multiarray re-exports numpy.core's, but ``np._core.multiarray``
# exists there only once something imported it: probing attributes is not enough, the import decides. Older numpy
# has no numpy._core.
try:
    from numpy._core import multiarray as numpy_multiarray
except ImportError:  # numpy < 1.26
    from numpy.core import multiarray as numpy_multiarray
