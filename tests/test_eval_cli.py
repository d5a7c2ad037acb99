"""The real `python -m eval.run` on the tiny model in a subprocess: both files, the right keys, consistent numbers."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_cli_writes_results_and_samples(tmp_path):
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "eval.run", "+task=gsm8k", "model=tiny", "eval.limit=4",
               "eval.max_new_tokens=8", "eval.domains=[pubmedqa]", "+eval.pubmedqa.max_new_tokens=8", "logger=none",
               f"hydra.run.dir={run_dir}"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}  # GEMMA_GRPO_CACHE, when set, is shared with other tests
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]

    results = json.loads((run_dir / "eval_results.json").read_text())
    for key in ("gsm8k/accuracy_strict", "gsm8k/accuracy_flexible", "gsm8k/correct_strict", "pubmedqa/accuracy",
                "wall_time_s"):
        assert key in results
    assert results["gsm8k/n"] == 4 and results["pubmedqa/n"] == 4
    assert results["gsm8k/accuracy_strict"] == results["gsm8k/correct_strict"] / 4
    assert results["model"] == "tiny"

    samples = [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]
    assert [s["task"] for s in samples] == ["gsm8k"] * 4 + ["pubmedqa"] * 4
    for key in ("prompt", "completion", "extracted_strict", "extracted_flexible", "gold", "correct_strict",
                "correct_flexible"):
        assert key in samples[0]
    assert sum(s["correct_strict"] for s in samples[:4]) == results["gsm8k/correct_strict"]
    assert "gsm8k/accuracy_strict" in done.stdout

