"""Malformed rows in a user's `task.data_files` are counted by reason and left out; the rest train."""

import json
import logging

import pytest

from compose import compose_train

GOOD = {"question": "Ann has 2 pens and buys 3 more. How many pens?", "answer": "2 + 3 = 5\n#### 5"}


def _fuzz_file(path, good_rows=3):
    lines = [json.dumps(GOOD).encode()] * good_rows + [
        json.dumps({"answer": "#### 4"}).encode(),                           # missing question
        json.dumps({"question": "What is 2+2?"}).encode(),                   # missing answer
        json.dumps({"question": "   ", "answer": "#### 4"}).encode(),        # empty question
        json.dumps({"question": "Name a colour.", "answer": "#### blue"}).encode(),  # non-numeric answer
        json.dumps({"question": "x" * 1_000_000, "answer": "#### 1"}).encode(),     # a 1 MB row
        b'{"question": "caf\xe9 \xff", "answer": "#### 3"}',               # not UTF-8
        b'{"question": "unterminated',                                      # not JSON
        json.dumps([1, 2, 3]).encode(),                                      # JSON, not an object
        json.dumps({"question": 7, "answer": "#### 7"}).encode(),           # wrong type
    ]
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def test_malformed_rows_are_counted_by_reason(tmp_path, caplog):
    from tasks import build_task

    data = _fuzz_file(tmp_path / "train.jsonl")
    cfg = compose_train("+task=gsm8k", f"task.data_files={{train:'{data}'}}")
    with caplog.at_level(logging.INFO, logger="tasks.base"):
        dataset, report = build_task(cfg.task).hf_dataset("train")
    assert len(dataset) == 3 and report.total == 12 and report.kept == 3
    assert report.dropped == {
        "missing question or answer": 3,
        "empty question": 1,
        "no numeric final answer": 1,
        "question too long": 1,
        "unreadable line": 3,
    }
    assert "12 rows, 3 usable, 9 left out" in caplog.text


def test_a_file_with_no_usable_row_is_refused_clearly(tmp_path):
    from tasks import build_task

    data = _fuzz_file(tmp_path / "train.jsonl", good_rows=0)
    cfg = compose_train("+task=gsm8k", f"task.data_files={{train:'{data}'}}")
    with pytest.raises(ValueError, match="no usable rows"):
        build_task(cfg.task).hf_dataset("train")


def test_missing_data_file_is_a_config_error(tmp_path):
    from grpo.validate import ConfigError, validate_training_config

    cfg = compose_train(
        "+task=gsm8k", "model=tiny", "profile=cpu", f"output_dir={tmp_path}",
        f"task.data_files={{train:'{tmp_path / 'nope.jsonl'}'}}",
    )
    with pytest.raises(ConfigError, match="task.data_files.train"):
        validate_training_config(cfg, cuda=False)


@pytest.mark.slow
def test_training_runs_on_the_good_rows_and_reports_the_bad(tmp_path, tiny_model_dir, caplog):
    """End to end, in-process: one step on the fuzzed file; also checks the guards' metrics and warning."""
    from grpo.train import run_training

    data = _fuzz_file(tmp_path / "train.jsonl")
    out = tmp_path / "run"
    cfg = compose_train(
        "+task=gsm8k", "model=tiny", "profile=cpu", "logger=none", "eval.limit=0", f"output_dir={out}",
        f"task.data_files={{train:'{data}'}}", "trainer.max_steps=1", "trainer.max_completion_length=4",
        "batch.prompts_per_step=1", "trainer.num_generations=2", "guard.zero_std_window=1", "batch.optimizer_steps_per_generation=1", "dynamic_sampling.enabled=false",
    )
    with caplog.at_level(logging.INFO):
        run_training(cfg)
    assert "3 usable, 9 left out" in caplog.text
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    step = [row for row in rows if "loss" in row][0]
    assert step["train/skipped_nonfinite_updates"] == 0 and "frac_reward_zero_std" in step
    if step["frac_reward_zero_std"] >= 0.9:  # the random tiny model scores every completion 0
        assert "too hard or too easy" in caplog.text
    assert (out / "adapter" / "adapter_config.json").exists()
