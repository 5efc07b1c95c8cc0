from pathlib import Path

from setuptools import find_packages, setup


def read_requirements(name):
    lines = Path(__file__).with_name('requirements').joinpath(name).read_text().splitlines()
    return [line for line in (raw.split('#')[0].strip() for raw in lines) if line]


version = {}
exec(Path(__file__).with_name('mmincnext').joinpath('version.py').read_text(), version)

setup(
    name='mmincnext',
    version=version['__version__'],
    description='InceptionNeXt backbones, configs and tools for mmsegmentation and mmdetection',
    long_description=Path(__file__).with_name('README.md').read_text(encoding='utf-8'),
    long_description_content_type='text/markdown',
    packages=find_packages(include=['mmincnext', 'mmincnext.*']),
    python_requires='>=3.8',
    install_requires=read_requirements('runtime.txt'),
    extras_require={'all': read_requirements('optional.txt'), 'tests': read_requirements('tests.txt')},
    license='Apache-2.0',
)
