"""Safe checkpoint reading and strict pretrained loading.

Importing ``mmincnext`` replaces mmengine's loaders for local files and http(s) URLs in ``CheckpointLoader``, so
``init_cfg=dict(type='Pretrained')``, ``load_from``, ``--resume`` and the tools all read through
:func:`read_checkpoint`: ``.safetensors`` through safetensors, everything else through PyTorch's weights-only
unpickler with an allow-list of exactly what mmengine's own checkpoints hold (numpy arrays and scalars, the
message hub's ``HistoryBuffer``). A pickle that asks for anything else is refused, never unpickled in full.
"""
import os
import pickle
import zipfile
from typing import Callable, Iterable, Optional, Sequence
from urllib.parse import urlparse

import numpy as np
import torch
from mmengine.dist import get_dist_info
from mmengine.logging import HistoryBuffer, print_log
from mmengine.runner.checkpoint import CheckpointLoader


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read, or whose weights do not fit the model."""


def _numpy_globals() -> list:
    """The numpy callables and types that pickled arrays, scalars and dtypes refer to, under both numpy 1 and 2
    module names (a checkpoint keeps the names of the numpy that wrote it)."""
    core = np._core if hasattr(np, '_core') else np.core
    dtype_types = {type(np.dtype(name)) for name in (
        'bool', 'int8', 'int16', 'int32', 'int64', 'uint8', 'uint16', 'uint32', 'uint64',
        'float16', 'float32', 'float64', 'complex64', 'complex128', 'str', 'object')}
    allowed = [np.ndarray, np.dtype, *dtype_types]
    for module in ('numpy.core.multiarray', 'numpy._core.multiarray'):
        allowed += [(core.multiarray._reconstruct, f'{module}._reconstruct'),
                    (core.multiarray.scalar, f'{module}.scalar')]
    return allowed


def _history_buffer_statistic(owner, name):
    """Stands in for ``getattr`` while unpickling: protocol-2 pickles (``torch.save``'s default) store the message
    hub's ``HistoryBuffer`` statistics as ``getattr(HistoryBuffer, 'mean')``. Exactly those resolve; a general
    ``getattr`` would hand a pickle any attribute of any allowed object."""
    if owner is HistoryBuffer and name in _HISTORY_BUFFER_STATISTICS:
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(f'getattr({owner!r}, {name!r}) is not allowed in a checkpoint')


_HISTORY_BUFFER_STATISTICS = ('min', 'max', 'current', 'mean')
SAFE_GLOBALS = _numpy_globals() + [HistoryBuffer, (_history_buffer_statistic, 'builtins.getattr')]


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
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            return torch.load(filename, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        if 'weights_only' in str(err) or 'Unsupported global' in str(err):
            raise CheckpointError(
                f'Refusing to unpickle {filename!r}: it holds Python objects outside the weights-only allow-list '
                f'(mmincnext never unpickles checkpoints in full, since that can run code). Details: {err}') from err
        raise CheckpointError(f'Cannot read checkpoint {filename!r} (truncated or corrupt?): {err}') from err
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as err:
        raise CheckpointError(f'Cannot read checkpoint {filename!r} (truncated or corrupt?): {err}') from err


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
