"""The package as a user gets it: the wheel built from this checkout carries the configs, tools and model index under
mmincnext/.mim (OpenMMLab's layout) and the LICENSE; installed into a separate site directory and used from outside
the checkout, its configs build the paper's models, ``import mmincnext`` loads no task library, and mim finds the
configs, the tools and the model index."""
import ast
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest
from modelindex.load_model_index import load as load_model_index
from packaging.requirements import Requirement

from helpers import REPO, load_config, require, require_config
from mmincnext.utils import build_model_from_config

PAPER_CONFIGS = ['upernet_incnext_t_ade20k.py', 'mask_rcnn_incnext_t_coco.py', 'incnext_t_in1k.py']
TASK_LIBRARIES = {'seg': 'mmseg', 'det': 'mmdet', 'cls': 'mmpretrain'}
VENV = Path(sys.prefix)  # the checkout's .venv when it runs the tests
NOT_SHIPPED = {'.git', '.pytest_cache', '.whl', 'build', 'dist', 'data', 'work_dirs'}


def _unshipped(folder, names):
    """copytree's ignore: the checkout's environments (.venv, .venv-min, .venv-onedl: gigabytes each), data and
    build leftovers (at its top) and caches."""
    top = REPO == Path(folder)
    return [n for n in names if top and (n in NOT_SHIPPED or n.startswith('.venv'))
            or n in ('__pycache__', '.mim') or n.endswith('.egg-info')]


def pip(args):
    result = subprocess.run([sys.executable, '-m', 'pip', *args], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope='module')
def source(tmp_path_factory):
    """A copy of the checkout to build from: builds write into the source tree (build/, egg-info, mmincnext/.mim's
    copies), and the checkout keeps its editable install's links in mmincnext/.mim."""
    source = tmp_path_factory.mktemp('build') / 'mmincnext'
    shutil.copytree(REPO, source, ignore=_unshipped)
    return source


@pytest.fixture(scope='module')
def wheel(source):
    pip(['wheel', '--no-deps', '--no-build-isolation', '-w', str(source.parent), str(source)])
    return next(source.parent.glob('mmincnext-*.whl'))


@pytest.fixture(scope='module')
def site(wheel, tmp_path_factory):
    target = tmp_path_factory.mktemp('site')
    pip(['install', '--no-deps', '--target', str(target), str(wheel)])
    return target


def run_installed(site, *args, cwd):
    """``args`` run with only the installed package importable (PYTHONPATH=site, cwd outside the checkout; the
    checkout's editable install is a fallback finder that the site directory shadows)."""
    return subprocess.run(args, cwd=cwd, env=dict(os.environ, PYTHONPATH=str(site)), capture_output=True, text=True,
                          timeout=600)


def run_python(site, code, cwd):
    """Runs ``code`` in the installed package's interpreter; returns the JSON it prints last."""
    result = run_installed(site, sys.executable, '-c', code, cwd=cwd)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def test_wheel_carries_configs_tools_model_index_and_license(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {f'mmincnext/.mim/{path.relative_to(REPO).as_posix()}'
               for folder in ('configs', 'tools') for path in (REPO / folder).rglob('*')
               if path.suffix in ('.py', '.yml', '.sh') and '__pycache__' not in path.parts}
    shipped.discard('mmincnext/.mim/tools/setup_env.sh')  # makes the checkout's .venv: no use installed
    shipped.add('mmincnext/.mim/model-index.yml')
    assert 'mmincnext/.mim/tools/train.py' in shipped and 'mmincnext/.mim/configs/_base_/default_runtime.py' in shipped
    assert shipped <= names, sorted(shipped - names)
    assert 'mmincnext/.mim/tools/setup_env.sh' not in names
    license_file = next(name for name in names if name.endswith('.dist-info/licenses/LICENSE'))
    assert zipfile.ZipFile(wheel).read(license_file) == (REPO / 'LICENSE').read_bytes()


def test_sdist_carries_what_installing_it_needs(source):
    """setup.py reads requirements/*.txt and README.md; the configs, tools and model index travel in .mim."""
    result = subprocess.run([sys.executable, '-c', 'from setuptools import build_meta; '
                             f'print(build_meta.build_sdist({str(source.parent)!r}))'],
                            cwd=source, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    with tarfile.open(source.parent / result.stdout.splitlines()[-1]) as archive:
        names = {name.partition('/')[2] for name in archive.getnames()}
    expected = {'LICENSE', 'README.md', 'setup.py', 'mmincnext/.mim/tools/train.py',
                'mmincnext/.mim/configs/upernet_incnext_t_ade20k.py', 'mmincnext/.mim/model-index.yml'}
    expected |= {f'requirements/{path.name}' for path in (REPO / 'requirements').glob('*.txt')}
    assert expected <= names, sorted(expected - names)


def wheel_metadata(wheel):
    with zipfile.ZipFile(wheel) as archive:
        return Parser().parsestr(archive.read(next(n for n in archive.namelist() if n.endswith('/METADATA'))).decode())


def test_wheel_requires_only_the_backbones_dependencies(wheel):
    """``pip install mmincnext``: torch, numpy (lower bounds only: users keep theirs), safetensors: what both
    OpenMMLab families share, on the Pythons docs/compatibility.md names. mmcv and mmengine come with an extra of one
    family (upstream: [mminstall], [seg], ...; OneDL: [onedl], [onedl-seg], ...), the task libraries with the task's
    extra (tests/test_packaging/test_families.py checks the families stay apart)."""
    metadata = wheel_metadata(wheel)
    requirements = [Requirement(line) for line in metadata.get_all('Requires-Dist')]
    base = {req.name: req for req in requirements if req.marker is None}
    assert set(base) == {'torch', 'numpy', 'safetensors'}
    assert all(spec.operator == '>=' for name in ('torch', 'numpy') for spec in base[name].specifier)
    assert metadata['Requires-Python'] == '>=3.9'
    by_extra = {extra: {req.name for req in requirements if req.marker and req.marker.evaluate({'extra': extra})}
                for extra in metadata.get_all('Provides-Extra')}
    assert by_extra['mminstall'] == {'mmcv', 'mmengine'} and by_extra['onedl'] == {'onedl-mmcv', 'onedl-mmengine'}
    assert by_extra['seg'] == {'mmcv', 'mmengine', 'mmsegmentation', 'ftfy', 'regex'}
    assert by_extra['det'] == {'mmcv', 'mmengine', 'mmdet'} and by_extra['cls'] == {'mmcv', 'mmengine', 'mmpretrain'}
    assert by_extra['seg'] | by_extra['det'] | by_extra['cls'] <= by_extra['all']
    assert by_extra['onedl-seg'] == {'onedl-mmcv', 'onedl-mmengine', 'onedl-mmsegmentation'}
    assert by_extra['onedl-seg'] | by_extra['onedl-det'] | by_extra['onedl-cls'] <= by_extra['onedl-all']
    assert 'openmim' in by_extra['tests']


@pytest.mark.integration
def test_installing_the_wheel_here_adds_only_mmincnext(wheel, tmp_path):
    """``pip install --dry-run --report`` of the wheel with this venv's extras ([all,tests] upstream,
    [onedl-all,tests] in a OneDL venv, [tests] beside mmcv-lite) and without extras: pip would install mmincnext and
    nothing else; above all no distribution of the other family over this one's files. --no-index: every
    requirement is met here."""
    def installed(name):
        return any(True for _ in importlib.metadata.distributions(name=name))

    venv_extras = ('[onedl-all,tests]' if installed('onedl-mmengine') else
                   '[tests]' if installed('mmcv-lite') else '[all,tests]')
    installs = {}
    for extras in ('', venv_extras):
        report = tmp_path / f'report{extras}.json'
        pip(['install', '--dry-run', '--no-index', '--report', str(report), f'{wheel}{extras}'])
        installs[extras] = sorted(item['metadata']['name'] for item in json.loads(report.read_text())['install'])
    assert all(names == ['mmincnext'] for names in installs.values()), installs


@pytest.mark.integration
def test_installed_configs_build_the_papers_models(site, tmp_path):
    """The installed configs resolve their _base_ files and custom_imports from the site directory alone."""
    for name in PAPER_CONFIGS:
        require_config(name)
    installed = run_python(site, f"""
import json, os, sys
from pathlib import Path
from mmengine.config import Config
import mmincnext
from mmincnext.utils import build_model_from_config
configs = Path(mmincnext.__file__).parent / '.mim' / 'configs'
sizes = {{name: sum(p.numel() for p in build_model_from_config(Config.fromfile(configs / name)).parameters())
         for name in {PAPER_CONFIGS!r}}}
files = [getattr(m, '__file__', None) or '' for m in list(sys.modules.values())]
from_checkout = [f for f in files if f.startswith({str(REPO) + os.sep!r}) and not f.startswith({str(VENV)!r})]
print(json.dumps(dict(package=mmincnext.__file__, sizes=sizes, from_checkout=from_checkout)))
""", cwd=tmp_path)
    assert Path(installed['package']).is_relative_to(site)
    assert installed['from_checkout'] == []
    checkout = {name: sum(p.numel() for p in build_model_from_config(load_config(name)).parameters())
                for name in PAPER_CONFIGS}
    assert installed['sizes'] == checkout


def test_installed_configs_resolve_where_only_onedl_distributions_are(site, tmp_path):
    """The installed wheel in this venv as mmengine sees a OneDL one (tests/onedl_lookup.py; in the OneDL venv that
    is the real lookup): ``import mmincnext`` fixes the `mmseg::` lookup, and every config in the wheel's .mim loads,
    each mmseg::, mmdet:: and mmpretrain:: base from that package's own directory."""
    for library in TASK_LIBRARIES.values():
        require(library)
    installed = run_python(site, f"""
import json, sys
from pathlib import Path
sys.path.insert(0, {str(REPO / 'tests')!r})
import onedl_lookup
onedl_lookup.simulate()
import functools
from mmengine.config import Config
from mmengine.config import utils as config_utils
config_utils.load = functools.lru_cache(maxsize=None)(config_utils.load)  # as conftest.py: each metafile once
MODULE2PACKAGE = config_utils.MODULE2PACKAGE
import mmincnext
configs = Path(mmincnext.__file__).parent / '.mim' / 'configs'
loaded = []
for path in sorted(configs.rglob('*.py')):
    if '_base_' not in path.parts:
        Config.fromfile(path)
        loaded.append(path.relative_to(configs).as_posix())
print(json.dumps(dict(package=mmincnext.__file__, mmseg=MODULE2PACKAGE['mmseg'], loaded=loaded,
                      lookups=sorted(set(onedl_lookup.LOOKUPS)))))
""", cwd=tmp_path)
    assert Path(installed['package']).is_relative_to(site)
    assert installed['mmseg'] == 'mmseg'
    checkout = sorted(p.relative_to(REPO / 'configs').as_posix() for p in (REPO / 'configs').rglob('*.py')
                      if '_base_' not in p.parts)
    assert installed['loaded'] == checkout
    lookups = dict(installed['lookups'])
    assert set(lookups) == {'mmseg', 'mmdet', 'mmpretrain'}
    assert all(Path(path).name == package for package, path in lookups.items())


@pytest.mark.parametrize('task, datasets', [
    ('seg', {'CheckedADE20KDataset', 'SyntheticScenesDataset'}),
    ('det', {'CheckedCocoDataset', 'SyntheticCocoDataset'}),
    ('cls', {'SyntheticImageNet'}),
])
def test_each_task_needs_only_its_library(site, tmp_path, task, datasets):
    """``import mmincnext`` loads no task library, and ``pip install mmincnext[det]`` brings no mmseg:
    mmincnext.datasets.det registers its datasets in mmdet's registry with the other task libraries missing
    (likewise seg and cls)."""
    library = TASK_LIBRARIES[task]
    require(library)
    loaded = run_python(site, f"""
import importlib, json, sys
import mmincnext, mmincnext.datasets
before = sorted({{name.split('.')[0] for name in sys.modules}} & {set(TASK_LIBRARIES.values())!r})
for name in {sorted(set(TASK_LIBRARIES.values()) - {library})!r}:
    sys.modules[name] = None  # importing it now raises ImportError
module = importlib.import_module('mmincnext.datasets.{task}')
registry = importlib.import_module('{library}.registry').DATASETS
registered = [name for name in module.__all__ if registry.get(name) is getattr(module, name)]
print(json.dumps(dict(package=mmincnext.__file__, before=before, registered=registered)))
""", cwd=tmp_path)
    assert Path(loaded['package']).is_relative_to(site)
    assert loaded['before'] == []
    assert set(loaded['registered']) == datasets


def test_mim_search_lists_the_model_index(site, tmp_path):
    """mim reads the installed model index and its metafiles: it lists every model of the checkout's index."""
    result = run_installed(site, sys.executable, '-m', 'mim', 'search', 'mmincnext', '--valid-config', cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    listed = ast.literal_eval(result.stdout.strip().splitlines()[-1])
    indexed = {model.name for model in load_model_index(str(REPO / 'model-index.yml')).models}
    assert 'upernet_incnext_t_ade20k' in listed and set(listed) == indexed


@pytest.mark.parametrize('command, config, missing', [
    (['train'], 'upernet_incnext_t_ade20k.py', 'ADE20K dataset'),
    (['test', '--checkpoint', 'iter_160000.pth'], 'mask_rcnn_incnext_t_coco.py', 'COCO is not where'),
])
def test_mim_runs_the_installed_tools_on_the_installed_configs(site, tmp_path, command, config, missing):
    """mim finds the config by name and the tool under .mim, and the tool builds the whole model from the installed
    registries: the first thing missing is the dataset, which our layout check names."""
    require_config(config)
    result = run_installed(site, sys.executable, '-m', 'mim', command[0], 'mmincnext', config, *command[1:],
                           cwd=tmp_path)
    output = result.stdout + result.stderr
    mim = site.resolve() / 'mmincnext' / '.mim'
    assert result.returncode != 0
    assert f"{mim / 'tools' / command[0]}.py {mim / 'configs' / config}" in output, output
    assert 'DatasetLayoutError' in output and missing in output, output
