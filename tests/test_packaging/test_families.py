"""Upstream OpenMMLab and the OneDL forks (docs/compatibility.md): the requirements keep the two families apart, a
missing library is named with both distributions, and every config's ``mmseg::``/``mmdet::``/``mmpretrain::`` base
resolves where only the OneDL distributions are installed (simulated here in the upstream venv; for real in the
OneDL one, ``make test-onedl``)."""
import importlib.metadata
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
from mmengine.config import Config
from mmengine.config import utils as config_utils
from packaging.requirements import Requirement

import onedl_lookup
from helpers import REPO, require
from mmincnext import compat

UPSTREAM = {'mmcv', 'mmengine', 'mmsegmentation', 'mmdet', 'mmpretrain'}
ONEDL = {'onedl-mmcv', 'onedl-mmengine', 'onedl-mmsegmentation', 'onedl-mmdetection', 'onedl-mmpretrain'}
CONFIGS = sorted(str(p.relative_to(REPO / 'configs')) for p in (REPO / 'configs').rglob('*.py')
                 if '_base_' not in p.parts)


def installed(distribution):
    return any(True for _ in importlib.metadata.distributions(name=distribution))


def setup_module_namespace():
    spec = importlib.util.spec_from_file_location('mmincnext_setup', REPO / 'setup.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # setup() itself runs only under __main__
    return module


def names(requirements):
    return {Requirement(line).name for line in requirements}


def test_extras_keep_the_families_apart():
    """install_requires names no OpenMMLab distribution; each extra names one family only; [seg]/[det]/[cls]/[all]
    stay the upstream ones they always were."""
    setup = setup_module_namespace()
    base = names(setup.read_requirements('runtime.txt'))
    assert base == {'torch', 'numpy', 'safetensors'}
    extras = {extra: names(reqs) for extra, reqs in setup.family_extras().items()}
    assert set(extras) == {'mminstall', 'seg', 'det', 'cls', 'all', 'onedl', 'onedl-seg', 'onedl-det', 'onedl-cls',
                           'onedl-all'}
    for extra, reqs in extras.items():
        family, other = (ONEDL, UPSTREAM) if extra.startswith('onedl') else (UPSTREAM, ONEDL)
        assert not reqs & other, (extra, reqs & other)
        assert {'mmcv', 'mmengine'} <= {name.removeprefix('onedl-') for name in reqs & family}, extra
    assert extras['seg'] >= {'mmsegmentation', 'ftfy', 'regex'} and 'mmdet' in extras['det']
    assert 'onedl-mmsegmentation' in extras['onedl-seg'] and 'onedl-mmpretrain' in extras['onedl-cls']
    assert names(setup.read_requirements('tests.txt')).isdisjoint(UPSTREAM | ONEDL)


@pytest.mark.parametrize('constraints, extra', [('constraints.txt', 'all'), ('constraints-onedl.txt', 'onedl-all')])
def test_each_venvs_pins_satisfy_its_extras(constraints, extra):
    """tools/setup_env.sh pins each family in its constraints file: the pins lie inside what the extras allow."""
    setup = setup_module_namespace()
    pins = {req.name: req for req in map(Requirement, setup.read_requirements(constraints))}
    for line in setup.family_extras()[extra]:
        req = Requirement(line)
        if req.name in pins and str(pins[req.name].specifier).startswith('=='):
            assert req.specifier.contains(str(pins[req.name].specifier)[2:], prereleases=True), (req, pins[req.name])
    assert not set(pins) & (ONEDL if extra == 'all' else UPSTREAM)


def test_the_declared_range_holds_every_venv_and_starts_at_the_oldest():
    """requirements/runtime.txt declares torch and numpy ranges, setup.py the oldest Python: each venv's pins lie inside
    them, and .venv-min (make test-min) is built at their lower ends, so the oldest declared stack is a tested one."""
    import re
    setup = setup_module_namespace()
    declared = {req.name: req.specifier for req in map(Requirement, setup.read_requirements('runtime.txt'))}
    minimum = {name: next(spec.version for spec in specifier if spec.operator == '>=')
               for name, specifier in declared.items() if name in ('torch', 'numpy')}
    for constraints in ('constraints.txt', 'constraints-onedl.txt', 'constraints-min.txt'):
        pins = {req.name: str(req.specifier)[2:] for req in map(Requirement, setup.read_requirements(constraints))
                if str(req.specifier).startswith('==')}
        for name in ('torch', 'numpy'):
            if name in pins:
                assert declared[name].contains(pins[name]), (constraints, name, pins[name], declared[name])
    min_pins = {req.name: str(req.specifier)[2:] for req in map(Requirement,
                                                                setup.read_requirements('constraints-min.txt'))}
    assert min_pins['torch'].split('.')[:2] == minimum['torch'].split('.')[:2]
    python_requires = re.search(r"python_requires='>=([\d.]+)'", (REPO / 'setup.py').read_text()).group(1)
    min_python = re.search(r'\n *min\)\n *PYTHON_VERSION=([\d.]+)', (REPO / 'tools' / 'setup_env.sh').read_text())
    assert min_python and min_python.group(1) == python_requires


def test_a_missing_library_is_named_with_both_distributions():
    code = """
import sys
for module in ('mmengine', 'mmseg'):
    sys.modules[module] = None  # importing it raises ImportError, as if neither family had installed it
    try:
        import mmincnext, mmincnext.datasets.seg
    except ModuleNotFoundError as error:
        print(error.name, '|', error)
    del sys.modules[module]
"""
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2, result.stdout
    for line, (module, upstream, onedl, extras) in zip(lines, (
            ('mmengine', 'mmengine', 'onedl-mmengine', '"mmincnext[mminstall]" (upstream) or "mmincnext[onedl]"'),
            ('mmseg', 'mmsegmentation', 'onedl-mmsegmentation', '"mmincnext[seg]" (upstream) or "mmincnext[onedl-seg]"'))):
        assert line.startswith(f'{module} | mmincnext needs {module}: pip install {upstream} (upstream OpenMMLab) '
                               f'or {onedl} (OneDL)'), line
        assert extras in line, line


def simulate_onedl(monkeypatch):
    """This venv as mmengine sees a OneDL one (tests/onedl_lookup.py); undone after the test."""
    onedl_lookup.simulate(monkeypatch.setattr, monkeypatch.setitem)
    onedl_lookup.LOOKUPS.clear()


def test_the_simulation_shows_the_onedl_failure(monkeypatch):
    """Without the fix, a `mmseg::` base fails as it does under onedl-mmsegmentation; `mmdet::` works."""
    require('mmseg')
    require('mmdet')
    simulate_onedl(monkeypatch)
    with pytest.raises(ModuleNotFoundError, match='mmsegmentation is not installed'):
        Config.fromfile(str(REPO / 'configs' / 'upernet_incnext_t_ade20k.py'))
    Config.fromfile(str(REPO / 'configs' / 'mask_rcnn_incnext_t_coco.py'))


def test_every_config_loads_where_only_onedl_distributions_are(monkeypatch):
    """With the fix ``import mmincnext`` applies there, every config (with all its mmseg::, mmdet:: and mmpretrain::
    bases) loads to the same config as here, and each external base comes from the importable package's directory.
    (tests/test_packaging/test_wheel.py does the same with the installed wheel's .mim.)"""
    for library in ('mmseg', 'mmdet', 'mmpretrain'):
        require(library)
    expected = {name: Config.fromfile(str(REPO / 'configs' / name)).to_dict() for name in CONFIGS}
    simulate_onedl(monkeypatch)
    assert compat.find_config_bases_by_module() == ['mmseg']
    assert config_utils.MODULE2PACKAGE['mmseg'] == 'mmseg'
    differing = [name for name in CONFIGS if Config.fromfile(str(REPO / 'configs' / name)).to_dict() != expected[name]]
    assert not differing
    looked_up = dict(onedl_lookup.LOOKUPS)
    assert set(looked_up) == {'mmseg', 'mmdet', 'mmpretrain'}
    for package, path in looked_up.items():
        assert Path(path) == Path(importlib.util.find_spec(package).origin).parent


@pytest.mark.integration
def test_config_lookup_is_fixed_only_where_needed():
    """In either real venv: upstream keeps mmengine's mapping; OneDL gets the module name, and a `mmseg::` base
    loads."""
    require('mmseg')
    import mmincnext  # noqa: F401
    expected = 'mmsegmentation' if installed('mmsegmentation') else 'mmseg'
    assert config_utils.MODULE2PACKAGE['mmseg'] == expected
    assert installed('mmsegmentation') != installed('onedl-mmsegmentation')
    cfg = Config.fromfile(str(REPO / 'configs' / 'upernet_incnext_t_ade20k.py'))
    assert cfg.model.backbone.type == 'InceptionNeXt' and cfg.model.decode_head.type == 'UPerHead'


@pytest.mark.integration
def test_this_venv_holds_one_family():
    """Each venv holds one family and nothing of the other: all of it, or (make test-min) its foundation with
    mmcv-lite, upstream's mmcv without compiled ops."""
    family, other = (ONEDL, UPSTREAM) if installed('onedl-mmengine') else (UPSTREAM, ONEDL)
    present = {name for name in family if installed(name)}
    if installed('mmcv-lite'):
        assert family is UPSTREAM and 'mmcv' not in present  # two distributions of one import name
        assert {'mmengine'} <= present
    else:
        assert present == family
    assert not any(installed(name) for name in other)
