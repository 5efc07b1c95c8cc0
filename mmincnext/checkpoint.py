"""Safe checkpoint reading and strict pretrained loading.

Importing ``mmincnext`` replaces mmengine's loaders for local files and http(s) URLs in ``CheckpointLoader``, so
``init_cfg=dict(type='Pretrained')``, ``load_from``, ``--resume`` and the tools all read through
:func:`read_checkpoint`: ``.safetensors`` through safetensors, everything else through PyTorch's weights-only
unpickler with an allow-list of exactly what mmengine's own checkpoints hold (numpy arrays and scalars, the
message hub's ``HistoryBuffer``). A pickle that asks for anything else is refused, never unpickled in full.

On torch < 2.6, whose weights-only unpickler cannot take that allow-list (no ``(object, 'name')`` entries, and
before 2.4 no user entries at all), :class:`WeightsOnlyUnpickler` applies the same rules to the same list.
"""
import codecs
import os
import pickle
import zipfile
from collections import Counter, OrderedDict
from typing import Callable, Iterable, Optional, Sequence
from urllib.parse import urlparse

import numpy as np
import torch
from mmengine.dist import get_dist_info
from mmengine.logging import HistoryBuffer, print_log
from mmengine.runner.checkpoint import CheckpointLoader

from .compat import SAFE_GLOBALS_CONTEXT, numpy_multiarray


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read, or whose weights do not fit the model."""


class _RefusedGlobal(pickle.UnpicklingError):
    """A pickle asked for a global, or for an operation on an object, that the allow-list does not allow."""


def _history_buffer_statistic(owner, name):
    """Stands in for ``getattr`` while unpickling: protocol-2 pickles (``torch.save``'s default) store the message
    hub's ``HistoryBuffer`` statistics as ``getattr(HistoryBuffer, 'mean')``. Exactly those resolve; a general
    ``getattr`` would hand a pickle any attribute of any allowed object."""
    if owner is HistoryBuffer and name in _HISTORY_BUFFER_STATISTICS:
        return getattr(HistoryBuffer, name)
    raise _RefusedGlobal(f'getattr({owner!r}, {name!r}) is not allowed in a checkpoint')


_HISTORY_BUFFER_STATISTICS = ('min', 'max', 'current', 'mean')
# The dtype classes (numpy.dtypes.Float32DType, ...) of the dtypes a checkpoint's arrays and scalars have: a pickled
# dtype is built as numpy.dtype(...) and then given its state, which the unpickler allows for allowed types only.
_NUMPY_DTYPE_CLASSES = [type(np.dtype(name)) for name in (
    'bool', 'int8', 'int16', 'int32', 'int64', 'uint8', 'uint16', 'uint32', 'uint64',
    'float16', 'float32', 'float64', 'complex64', 'complex128', 'str', 'object')]

# Everything beyond torch's own tensors and containers that a checkpoint may hold: the weights-only allow-list,
# in torch.serialization.safe_globals' form (an object, or an object and the name a pickle knows it by).
# numpy's reconstructors are listed under both numpy 1's and numpy 2's module names: a checkpoint keeps the names
# of the numpy that wrote it.
SAFE_GLOBALS = [
    # protocol 2 (torch.save's) pickles bytes, such as an array's data, as _codecs.encode(text, 'latin1'): newer
    # torch allows it by default, torch 2.1 to 2.4 do not
    (codecs.encode, '_codecs.encode'),
    np.ndarray,
    np.dtype,
    *_NUMPY_DTYPE_CLASSES,
    (numpy_multiarray._reconstruct, 'numpy.core.multiarray._reconstruct'),
    (numpy_multiarray.scalar, 'numpy.core.multiarray.scalar'),
    (numpy_multiarray._reconstruct, 'numpy._core.multiarray._reconstruct'),
    (numpy_multiarray.scalar, 'numpy._core.multiarray.scalar'),
    HistoryBuffer,
    (_history_buffer_statistic, 'builtins.getattr'),
]


class WeightsOnlyUnpickler(pickle._Unpickler):
    """torch's weights-only unpickling rules (torch >= 2.6) for torch < 2.6, with :data:`SAFE_GLOBALS` added to
    torch's own allow-list, on Python's pure-Python unpickler.

    A pickle reaches code only through the globals it names, the callables it calls (REDUCE), the classes it
    instantiates (NEWOBJ) and the objects whose state it sets (BUILD) or whose items it sets (SETITEM, APPEND); each
    is limited as torch's unpickler limits it. The opcodes that torch's does not read either (INST, OBJ, PERSID,
    EXT1/2/4) are refused, and so are persistent ids other than torch's storages.
    """

    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._allowed = _allowed_globals()
        self._allowed_objects = list(self._allowed.values())
        self._allowed_types = tuple({obj for obj in self._allowed_objects if isinstance(obj, type)}
                                    | {torch.Tensor, torch.nn.Parameter, OrderedDict})

    def _is_allowed(self, obj) -> bool:
        return any(obj is allowed for allowed in self._allowed_objects)

    def find_class(self, module, name):
        if self.proto < 3 and self.fix_imports:  # Python 2 names, as pickle.Unpickler maps them
            import _compat_pickle
            if (module, name) in _compat_pickle.NAME_MAPPING:
                module, name = _compat_pickle.NAME_MAPPING[(module, name)]
            elif module in _compat_pickle.IMPORT_MAPPING:
                module = _compat_pickle.IMPORT_MAPPING[module]
        try:
            return self._allowed[f'{module}.{name}']
        except KeyError:
            raise _RefusedGlobal(f'Unsupported global: GLOBAL {module}.{name} is not in the weights-only allow-list')

    def load_reduce(self):
        if not self._is_allowed(self.stack[-2]):
            raise _RefusedGlobal(f'Refusing to call {self.stack[-2]!r}: not in the weights-only allow-list')
        super().load_reduce()

    def load_newobj(self):
        if not self._is_allowed(self.stack[-2]):
            raise _RefusedGlobal(f'Refusing to create a {self.stack[-2]!r}: not in the weights-only allow-list')
        super().load_newobj()

    def load_newobj_ex(self):
        if not self._is_allowed(self.stack[-3]):
            raise _RefusedGlobal(f'Refusing to create a {self.stack[-3]!r}: not in the weights-only allow-list')
        super().load_newobj_ex()

    def load_build(self):
        if type(self.stack[-2]) not in self._allowed_types:
            raise _RefusedGlobal(f'Refusing to set the state of a {type(self.stack[-2])!r}: not in the weights-only '
                                 'allow-list')
        super().load_build()

    def load_setitem(self):
        self._require_target((dict, OrderedDict, Counter), offset=3, what='set items of')
        super().load_setitem()

    def load_setitems(self):
        self._require_target((dict, OrderedDict, Counter), offset=1, what='set items of', marked=True)
        super().load_setitems()

    def load_append(self):
        self._require_target((list, ), offset=2, what='append to')
        super().load_append()

    def load_appends(self):
        self._require_target((list, ), offset=1, what='append to', marked=True)
        super().load_appends()

    def load_additems(self):
        self._require_target((set, ), offset=1, what='add items to', marked=True)
        super().load_additems()

    def _require_target(self, types, offset, what, marked=False):
        stack = self.metastack[-1] if marked else self.stack  # after MARK, the target waits on the stack below
        if type(stack[-offset]) not in types:
            raise _RefusedGlobal(f'Refusing to {what} a {type(stack[-offset])!r} while unpickling')

    def persistent_load(self, pid):  # replaced by torch.load's own (storages); anything else is refused
        raise _RefusedGlobal(f'Unsupported persistent id {pid!r}')

    def load_binpersid(self):
        pid = self.stack[-1]
        if not (type(pid) is int or type(pid) is tuple and pid and _ascii(pid[0]) == 'storage'):
            raise _RefusedGlobal(f'Only torch storages may be persistent ids, not {pid!r}')
        super().load_binpersid()

    def _refuse(self):
        raise _RefusedGlobal('Refusing the pickle opcodes that instantiate a class directly (INST, OBJ), read a text '
                             'persistent id (PERSID) or an extension code (EXT1/2/4, which may be answered from a '
                             "process-wide cache): torch.save does not write them")

    for _opcode, _handler in ((pickle.REDUCE, load_reduce), (pickle.NEWOBJ, load_newobj),
                              (pickle.NEWOBJ_EX, load_newobj_ex), (pickle.BUILD, load_build),
                              (pickle.SETITEM, load_setitem), (pickle.SETITEMS, load_setitems),
                              (pickle.APPEND, load_append), (pickle.APPENDS, load_appends),
                              (pickle.ADDITEMS, load_additems), (pickle.BINPERSID, load_binpersid),
                              (pickle.INST, _refuse), (pickle.OBJ, _refuse), (pickle.PERSID, _refuse),
                              (pickle.EXT1, _refuse), (pickle.EXT2, _refuse), (pickle.EXT4, _refuse)):
        dispatch[_opcode[0]] = _handler
    del _opcode, _handler


def _ascii(value):
    return value.decode('ascii') if isinstance(value, bytes) else value


def _allowed_globals() -> dict:
    """torch's own weights-only allow-list (tensors, storages, dtypes, its rebuild functions, OrderedDict) and
    :data:`SAFE_GLOBALS`, by the names a pickle asks for."""
    from torch import _weights_only_unpickler
    allowed = dict(_weights_only_unpickler._get_allowed_globals())
    for entry in SAFE_GLOBALS:
        obj, name = entry if isinstance(entry, tuple) else (entry, f'{entry.__module__}.{entry.__qualname__}')
        allowed[name] = obj
    return allowed


class _WeightsOnlyPickleModule:
    """What ``torch.load(pickle_module=...)`` uses: its ``Unpickler`` (which torch.load subclasses to map storage
    names and read storages from the file) and ``load`` (the legacy format's headers)."""
    __name__ = 'mmincnext.checkpoint.weights_only'
    Unpickler = WeightsOnlyUnpickler
    UnpicklingError = pickle.UnpicklingError

    @staticmethod
    def load(file, **kwargs):
        return WeightsOnlyUnpickler(file, **kwargs).load()


def _load_weights_only(filename: str, map_location):
    if SAFE_GLOBALS_CONTEXT:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            return torch.load(filename, map_location=map_location, weights_only=True)
    return torch.load(filename, map_location=map_location, weights_only=False, pickle_module=_WeightsOnlyPickleModule)


def read_checkpoint(filename: str, map_location='cpu') -> dict:
    """Read a local ``.pth``/``.pt``/``.ckpt`` or ``.safetensors`` file without running code from it."""
    filename = os.path.expanduser(str(filename))
    if not os.path.isfile(filename):
        raise FileNotFoundError(f'Checkpoint file not found: {filename!r} (no such file)')
    if filename.endswith('.safetensors'):
        from safetensors import SafetensorError
        from safetensors.torch import load_file
        device = map_location if isinstance(map_location, (str, torch.device)) else 'cpu'
        try:
            return load_file(filename, device=str(device))
        except (SafetensorError, OSError, ValueError) as err:
            raise CheckpointError(f'Cannot read safetensors checkpoint {filename!r} (truncated or corrupt?): '
                                  f'{err}') from err
    try:
        return _load_weights_only(filename, map_location)
    except pickle.UnpicklingError as err:
        if isinstance(err, _RefusedGlobal) or 'weights_only' in str(err) or 'Unsupported global' in str(err):
            raise CheckpointError(
                f'Refusing to unpickle {filename!r}: it holds Python objects outside the weights-only allow-list '
                f'(mmincnext never unpickles checkpoints in full, since that can run code). Details: {err}') from err
        raise CheckpointError(f'Cannot read checkpoint {filename!r} (truncated or corrupt?): {err}') from err
    except Exception as err:  # a damaged file can make the unpickler fail in any way (EOF, zip, index, key...)
        raise CheckpointError(f'Cannot read checkpoint {filename!r} (truncated or corrupt?): '
                              f'{type(err).__name__}: {err}') from err


@CheckpointLoader.register_scheme(prefixes='', force=True)
def _load_local_checkpoint(filename, map_location):
    return read_checkpoint(filename, map_location)


@CheckpointLoader.register_scheme(prefixes=('http://', 'https://'), force=True)
def _load_url_checkpoint(url, map_location):
    """Download once into torch hub's cache, then read it like a local file.

    mmengine's own http loader calls ``torch.hub.load_state_dict_from_url``, whose ``weights_only`` defaults to
    False: a downloaded file would be unpickled in full. In a distributed run rank 0 downloads, the others wait.
    """
    path = os.path.join(torch.hub.get_dir(), 'checkpoints', os.path.basename(urlparse(url).path))
    rank, world_size = get_dist_info()
    if rank == 0 and not os.path.isfile(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        torch.hub.download_url_to_file(url, path)  # writes a temporary file and renames it when complete
    if world_size > 1:
        torch.distributed.barrier()
    return read_checkpoint(path, map_location)


def read_state_dict(checkpoint: str, map_location='cpu', prefix: Optional[str] = None) -> dict:
    """The flat state_dict of a checkpoint (a path or URL, read through mmengine's ``CheckpointLoader``, hence
    :func:`read_checkpoint`), unwrapped as :func:`extract_state_dict` does."""
    raw = CheckpointLoader.load_checkpoint(checkpoint, map_location=map_location)
    return extract_state_dict(raw, prefix, source=repr(checkpoint))


def extract_state_dict(checkpoint: dict, prefix: Optional[str] = None, source: str = 'checkpoint') -> dict:
    """The flat state_dict of an official/timm file or of an mmengine/DDP checkpoint, with ``prefix`` removed."""
    for key in ('state_dict', 'model', 'module'):
        if key in checkpoint and isinstance(checkpoint[key], dict):
            checkpoint = checkpoint[key]
            break
    state_dict = {(k[len('module.'):] if k.startswith('module.') else k): v for k, v in checkpoint.items()}
    return select_prefix(state_dict, prefix, source) if prefix else state_dict


def select_prefix(state_dict: dict, prefix: str, source: str = 'checkpoint') -> dict:
    """The entries of a flat ``state_dict`` under ``prefix``, with ``prefix`` removed; none is an error."""
    selected = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
    if not selected:
        raise CheckpointError(f'No key of {source} starts with prefix {prefix!r}; its keys begin with '
                              f'{sorted({k.split(".")[0] + "." for k in state_dict})}')
    return selected


def _listing(title: str, items: Sequence[str], limit: int = 20) -> str:
    shown = '\n    '.join(items[:limit])
    more = f'\n    ... and {len(items) - limit} more' if len(items) > limit else ''
    return f'\n  {title} ({len(items)}):\n    {shown}{more}'


def load_pretrained(module: torch.nn.Module,
                    checkpoint: str,
                    prefix: Optional[str] = None,
                    map_location='cpu',
                    ignore_prefixes: Iterable[str] = ('head.', ),
                    optional_prefixes: Iterable[str] = (),
                    convert: Optional[Callable[[dict], dict]] = None) -> None:
    """Read ``checkpoint`` (its entries under ``prefix``, if given), map another release's key layout to the
    module's with ``convert`` if given, and load them into ``module`` with :func:`load_state_dict_strictly`."""
    state_dict = read_state_dict(checkpoint, map_location, prefix)
    if convert is not None:
        state_dict = convert(state_dict)
    source = repr(checkpoint) + (f' (prefix {prefix!r})' if prefix else '')
    load_state_dict_strictly(module, state_dict, source, ignore_prefixes, optional_prefixes)


def load_state_dict_strictly(module: torch.nn.Module,
                             state_dict: dict,
                             source: str,
                             ignore_prefixes: Iterable[str] = ('head.', ),
                             optional_prefixes: Iterable[str] = ()) -> None:
    """Load a flat ``state_dict`` (read from ``source``) into ``module`` and fail loudly on anything that does not
    fit.

    Keys under ``ignore_prefixes`` (the classification head, for a backbone) are skipped and reported. Every other
    key must match a parameter or buffer of the same shape, and every parameter or buffer of ``module`` must be
    covered, except BN's ``num_batches_tracked`` and those under ``optional_prefixes`` (layers the checkpoint
    cannot know, such as the backbone's new output norms). Otherwise :class:`CheckpointError` lists the missing,
    unexpected and mismatched keys.
    """
    ignore_prefixes, optional_prefixes = tuple(ignore_prefixes), tuple(optional_prefixes)
    skipped = sorted(k for k in state_dict if ignore_prefixes and k.startswith(ignore_prefixes))
    state_dict = {k: v for k, v in state_dict.items() if not (ignore_prefixes and k.startswith(ignore_prefixes))}

    own = module.state_dict()
    missing = [k for k in own if k not in state_dict and not k.endswith('num_batches_tracked')
               and not (optional_prefixes and k.startswith(optional_prefixes))]
    unexpected = [k for k in state_dict if k not in own]
    mismatched = [f'{k}: checkpoint {tuple(v.shape)} != model {tuple(own[k].shape)}'
                  for k, v in state_dict.items() if k in own and tuple(v.shape) != tuple(own[k].shape)]
    if missing or unexpected or mismatched:
        problems = ''.join(_listing(title, items) for title, items in (
            ('missing in the checkpoint', missing), ('unexpected in the checkpoint', unexpected),
            ('shape mismatch', mismatched)) if items)
        raise CheckpointError(f'Checkpoint {source} does not fit {type(module).__name__}:{problems}\n'
                              'Is it the checkpoint of another arch (width or depth)?')
    module.load_state_dict(state_dict, strict=False)
    print_log(f'Loaded {len(state_dict)} tensors into {type(module).__name__} from {source}' +
              (f'; skipped {len(skipped)} keys ({", ".join(sorted({k.split(".")[0] for k in skipped}))}.*)'
               if skipped else ''), logger='current')
