# make train   -> python -m grpo.train +task=gsm8k (pass more overrides with ARGS="trainer.max_steps=20 ...")
# make test    -> the test suite (offline, CPU)
# Both create .venv on first use and install what they need.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
ARGS ?=
STAMP := $(VENV)/.installed

.PHONY: install train eval test test-fast bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first and pinned: the CPU wheel on CPU-only machines here, the CUDA build from PyPI elsewhere;
	# a bare `torch` requirement would pull a multi-GB CUDA build onto CPU machines.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

train: $(STAMP)
	$(PY) -m grpo.train +task=gsm8k $(ARGS)

eval: $(STAMP)
	$(PY) -m eval.run +task=gsm8k $(ARGS)

test: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q $(ARGS)

test-fast: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q -m "not slow" $(ARGS)

clean:
	rm -rf $(VENV) outputs multirun
