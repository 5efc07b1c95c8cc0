"""Loading the checkpoint formats users have, safely, and refusing the ones that do not fit."""
import codecs
import logging
import os
import re
import shutil
import subprocess

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer, MMLogger
from mmengine.runner import load_checkpoint
from safetensors.torch import save_file

import mmincnext.checkpoint
from mmincnext.checkpoint import CheckpointError, read_checkpoint
from mmincnext.compat import SAFE_GLOBALS_CONTEXT
from mmincnext.models import InceptionNeXt


# torch's weights-only unpickler takes the allow-list from torch 2.6; mmincnext's applies the same rules to the same
# list on older torch, and is tested here on every torch.
UNPICKLERS = (['torch-safe-globals'] if SAFE_GLOBALS_CONTEXT else []) + ['own-unpickler']


@pytest.fixture(autouse=True, params=UNPICKLERS)
def unpickler(request, monkeypatch):
    """Every test reads through each weights-only path this torch has."""
    monkeypatch.setattr(mmincnext.checkpoint, 'SAFE_GLOBALS_CONTEXT', request.param == 'torch-safe-globals')
    return request.param


def pretrained(arch, path, **kwargs):
    model = InceptionNeXt(arch, init_cfg=dict(type='Pretrained', checkpoint=str(path), **kwargs))
    model.init_weights()
    return model


def assert_loaded(model, reference):
    state = model.state_dict()
    for key, value in reference.state_dict().items():
        if not key.startswith('head.'):
            assert torch.equal(state[key], value), key


@pytest.fixture
def atto(timm_reference):
    return timm_reference('atto')


def test_official_flat_pth_loads_and_reports_head(atto, tmp_path):
    path = tmp_path / 'inceptionnext_atto.pth'
    torch.save(atto.state_dict(), path)
    logger = MMLogger.get_current_instance()
    records = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())
    logger.addHandler(handler)
    try:
        model = pretrained('atto', path)
    finally:
        logger.removeHandler(handler)
    assert_loaded(model, atto)
    assert any('skipped 6 keys (head.*)' in r for r in records), records


def test_timm_safetensors_loads(atto, tmp_path):
    path = tmp_path / 'model.safetensors'
    save_file({k: v.contiguous() for k, v in atto.state_dict().items()}, str(path))
    assert_loaded(pretrained('atto', path), atto)


def test_mmengine_checkpoint_with_prefix_loads(atto, tmp_path):
    """An mmengine checkpoint holds numpy objects and the message hub's HistoryBuffer next to the weights."""
    path = tmp_path / 'iter_100.pth'
    state = {f'backbone.{k}': v for k, v in atto.state_dict().items() if not k.startswith('head.')}
    state['decode_head.conv_seg.weight'] = torch.zeros(3, 3)
    buffer = HistoryBuffer()
    buffer.update(0.5)
    torch.save(dict(meta=dict(seed=np.int64(3), epoch=1, mmengine_version='0.10.7'), state_dict=state,
                    message_hub=dict(log_scalars={'train/loss': buffer}, runtime_info={'iter': 100}),
                    stats=np.arange(4, dtype=np.float32)), path)
    assert_loaded(pretrained('atto', path, prefix='backbone.'), atto)
    # mmengine's own entry point reads it through the same safe loader
    assert read_checkpoint(path)['message_hub']['log_scalars']['train/loss'].current() == 0.5


def test_wrong_prefix_is_named(atto, tmp_path):
    path = tmp_path / 'flat.pth'
    torch.save(atto.state_dict(), path)
    with pytest.raises(CheckpointError, match=r"No key .* starts with prefix 'backbone\.'.*'stem\.'"):
        pretrained('atto', path, prefix='backbone.')


def test_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match='nowhere.pth'):
        pretrained('atto', tmp_path / 'nowhere.pth')


def test_truncated_file_is_named(atto, tmp_path):
    path = tmp_path / 'truncated.pth'
    torch.save(atto.state_dict(), path)
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match='truncated or corrupt'):
        pretrained('atto', path)
    corrupt = tmp_path / 'corrupt.safetensors'
    corrupt.write_bytes(b'\x10\x00\x00\x00\x00\x00\x00\x00{"a": nonsense}')
    with pytest.raises(CheckpointError, match='corrupt.safetensors'):
        pretrained('atto', corrupt)


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f'touch {self.marker}', )


def test_malicious_pickle_is_refused_without_running(tmp_path):
    marker = tmp_path / 'pwned'
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'payload': _Exploit(marker)}, path)
    with pytest.raises(CheckpointError, match='Refusing to unpickle'):
        pretrained('atto', path)
    with pytest.raises(CheckpointError, match='Refusing to unpickle'):
        load_checkpoint(torch.nn.Linear(1, 1), str(path))  # mmengine's loader goes through the same gate
    assert not marker.exists()


def test_other_width_lists_shape_mismatches(atto, tmp_path):
    path = tmp_path / 'atto.pth'
    torch.save(atto.state_dict(), path)
    with pytest.raises(CheckpointError) as err:
        pretrained('tiny', path)
    message = str(err.value)
    assert 'shape mismatch' in message and 'stem.0.weight: checkpoint (40, 3, 4, 4) != model (96, 3, 4, 4)' in message


def test_a_shape_mismatch_alone_is_named(atto, tmp_path):
    """Every key present, one of another shape: the loader names it (torch's own error would not say which file)."""
    path = tmp_path / 'atto_wider_fc2.pth'
    state = atto.state_dict()
    state['stages.3.blocks.1.mlp.fc2.bias'] = torch.zeros(321)
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=r'shape mismatch \(1\):\n    stages.3.blocks.1.mlp.fc2.bias: '
                       r'checkpoint \(321,\) != model \(320,\)'):
        pretrained('atto', path)


def test_other_depth_lists_missing_and_unexpected_keys(timm_reference, tmp_path):
    tiny = tmp_path / 'tiny.pth'
    torch.save(timm_reference('tiny').state_dict(), tiny)
    with pytest.raises(CheckpointError) as err:
        pretrained('small', tiny)
    deeper_blocks = [k for k in InceptionNeXt('small').state_dict() if k.startswith('stages.2.blocks.')
                     and int(k.split('.')[3]) >= 9 and not k.endswith('num_batches_tracked')]
    assert f'missing in the checkpoint ({len(deeper_blocks)}):\n    {deeper_blocks[0]}' in str(err.value)

    atto = tmp_path / 'atto_deeper.pth'
    state = timm_reference('atto').state_dict()
    state['stages.3.blocks.2.gamma'] = torch.ones(320)
    torch.save(state, atto)
    with pytest.raises(CheckpointError, match=r'unexpected in the checkpoint \(1\):\n    stages.3.blocks.2.gamma'):
        pretrained('atto', atto)


def test_url_checkpoints_are_read_safely(atto, tmp_path, monkeypatch):
    """A URL is downloaded into torch hub's cache and read like a local file (never unpickled in full)."""
    from mmengine.runner.checkpoint import CheckpointLoader
    served = {'https://example.org/model/inceptionnext_atto.pth': tmp_path / 'good.pth',
              'https://example.org/model/evil.pth': tmp_path / 'evil.pth'}
    torch.save(atto.state_dict(), served['https://example.org/model/inceptionnext_atto.pth'])
    torch.save({'payload': _Exploit(tmp_path / 'pwned')}, served['https://example.org/model/evil.pth'])
    monkeypatch.setattr(torch.hub, 'get_dir', lambda: str(tmp_path / 'hub'))
    monkeypatch.setattr(torch.hub, 'download_url_to_file', lambda url, dst, *a, **k: shutil.copy(served[url], dst))

    model = pretrained('atto', 'https://example.org/model/inceptionnext_atto.pth')
    assert_loaded(model, atto)
    assert (tmp_path / 'hub' / 'checkpoints' / 'inceptionnext_atto.pth').is_file()
    with pytest.raises(CheckpointError, match='Refusing to unpickle'):
        CheckpointLoader.load_checkpoint('https://example.org/model/evil.pth')
    assert not (tmp_path / 'pwned').exists()


def test_checkpoint_of_the_other_numpy_major_loads(tmp_path):
    """numpy 2 pickles its arrays and scalars under numpy._core, numpy 1 under numpy.core: each reads the other's.
    (The legacy torch.save format keeps the pickle uncompressed, so the module names can be swapped in place.)"""
    saved = dict(meta=dict(seed=np.int64(3), lr=np.float32(0.5)), stats=np.arange(4, dtype=np.float32))
    path = tmp_path / 'other_numpy.pth'
    torch.save(saved, path, _use_new_zipfile_serialization=False)
    data = path.read_bytes()
    ours, theirs = ((b'numpy._core.multiarray\n', b'numpy.core.multiarray\n') if b'numpy._core.multiarray\n' in data
                    else (b'numpy.core.multiarray\n', b'numpy._core.multiarray\n'))
    assert ours in data
    path.write_bytes(data.replace(ours, theirs))
    loaded = read_checkpoint(path)
    assert loaded['meta'] == saved['meta'] and type(loaded['meta']['seed']) is np.int64
    np.testing.assert_array_equal(loaded['stats'], saved['stats'])


HISTORY_BUFFER = b'cmmengine.logging.history_buffer\nHistoryBuffer\n'
GETATTR = b'c__builtin__\ngetattr\n'  # how protocol 2 (torch.save's) names builtins.getattr


def unicode(text: str) -> bytes:
    return b'X' + len(text).to_bytes(4, 'little') + text.encode()


# Protocol-2 pickles that use allowed names in ways the allow-list must not allow, each with the side effect it
# would have. (A plain pickle is torch.load's legacy format: its first object is read before anything else.)
ABUSES = {
    # BUILD on the allowed class itself: setattr(HistoryBuffer, 'update', 0) would change every buffer in the process
    'state-of-an-allowed-class': (HISTORY_BUFFER + b'N}' + unicode('update') + b'K\x00s\x86b.',
                                  lambda: HistoryBuffer.update == 0),
    # the getattr stand-in resolves HistoryBuffer's statistics only, not any attribute
    'getattr-beyond-statistics': (GETATTR + HISTORY_BUFFER + unicode('__init__') + b'\x86R.', lambda: False),
    # a function reached through getattr is data, not something a pickle may call
    'call-what-getattr-returned': (GETATTR + HISTORY_BUFFER + unicode('mean') + b'\x86R'
                                   + HISTORY_BUFFER + b')\x81\x85R.', lambda: False),
}


@pytest.mark.parametrize('abuse', list(ABUSES))
def test_allowed_names_cannot_be_abused(abuse, tmp_path):
    payload, side_effect = ABUSES[abuse]
    original_update = HistoryBuffer.update
    path = tmp_path / f'{abuse}.pth'
    path.write_bytes(b'\x80\x02' + payload)
    try:
        with pytest.raises(CheckpointError, match='Refusing to unpickle'):
            read_checkpoint(path)
        assert not side_effect()
    finally:
        HistoryBuffer.update = original_update


class _Call:
    """Pickles as ``func(*args)``: what a malicious checkpoint asks the unpickler to run."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _touch_code(marker) -> str:
    return f'open({str(marker)!r}, "w").close()'


# Each payload, if it ran, would create the marker file it is given.
PAYLOADS = {
    'builtins.eval': lambda marker: _Call(eval, _touch_code(marker)),
    'builtins.exec': lambda marker: _Call(exec, _touch_code(marker)),
    'subprocess.Popen': lambda marker: _Call(subprocess.Popen, ['touch', str(marker)]),
    'os.system': lambda marker: _Call(os.system, f'touch {marker}'),
}


def _read_through_mmengine(path):
    from mmengine.runner.checkpoint import CheckpointLoader
    return CheckpointLoader.load_checkpoint(str(path))


@pytest.mark.parametrize('read', [read_checkpoint, _read_through_mmengine], ids=['read_checkpoint', 'mmengine'])
@pytest.mark.parametrize('zip_format', [True, False], ids=['zip', 'legacy'])
@pytest.mark.parametrize('payload', list(PAYLOADS))
def test_code_running_payloads_are_refused_without_running(payload, zip_format, read, tmp_path):
    """Every global that runs code is refused, in both torch.save formats, through every reader; nothing runs."""
    marker = tmp_path / 'pwned'
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {'w': torch.zeros(1)}, 'meta': PAYLOADS[payload](marker)}, path,
               _use_new_zipfile_serialization=zip_format)
    refusal = None
    try:
        read(path)
    except CheckpointError as err:
        refusal = str(err)
    assert not marker.exists(), f'{payload} ran while reading the checkpoint'
    assert refusal is not None and 'Refusing to unpickle' in refusal, f'{payload} was not refused: {refusal}'


def test_getattr_on_anything_but_history_buffer_statistics_is_refused(tmp_path):
    """torch.save's protocol 2 names the message hub's statistics ``getattr(HistoryBuffer, 'mean')``: exactly those
    resolve. A general getattr would reach any function's module globals, and a pickle may set items of a dict."""
    from mmengine.logging import history_buffer
    reach_globals = (GETATTR + GETATTR + HISTORY_BUFFER + unicode('__init__') + b'\x86R' + unicode('__globals__')
                     + b'\x86R' + unicode('_mmincnext_pwned') + b'\x88s.')
    other_owner = GETATTR + b'cnumpy\nndarray\n' + unicode('mean') + b'\x86R.'  # a statistic's name, not its owner
    path = tmp_path / 'getattr.pth'
    for name, payload in (('module globals', reach_globals), ('another owner', other_owner)):
        path.write_bytes(b'\x80\x02' + payload)
        refusal = None
        try:
            read_checkpoint(path)
        except CheckpointError as err:
            refusal = str(err)
        finally:
            tampered = vars(history_buffer).pop('_mmincnext_pwned', None) is not None
        assert not tampered, f'{name}: the pickle set an item of a module\'s globals'
        assert refusal is not None and re.search(r'Refusing to unpickle.*getattr', refusal), f'{name}: {refusal}'
    # and the statistics themselves still resolve (a message hub's log_scalars name them)
    torch.save({'statistic': HistoryBuffer.mean}, path)
    assert read_checkpoint(path)['statistic'] is HistoryBuffer.mean


# What a checkpoint may hold beyond torch's own tensors and containers, pinned entry by entry: the name a pickle asks
# for, and the object it gets. Anything added to SAFE_GLOBALS fails this test until it is reviewed and listed here.
NUMPY_DTYPE_CLASSES = ('Bool', 'Int8', 'Int16', 'Int32', 'Int64', 'UInt8', 'UInt16', 'UInt32', 'UInt64', 'Float16',
                       'Float32', 'Float64', 'Complex64', 'Complex128', 'Str', 'Object')


def expected_safe_globals() -> dict:
    reconstruct, scalar = np.zeros(1).__reduce__()[0], np.float32(1).__reduce__()[0]  # what numpy pickles through
    return {
        '_codecs.encode': codecs.encode,
        'numpy.ndarray': np.ndarray,
        'numpy.dtype': np.dtype,
        **{f'numpy.dtypes.{name}DType': getattr(np.dtypes, f'{name}DType') for name in NUMPY_DTYPE_CLASSES},
        'numpy.core.multiarray._reconstruct': reconstruct,
        'numpy.core.multiarray.scalar': scalar,
        'numpy._core.multiarray._reconstruct': reconstruct,
        'numpy._core.multiarray.scalar': scalar,
        'mmengine.logging.history_buffer.HistoryBuffer': HistoryBuffer,
        'builtins.getattr': mmincnext.checkpoint._history_buffer_statistic,
    }


def test_safe_globals_are_exactly_the_reviewed_list():
    if not hasattr(np, 'dtypes'):
        pytest.skip('numpy < 1.25 names its dtype classes numpy.dtype[...]')
    entries = {}
    for entry in mmincnext.checkpoint.SAFE_GLOBALS:
        # torch.serialization.safe_globals' forms: an object (known by its module and qualified name) or (object, name)
        obj, name = entry if isinstance(entry, tuple) else (entry, f'{entry.__module__}.{entry.__qualname__}')
        assert name not in entries, f'{name} is listed twice'
        entries[name] = obj
    expected = expected_safe_globals()
    assert sorted(entries) == sorted(expected)
    for name, obj in expected.items():
        assert entries[name] is obj, name
    # the own unpickler's allow-list is torch's plus exactly these
    from torch import _weights_only_unpickler
    torch_own = _weights_only_unpickler._get_allowed_globals()
    allowed = mmincnext.checkpoint._allowed_globals()
    assert {name for name, obj in allowed.items() if torch_own.get(name) is not obj} <= set(expected)
    assert all(allowed[name] is obj for name, obj in expected.items())
