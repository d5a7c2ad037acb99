"""The real training CLI in a subprocess, on the tiny model."""

import json
import math

import pytest

from conftest import run_cli

pytestmark = pytest.mark.slow


def test_two_step_run_writes_adapter_and_finite_metrics(tmp_path, tiny_model_dir):
    result = run_cli(
        "grpo.train",
        "+task=gsm8k",
        "model=tiny",
        "trainer.max_steps=2",
        "trainer.max_completion_length=8",
        "logger=none",
        "eval.limit=0",
        "batch.optimizer_steps_per_generation=1",  # every step generates and trains (the CPU profile: 4)
        "dynamic_sampling.enabled=false",
        f"hydra.run.dir={tmp_path}",
    )
    assert result.returncode == 0, result.output[-3000:]
    assert (tmp_path / "adapter" / "adapter_config.json").exists()
    from peft import PeftConfig

    assert PeftConfig.from_pretrained(tmp_path / "adapter").r == 16
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    steps = [row for row in rows if "loss" in row]
    assert [row["step"] for row in steps] == [1, 2]
    for row in steps:
        for key in ("loss", "reward", "reward_std", "rewards/correctness/mean", "completions/mean_length"):
            assert math.isfinite(row[key]), (key, row)
    first_lines = result.output.split("Data:")[0]
    for fragment in ("model=tiny", "device=cpu", "rollout=hf", "steps=2", f"output_dir={tmp_path}", "batch (derived)"):
        assert fragment in first_lines

