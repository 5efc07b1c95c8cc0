import os
import platform
import shutil
import sys
from pathlib import Path

from setuptools import find_packages, setup

ROOT = Path(__file__).resolve().parent
# What OpenMMLab packages carry in <package>/.mim/, where `mim train/test/search` and mmengine's `mmincnext::`
# config prefix look for them. model-index.yml lists the metafiles under configs/.
MIM_RESOURCES = ('configs', 'tools', 'model-index.yml')


def add_mim_extension():
    """Put MIM_RESOURCES into mmincnext/.mim, as mmseg's and mmdet's setup.py do: links into the checkout for an
    editable install, copies for a wheel or an sdist (MANIFEST.in then selects the files to ship)."""
    editable = 'develop' in sys.argv or 'editable_wheel' in sys.argv  # editable_wheel: pip's PEP 660 `install -e`
    if editable and platform.system() != 'Windows':
        mode = 'symlink'
    elif editable or 'bdist_wheel' in sys.argv or 'sdist' in sys.argv:
        mode = 'copy'
    else:
        return
    mim_path = ROOT / 'mmincnext' / '.mim'
    mim_path.mkdir(exist_ok=True)
    for name in MIM_RESOURCES:
        src, dst = ROOT / name, mim_path / name
        if not src.exists():  # building from an sdist, whose .mim holds the copies already
            continue
        if dst.is_symlink() or dst.is_file():
            dst.unlink()
        elif dst.is_dir():
            shutil.rmtree(dst)
        if mode == 'symlink':
            dst.symlink_to(os.path.relpath(src, mim_path))
        elif src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns('__pycache__'))
        else:
            shutil.copyfile(src, dst)


def read_requirements(name):
    lines = (ROOT / 'requirements' / name).read_text().splitlines()
    return [line for line in (raw.split('#')[0].strip() for raw in lines) if line]


def family_extras():
    """The extras of both OpenMMLab families. Upstream (as before): [mminstall] (mmcv, mmengine: OpenMMLab's name for
    that extra), [seg], [det], [cls], [all]. OneDL (the maintained forks: the same import names from onedl-*
    distributions): [onedl], [onedl-seg], [onedl-det], [onedl-cls], [onedl-all]. install_requires names neither
    family, so that pip never installs one family's files over the other's; `import mmincnext` says what is missing."""
    extras = {}
    for prefix, suffix, base in (('', '', 'mminstall'), ('onedl-', '-onedl', 'onedl')):
        foundation = read_requirements(f'mminstall{suffix}.txt')
        tasks = {task: read_requirements(f'{task}{suffix}.txt') for task in ('seg', 'det', 'cls')}
        extras[base] = foundation
        extras.update({f'{prefix}{task}': foundation + reqs for task, reqs in tasks.items()})
        extras[f'{prefix}all'] = foundation + [req for reqs in tasks.values() for req in reqs] \
            + read_requirements('optional.txt')
    return extras


version = {}
exec((ROOT / 'mmincnext' / 'version.py').read_text(), version)

if __name__ == '__main__':
    add_mim_extension()
    setup(
        name='mmincnext',
        version=version['__version__'],
        description='InceptionNeXt backbones, configs and tools for mmsegmentation, mmdetection and mmpretrain',
        long_description=(ROOT / 'README.md').read_text(encoding='utf-8'),
        long_description_content_type='text/markdown',
        packages=find_packages(include=['mmincnext', 'mmincnext.*']),
        include_package_data=True,
        # 3.9: the oldest Python numpy 1.26 and torch 2.1 share (CI's .venv-min, docs/compatibility.md)
        python_requires='>=3.9',
        install_requires=read_requirements('runtime.txt'),
        extras_require={
            **family_extras(),
            'tests': read_requirements('tests.txt'),
        },
        license='Apache-2.0',
        license_files=['LICENSE'],
        zip_safe=False,
    )
