"""scripts/bench_rollout.py runs and reports tokens/s per backend and batch size (not a timing test).

The HF backends run here on the tiny model; the vLLM backend runs in the vLLM suite (`make test-vllm`).
"""

import json
import subprocess
import sys
from importlib.util import find_spec

import pytest

from conftest import REPO


def bench(tmp_path, *backend_args):
    out = tmp_path / "rollout.json"
    result = subprocess.run(
        [sys.executable, "scripts/bench_rollout.py", "--model", "tiny", "--batch-sizes", "2", "4",
         "--new-tokens", "5", "--json", str(out), *backend_args],
        cwd=REPO, capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    return json.loads(out.read_text())


def check_runs(backend: dict) -> None:
    assert [run["batch"] for run in backend["runs"]] == [2, 4]
    for run in backend["runs"]:
        assert run["tokens"] == run["batch"] * 5  # EOS ignored: every sequence is exactly --new-tokens long
        assert run["tokens_per_s"] > 0


@pytest.mark.slow
def test_hf_backends_report_every_batch_size(tmp_path, tiny_model_dir):
    report = bench(tmp_path, "--backends", "hf")
    assert report["model"] == "tiny"
    assert [(b["backend"], b["attention"]) for b in report["backends"]] == [("hf", "eager"), ("hf", "sdpa")]
    for backend in report["backends"]:
        check_runs(backend)


@pytest.mark.vllm
@pytest.mark.slow
@pytest.mark.skipif(find_spec("vllm") is None, reason="needs vLLM (make test-vllm)")
def test_vllm_backend_reports_every_batch_size(tmp_path, tiny_model_dir):
    report = bench(tmp_path, "--backends", "vllm")
    (backend,) = report["backends"]
    assert backend["backend"] == "vllm" and backend["dtype"] == "float32" and backend["start_s"] > 0
    check_runs(backend)
