"""Generated datasets are written once: atomically, with their settings recorded and checked on every reuse."""
import json
import os
import os.path as osp
import shutil
import tempfile
from typing import Callable

RECORD = 'meta.json'


def write_once(data_root: str, settings: dict, write: Callable[[str], None]) -> dict:
    """Make ``data_root`` with ``write(folder)`` unless it exists, then check that it records ``settings``.

    ``write`` fills a fresh folder beside ``data_root``, which is renamed into place only when complete: an
    interrupted run never leaves half a dataset, and concurrent runs agree. A folder made with other settings, or
    not by a generator, raises instead of being silently reused. Returns ``settings``.
    """
    data_root = osp.abspath(data_root)
    if not osp.exists(data_root):
        parent = osp.dirname(data_root)
        os.makedirs(parent, exist_ok=True)
        staging = tempfile.mkdtemp(prefix=f'.{osp.basename(data_root)}-', dir=parent)
        try:
            write(staging)
            with open(osp.join(staging, RECORD), 'w') as f:
                json.dump(settings, f, indent=2)
            os.rename(staging, data_root)
        except OSError:
            if not osp.isdir(data_root):  # a concurrent run that won the rename is fine; anything else is not
                raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    record = osp.join(data_root, RECORD)
    if not osp.isfile(record):
        raise FileExistsError(f'{data_root} exists but holds no {RECORD}, so it was not made by this generator; '
                              'point data_root elsewhere or delete the folder')
    with open(record) as f:
        found = json.load(f)
    if found != settings:
        raise FileExistsError(f'{data_root} was generated with other settings ({found}) than requested '
                              f'({settings}); delete the folder to regenerate it, or point data_root elsewhere')
    return settings
