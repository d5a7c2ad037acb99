"""SIGTERM / SIGINT (preemption, Ctrl-C): checkpoint at the next step boundary, exit 0, say how to resume."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import REPO

pytestmark = pytest.mark.slow

TINY_RUN = [
    "+task=gsm8k", "model=tiny", "logger=none", "eval.limit=0", "trainer.max_completion_length=4",
    "batch.prompts_per_step=1", "trainer.num_generations=2",
    # every step generates and trains (the CPU profile's rollouts serve 4 steps and skip zero-spread groups)
    "batch.optimizer_steps_per_generation=1", "dynamic_sampling.enabled=false",
]


def start_run(out_dir, *overrides):
    """Start the training CLI; output goes to out_dir/cli.log (a pipe could fill and block it)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    log_file = open(out_dir.parent / f"{out_dir.name}.cli.log", "w")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "tests")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "grpo.train", *TINY_RUN, *overrides, f"hydra.run.dir={out_dir}"],
        cwd=REPO, env=env, stdout=log_file, stderr=subprocess.STDOUT,
    )
    proc.log_path = log_file.name
    return proc


def wait_for_step(proc, out_dir, step, timeout=900):
    """Block until metrics.jsonl has a training row for `step` (or the process ends)."""
    deadline = time.monotonic() + timeout
    metrics = out_dir / "metrics.jsonl"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        if metrics.exists():
            for line in metrics.read_text().splitlines():
                try:
                    if json.loads(line).get("step") == step and "loss" in line:
                        return True
                except json.JSONDecodeError:
                    pass
        time.sleep(0.5)
    raise TimeoutError(f"no step {step} in {metrics}")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_checkpoints_and_exits_zero_with_a_resume_line(tmp_path, tiny_model_dir, sig):
    out = tmp_path / "run"
    proc = start_run(out, "trainer.max_steps=50", "trainer.save_steps=1000")
    assert wait_for_step(proc, out, 1), open(proc.log_path).read()[-3000:]
    proc.send_signal(sig)
    rc = proc.wait(timeout=900)
    output = open(proc.log_path).read()
    assert rc == 0, output[-3000:]
    checkpoints = sorted(out.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    assert checkpoints, output[-3000:]
    last = checkpoints[-1]
    assert 1 <= int(last.name.split("-")[1]) < 50
    for name in ("trainer_state.json", "optimizer.pt", "scheduler.pt", "rng_state.pth", "adapter_model.safetensors"):
        assert (last / name).exists(), name
    assert f"stopped by {sig.name} after a checkpoint; continue it with: python -m grpo.train <the same overrides> resume={out}" in output


# ~1 min per generation of 1,000 tokens here: the stop must not wait for it
LONG_GENERATION = ["trainer.max_steps=50", "trainer.save_steps=1000", "trainer.max_completion_length=1000"]


def test_a_signal_during_a_long_generation_stops_within_seconds_and_discards_that_step(tmp_path, tiny_model_dir):
    """Step 2's rollout (1,000 tokens) is cut short: step 1 is kept (checkpoint-1), step 2 is not trained on."""
    out = tmp_path / "run"
    proc = start_run(out, *LONG_GENERATION)
    assert wait_for_step(proc, out, 1), open(proc.log_path).read()[-3000:]
    time.sleep(2)  # into step 2's generation, which alone takes far longer than the test allows
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    rc = proc.wait(timeout=900)
    delay = time.monotonic() - sent
    output = open(proc.log_path).read()
    assert rc == 0, output[-3000:]
    assert "SIGTERM: discarded the unfinished step 2" in output, output[-3000:]
    assert [p.name for p in out.glob("checkpoint-*")] == ["checkpoint-1"]
    assert (out / "checkpoint-1" / "gemma-grpo-manifest.json").exists()
    trained = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines() if '"loss"' in line]
    assert trained == [1]
    print(f"stop delay {delay:.1f} s")
    assert delay < 20, f"stopped {delay:.1f} s after SIGTERM"  # target: 30 s on CPU (issue 20); 9-12 s measured


def test_a_second_signal_exits_at_once(tmp_path, tiny_model_dir):
    out = tmp_path / "run"
    proc = start_run(out, "trainer.max_steps=50", "trainer.save_steps=1000")
    assert wait_for_step(proc, out, 1), open(proc.log_path).read()[-3000:]
    proc.send_signal(signal.SIGTERM)  # the first one saves a checkpoint and writes the model card (seconds)
    time.sleep(0.5)  # two signals of one kind sent together can arrive as one
    proc.send_signal(signal.SIGTERM)
    rc = proc.wait(timeout=60)
    assert rc == 128 + signal.SIGTERM, open(proc.log_path).read()[-3000:]
    assert "exiting at once, without saving" in open(proc.log_path).read()


def test_a_chained_run_stopped_during_sft_checkpoints_it_and_does_not_start_grpo(tmp_path, tiny_model_dir):
    out = tmp_path / "run"
    proc = start_run(out, "sft=gsm8k_cot", "sft.trainer.max_steps=50", "sft.trainer.save_steps=1000",
                     "sft.trainer.per_device_train_batch_size=1", "sft.trainer.max_length=1024", "task.example=null")
    assert wait_for_step(proc, out / "sft", 1), open(proc.log_path).read()[-3000:]
    proc.send_signal(signal.SIGTERM)
    rc = proc.wait(timeout=900)
    output = open(proc.log_path).read()
    assert rc == 0, output[-3000:]
    assert f"during the SFT stage, so GRPO does not start; continue with: python -m grpo.train <the same overrides> resume={out}" in output
    assert not (out / "grpo").exists()
    checkpoints = list((out / "sft").glob("checkpoint-*"))
    assert len(checkpoints) == 1 and (checkpoints[0] / "gemma-grpo-manifest.json").exists()
