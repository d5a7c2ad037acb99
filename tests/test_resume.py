"""A run killed with SIGKILL and resumed (same command) matches an uninterrupted run step for step.

`resume=auto` picks the newest checkpoint; the Trainer restores weights, optimizer, scheduler, RNG
(python/numpy/torch, so generation samples the same tokens) and the data position (TRL's
RepeatSampler is seeded with `seed`). A test-only reward with varied scores makes the advantages and
gradients non-zero, so the weights and the optimizer state really change between steps.
"""

import json
import random
import time

import pytest

from test_signals import start_run, wait_for_step

pytestmark = pytest.mark.slow

STEPS = 3
REWARD = "+rewards.stack.spread._target_=test_resume.character_spread"


def character_spread(completions, **kwargs):
    """Test-only reward: a deterministic score of the completion text that differs between samples."""
    texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
    return [sum(map(ord, text)) % 97 / 97 for text in texts]


def _steps(out_dir):
    rows = [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines()]
    return {row["step"]: row for row in rows if "loss" in row}


COMPARED = ("loss", "reward", "reward_std", "rewards/spread/mean", "entropy", "grad_norm", "num_tokens",
            "completions/mean_length")


def test_killed_and_resumed_run_matches_uninterrupted_run(tmp_path, tiny_model_dir):
    args = [f"trainer.max_steps={STEPS}", "trainer.save_steps=1", REWARD]
    baseline = start_run(tmp_path / "baseline", *args)
    assert baseline.wait(timeout=1800) == 0, open(baseline.log_path).read()[-3000:]

    kill_after = random.randint(1, STEPS - 1)
    out = tmp_path / "resumed"
    first = start_run(out, *args)
    assert wait_for_step(first, out, kill_after), open(first.log_path).read()[-3000:]
    while not (out / f"checkpoint-{kill_after}" / "gemma-grpo-manifest.json").exists():  # written last
        time.sleep(0.2)
    first.kill()
    first.wait()
    second = start_run(out, *args)
    assert second.wait(timeout=1800) == 0, open(second.log_path).read()[-3000:]
    assert "Resuming from" in open(second.log_path).read()

    expected, got = _steps(tmp_path / "baseline"), _steps(out)
    assert sorted(got) == list(range(1, STEPS + 1)), f"killed after step {kill_after}"
    assert any(row["grad_norm"] > 0 for row in expected.values()), "test reward gave no gradient"
    for step in expected:
        for key in COMPARED:
            assert got[step][key] == pytest.approx(expected[step][key], rel=1e-5, abs=1e-7), (step, key, kill_after)


def test_resume_skips_a_checkpoint_left_incomplete_by_a_kill(tmp_path):
    from grpo.resume import last_checkpoint

    from test_checkpoints import fake_checkpoint

    fake_checkpoint(tmp_path, 1)
    (tmp_path / "checkpoint-2").mkdir()
    assert last_checkpoint("auto", tmp_path) == str(tmp_path / "checkpoint-1")
    assert last_checkpoint("never", tmp_path) is None

