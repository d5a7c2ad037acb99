#!/usr/bin/env bash
# The GPU path on a lent GPU machine (no internet, no vLLM), in under 8 minutes. From the repository root:
#   make gpu-wheels               # once, on a machine with internet: fills .whl/ (~62 MB)
#   bash scripts/gpu_check.sh     # on the GPU machine; extra arguments go to scripts/gpu_check.py
# Installs the wheels in .whl/ that the image lacks into /tmp/site (on PYTHONPATH), then runs
# scripts/gpu_check.py: the gpu-marked tests, 3 GRPO steps each of 1B- and 4B-shaped random Gemma 3
# models (bf16, LoRA, rollout=hf) with step time, completion tokens/s and peak GPU memory, and the bf16
# weight-sync drift check. Paste its summary into docs/performance.md.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
SITE=${GPU_CHECK_SITE:-/tmp/site}

if compgen -G ".whl/*.whl" > /dev/null; then
  # only what the image does not have: a second copy on PYTHONPATH would shadow the image's own
  missing=$("$PY" - .whl/*.whl <<'PY'
import sys
from importlib.metadata import PackageNotFoundError, version

for wheel in sys.argv[1:]:
    name = wheel.rsplit("/", 1)[-1].split("-")[0]
    try:
        version(name)
    except PackageNotFoundError:
        print(wheel)
PY
)
  if [ -n "$missing" ]; then
    echo "== installing into $SITE: $(echo "$missing" | xargs -n1 basename | tr '\n' ' ')"
    # shellcheck disable=SC2086
    "$PY" -m pip install -q --no-deps --no-index --target "$SITE" $missing || exit 1
  fi
  export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
fi
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 WANDB_MODE=disabled TOKENIZERS_PARALLELISM=false
# 8 minutes in all: the script's own budget (--budget-s; a later --budget-s in "$@" wins) and a hard stop
exec timeout $((470 - SECONDS)) "$PY" scripts/gpu_check.py --budget-s $((440 - SECONDS)) "$@"
