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


version = {}
exec((ROOT / 'mmincnext' / 'version.py').read_text(), version)
tasks = {task: read_requirements(f'{task}.txt') for task in ('seg', 'det', 'cls')}

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
        python_requires='>=3.8',
        install_requires=read_requirements('runtime.txt'),
        extras_require={
            **tasks,
            'all': [req for reqs in tasks.values() for req in reqs] + read_requirements('optional.txt'),
            'tests': read_requirements('tests.txt'),
        },
        license='Apache-2.0',
        license_files=['LICENSE'],
        zip_safe=False,
    )
