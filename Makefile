# `make demo`: set up .venv (first run: ~20 min, mostly building mmcv) and train + evaluate the embedded demo.
# `make test`: set up .venv and run the test suite.
# `make test-onedl`: set up .venv-onedl (the OneDL forks of the OpenMMLab libraries) and run the integration subset.
PYTHON := .venv/bin/python
ONEDL_PYTHON := .venv-onedl/bin/python

.PHONY: setup demo test setup-onedl test-onedl
setup:
	bash tools/setup_env.sh

demo: setup
	$(PYTHON) tools/train.py configs/demo/upernet_incnext_demo.py

test: setup
	$(PYTHON) -m pytest tests

setup-onedl:
	bash tools/setup_env.sh --onedl

test-onedl: setup-onedl
	$(ONEDL_PYTHON) -m pytest -m integration tests
