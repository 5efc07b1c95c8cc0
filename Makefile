# `make demo`: set up .venv (first run: ~20 min, mostly building mmcv) and train + evaluate the embedded demo.
# `make test`: set up .venv and run the test suite.
# `make test-onedl`: set up .venv-onedl (the OneDL forks of the OpenMMLab libraries on Python 3.12 and torch 2.12) and
# run the integration subset, the fused mixer's tests (Triton's CPU interpreter) and the GPU check's dry run.
# `make mutation`: set up .venv and run the mutation check (tests/mutation/run.py: named bugs put into a temporary copy
# of the repository, one at a time; it reports which the tests kill). On demand, not in CI: about 10 minutes.
# `make test-min`: set up .venv-min (the oldest supported stack: Python 3.9, torch 2.1, numpy 1.26, mmcv-lite, no task
# library) and run the whole suite; tests that need mmcv's compiled ops or mmseg/mmdet/mmpretrain skip, saying so.
PYTHON := .venv/bin/python
ONEDL_PYTHON := .venv-onedl/bin/python
MIN_PYTHON := .venv-min/bin/python

.PHONY: setup demo test mutation setup-onedl test-onedl setup-min test-min
setup:
	bash tools/setup_env.sh

demo: setup
	$(PYTHON) tools/train.py configs/demo/upernet_incnext_demo.py

test: setup
	$(PYTHON) -m pytest tests

mutation: setup
	$(PYTHON) tests/mutation/run.py $(MUTATION_ARGS)

setup-onedl:
	bash tools/setup_env.sh --onedl

test-onedl: setup-onedl
	$(ONEDL_PYTHON) -m pytest -m integration tests
	$(ONEDL_PYTHON) -m pytest tests/test_ops/test_fused_mixer.py tests/test_tools/test_gpu_check.py

setup-min:
	bash tools/setup_env.sh --min

test-min: setup-min
	$(MIN_PYTHON) -m pytest tests

# `make gpu-wheels` (a machine that reaches PyPI): the pure-Python wheels tools/gpu_check.sh installs, for Python 3.12.
# `make gpu-check` (a CUDA machine, no network needed): the CUDA tests and the GPU benchmark grid (tools/gpu_check.py);
# GPU_CHECK_ARGS passes options (e.g. --limit-s 480). Without make: bash tools/gpu_check.sh work_dirs/gpu_check.
GPU_CHECK_ARGS ?=
GPU_WHEELS := mmengine==0.10.7 mmcv-lite==2.1.0 addict==2.4.0 yapf==0.43.0 termcolor==3.3.0 platformdirs==4.14.8
.PHONY: gpu-wheels gpu-check
gpu-wheels:
	python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
	    --platform any -d .whl $(GPU_WHEELS)

gpu-check:
	bash tools/gpu_check.sh work_dirs/gpu_check $(GPU_CHECK_ARGS)
