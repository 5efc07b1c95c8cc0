# `make demo`: set up .venv (first run: ~20 min, mostly building mmcv) and train + evaluate the embedded demo.
# `make test`: set up .venv and run the test suite.
PYTHON := .venv/bin/python

.PHONY: setup demo test
setup:
	bash tools/setup_env.sh

demo: setup
	$(PYTHON) tools/train.py configs/demo/upernet_incnext_demo.py

test: setup
	$(PYTHON) -m pytest tests
