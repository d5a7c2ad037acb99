"""Two processes on CPU (gloo), launched as docs/distributed.md tells users: `torchrun --nproc_per_node 2
-m grpo.train ...` (`accelerate launch --cpu --num_processes 2` starts one process).

Rollouts come from tests/fixtures/layout_free_rollouts (a sitecustomize that makes `generate` a function
of the prompt and the row's place in its group): TRL seeds each rank differently, so sampled completions,
and every loss after them, would differ between one process and two. The rest is the real path.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

from conftest import REPO

# xdist_group: one worker runs every test that opens torch.distributed's default port (make test: pytest -n 2)
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("torch_distributed")]

FIXTURE = REPO / "tests" / "fixtures" / "layout_free_rollouts"
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
OVERRIDES = [
    "+task=gsm8k", "model=tiny", "logger=none", "eval.limit=0", "trainer.max_completion_length=12",
    "~rewards.stack", "+rewards.stack.even._target_=synthetic_rewards.even_token_share",
    "trainer.learning_rate=1e-3",  # large enough that step 2's loss depends on step 1's update
    "batch.optimizer_steps_per_generation=1", "dynamic_sampling.enabled=false",  # every step generates and trains
    "rollout.drop_finished_rows=false",  # the fixture replaces generate(), which our decode loop would bypass
]


def _env(**extra) -> dict:
    path = os.pathsep.join([str(FIXTURE), str(REPO / "tests"), str(REPO)])
    # one thread per rank: two ranks share the two cores
    return {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1", **extra}


def _launch(cwd: Path, launcher: list[str], *overrides: str, timeout: int = 300, **env):
    result = subprocess.run([*launcher, "-m", "grpo.train", *OVERRIDES, *overrides], cwd=cwd, env=_env(**env),
                            capture_output=True, text=True, timeout=timeout)
    result.output = result.stdout + result.stderr
    assert result.returncode == 0, result.output[-4000:]
    return result


def _only_run_dir(cwd: Path) -> Path:
    runs = list((cwd / "outputs" / "gsm8k").iterdir())
    assert len(runs) == 1, f"one run dir per launch, found {runs}"
    return runs[0]


def _train_rows(run_dir: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [row for row in rows if "loss" in row]


def test_two_ranks_write_one_run_and_train_as_one_process(tmp_path):
    single, double = tmp_path / "one", tmp_path / "two"
    single.mkdir(), double.mkdir()
    # 3 evaluation questions: rank 0 answers two, rank 1 one and a repeat (equal shares)
    # batch.share_prompt_forward steps aside for two processes: off in both, so both sum the same terms
    steps = ["trainer.max_steps=2", "trainer.save_strategy=no", "eval.limit=3", "batch.share_prompt_forward=false"]
    _launch(single, [sys.executable], *steps)
    _launch(double, TORCHRUN, *steps)

    one, two = _only_run_dir(single), _only_run_dir(double)
    assert (two / "README.md").is_file() and (two / "resolved_config.yaml").is_file()
    assert (two / "train_rank1.log").is_file()  # rank 1 logs beside rank 0's train.log, not into it
    assert "2 process(es)" in (two / "train.log").read_text()
    rows_one, rows_two = _train_rows(one), _train_rows(two)
    assert [row["step"] for row in rows_two] == [1, 2], "one metrics.jsonl row per step, from rank 0"
    # Same global batch (2 prompts x 4 completions): one process holds 8, each rank 4 and the gradients
    # are all-reduced. fp32 sums in another order differ by ~1e-7 relative (measured: 1e-7 on the loss,
    # 2e-7 on the grad norm); a wrong reduction or loss normalisation is off by whole factors.
    for a, b in zip(rows_one, rows_two, strict=True):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-5, abs=1e-7)
        assert b["grad_norm"] == pytest.approx(a["grad_norm"], rel=1e-5)
        assert a["grad_norm"] > 0
    for step in (0, 2):  # every rank evaluated its share; rank 0 wrote all answers, in order
        samples_one = (one / f"samples_step-{step}.jsonl").read_text().splitlines()
        assert len(samples_one) == 3
        assert (two / f"samples_step-{step}.jsonl").read_text().splitlines() == samples_one
    weights_one = load_file(one / "adapter" / "adapter_model.safetensors")
    weights_two = load_file(two / "adapter" / "adapter_model.safetensors")
    assert weights_one.keys() == weights_two.keys()
    for name, tensor in weights_one.items():
        assert (tensor - weights_two[name]).abs().max() < 1e-5, name


def _rank_pids(launcher_pid: int, timeout: float = 120) -> dict[int, int]:
    import psutil

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = {}
        for child in psutil.Process(launcher_pid).children(recursive=True):
            try:
                rank = child.environ().get("RANK")
            except psutil.Error:
                continue
            if rank is not None:
                found[int(rank)] = child.pid
        if len(found) == 2:
            return found
        time.sleep(0.5)
    raise AssertionError("torchrun did not start two ranks")


def _wait_for_step(metrics: Path, step: int, proc, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if metrics.exists() and any(row["step"] >= step for row in _train_rows(metrics.parent)):
            return
        assert proc.poll() is None, "the run ended before the signal"
        time.sleep(0.2)
    raise AssertionError(f"no step {step} in {metrics}")


def test_sigterm_to_one_rank_stops_both_at_one_checkpoint_then_two_ranks_resume(tmp_path):
    log = (tmp_path / "launch.log").open("w")
    proc = subprocess.Popen([*TORCHRUN, "-m", "grpo.train", *OVERRIDES, "trainer.max_steps=40",
                             "trainer.save_steps=100"], cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
                            env=_env(LAYOUT_FREE_ROLLOUT_DELAY_S="1.5"))
    try:
        pids = _rank_pids(proc.pid)
        deadline = time.monotonic() + 180
        while not list((tmp_path / "outputs").glob("gsm8k/*/metrics.jsonl")):
            assert time.monotonic() < deadline and proc.poll() is None, (tmp_path / "launch.log").read_text()[-3000:]
            time.sleep(0.2)
        run_dir = _only_run_dir(tmp_path)
        _wait_for_step(run_dir / "metrics.jsonl", 1, proc)
        os.kill(pids[1], signal.SIGTERM)  # rank 1 only
        rc = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    output = (tmp_path / "launch.log").read_text()
    assert rc == 0, output[-4000:]
    checkpoints = sorted(run_dir.glob("checkpoint-*"))
    assert len(checkpoints) == 1, checkpoints
    stopped_at = int(checkpoints[0].name.split("-")[1])
    assert 1 <= stopped_at < 40
    rank0, rank1 = (run_dir / "train.log").read_text(), (run_dir / "train_rank1.log").read_text()
    assert "SIGTERM received" in rank1 and "SIGTERM received" not in rank0
    assert f"a stop signal to another rank: stopping at step {stopped_at}" in rank0
    assert [row["step"] for row in _train_rows(run_dir)] == list(range(1, stopped_at + 1))

    _launch(tmp_path, TORCHRUN, f"resume={run_dir}", f"trainer.max_steps={stopped_at + 1}",
            "trainer.save_steps=100")
    assert _only_run_dir(tmp_path) == run_dir
    assert f"Resuming from {checkpoints[0]}" in (run_dir / "train.log").read_text()
    assert [row["step"] for row in _train_rows(run_dir)] == list(range(1, stopped_at + 2))
