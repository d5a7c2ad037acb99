"""scripts/bench_step.py runs on the tiny model and reports a complete per-step breakdown (not a timing test)."""

import json
import math
import subprocess
import sys

import pytest

from conftest import REPO

PART_KEYS = ("step_s", "generation_s", "reward_s", "logprob_s", "backward_s", "optimizer_s", "eval_s", "other_s")


@pytest.mark.slow
def test_two_tiny_steps_print_and_write_the_breakdown(tmp_path, tiny_model_dir):
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, "scripts/bench_step.py", "--steps", "2", "--repeats", "1", "--variants", "ours",
         "--omp-threads", "1", "--out", str(out), "--", "model=tiny", "trainer.max_completion_length=4",
         "eval.limit=0", "batch.optimizer_steps_per_generation=1", "dynamic_sampling.enabled=false"],  # every step trains
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    for fragment in ("per run, per step (s):", "summary (medians over runs):", "HF vs vLLM rollouts", "not run"):
        assert fragment in result.stdout
    report = json.loads(out.read_text())
    (run,) = report["runs"]
    assert run["variant"] == "ours" and run["logprob_patch"] is True
    assert run["omp_num_threads"] == "1" and run["torch_threads"] == 1
    assert [s["step"] for s in run["steps"]] == [1, 2]
    for step in run["steps"]:
        for key in ("step_s", "generation_s", "reward_s", "logprob_s", "backward_s", "optimizer_s"):
            assert step[key] > 0, (key, step)
        assert step["weight_sync_s"] is None  # rollout=hf
        assert step["completion_tokens"] > 0 and step["completion_tokens_per_s"] > 0
        assert math.isclose(sum(step[k] for k in PART_KEYS[1:]), step["step_s"], rel_tol=1e-6)
    assert run["peak_rss_mb"] > 0 and run["load_s"] > 0
    summary = report["summary"]["ours"]
    assert summary["step_s"] > 0 and summary["completion_tokens_per_s"] > 0
    assert summary["whole_step_tokens_per_s"] == pytest.approx(
        run["steps"][1]["completion_tokens"] / run["steps"][1]["step_s"])
    assert report["machine"]["nproc"] >= 1 and len(report["loadavg_start"]) == 3


def test_ratios_pair_each_round_with_its_plain_run():
    sys.path.insert(0, str(REPO / "scripts"))
    from bench_step import ratios, summarise

    def run(variant, repeat, seconds):
        steps = [{"step": i, "step_s": s, "completion_tokens": 8, "completion_tokens_per_s": 1.0,
                  **{k: 0.0 for k in PART_KEYS[1:]}, "weight_sync_s": None} for i, s in enumerate(seconds, 1)]
        return {"variant": variant, "repeat": repeat, "steps": steps, "peak_rss_mb": 1.0, "cuda_peak_mb": None,
                "load_s": 1.0}

    runs = [run("ours", 0, [9, 2.0]), run("plain", 0, [9, 2.0]), run("ours", 1, [9, 3.3]), run("plain", 1, [9, 3.0])]
    summary = summarise(runs)
    assert summary["ours"]["step_s"] == pytest.approx(2.65)  # median of the runs' steps after the first
    found = ratios(runs, summary)["ours/plain"]
    assert found["per_round"] == pytest.approx([1.0, 1.1])
    assert found["median_ratio"] == pytest.approx(2.65 / 2.5)


def test_whole_step_rate_counts_the_steps_each_rollout_served():
    sys.path.insert(0, str(REPO / "scripts"))
    from bench_step import whole_step_rate

    def step(generation_s, tokens, seconds):
        return {"generation_s": generation_s, "completion_tokens": tokens, "step_s": seconds}

    # one rollout of 2 steps per cycle: the first cycle (warm-up) is left out, the second counts whole
    run = {"steps": [step(5.0, 100, 9.0), step(0.0, None, 2.0), step(4.0, 60, 7.0), step(0.0, None, 3.0)]}
    assert whole_step_rate(run) == pytest.approx(60 / 10.0)
    every_step = {"steps": [step(5.0, 100, 9.0), step(4.0, 40, 8.0), step(4.0, 20, 2.0)]}
    assert whole_step_rate(every_step) == pytest.approx(60 / 10.0)
