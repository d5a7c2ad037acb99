#!/usr/bin/env bash
# scripts/gpu_check.sh as a lent GPU machine would run it, on this CPU: a Python 3.12 venv with what the
# device image holds (torch 2.11, transformers 5.17; peft, accelerate, pyarrow and pandas at versions
# older or newer than ours, so the wheel install meets packages it must leave alone), no wandb, no GGUF
# package; the wheels of `make gpu-wheels`; the committed tree only (git archive). Tiny shapes: this
# checks the install and the script, not the GPU figures. ~4 GB of downloads the first time, then ~3 min.
#   bash scripts/rehearse_gpu_check.sh [extra gpu_check.py arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
PY312=${PY312:-$(command -v python3.12 || echo /root/.pyenv/versions/3.12.1/bin/python)}
IMAGE=${IMAGE_VENV:-/tmp/gpu-image-venv}
TREE=$(mktemp -d)/tree

if [ ! -x "$IMAGE/bin/python" ]; then
  "$PY312" -m venv "$IMAGE"
  # the image's own packages (docs/gpu.md): versions its reading gave where known, else plausible ones
  "$IMAGE/bin/pip" install -q torch==2.11.0 torchvision==0.26.0 transformers==5.17.0 peft==0.18.1 \
    accelerate==1.10.1 numpy pandas==3.1.1 pyarrow==19.0.1 fsspec==2026.9.0 pytest psutil pillow requests \
    rich xxhash pyyaml tqdm
fi
make gpu-wheels
mkdir -p "$TREE" && git archive HEAD | tar -x -C "$TREE" && cp -r .whl "$TREE/"
cd "$TREE"
rm -rf /tmp/site /tmp/gpu-check  # what gpu_check.sh installs into and works in
PYTHON="$IMAGE/bin/python" bash scripts/gpu_check.sh --shapes tiny tiny-mm --steps 2 "$@"
