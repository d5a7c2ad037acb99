"""Sweeps: Hydra multiruns over group size and learning rate finish, and summarise every trial; the
W&B sweep file names real config keys and produces command lines that compose and validate."""

import csv
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from compose import compose_train
from conftest import REPO, run_cli
from grpo.validate import validate_training_config

TINY_TRIAL = (
    "+task=gsm8k",
    "model=tiny",
    "trainer.max_steps=1",
    "trainer.max_completion_length=4",
    "batch.prompts_per_step=1",
    "logger=none",
    "eval.limit=0",
    "trainer.save_strategy=no",
)


def _multirun(sweep_dir: Path, *overrides: str):
    # about 20 s of CPU per trial, but minutes of wall time on a shared, loaded machine
    result = run_cli("grpo.train", "-m", *TINY_TRIAL, *overrides, f"hydra.sweep.dir={sweep_dir}", timeout=1800)
    rows = []
    if (sweep_dir / "summary.csv").exists():
        with (sweep_dir / "summary.csv").open() as handle:
            rows = list(csv.DictReader(handle))
    return result, rows


@pytest.mark.slow
def test_multirun_over_odd_group_sizes_finishes_and_summarises_every_trial(tmp_path):
    result, rows = _multirun(tmp_path, "trainer.num_generations=2,3", "trainer.learning_rate=1e-5,1e-4")
    assert result.returncode == 0, result.output[-3000:]
    assert len(rows) == 4
    assert [row["status"] for row in rows] == ["completed"] * 4
    settings = {(int(row["trainer.num_generations"]), float(row["trainer.learning_rate"])) for row in rows}
    assert settings == {(2, 1e-5), (2, 1e-4), (3, 1e-5), (3, 1e-4)}
    for row in rows:
        assert row["steps"] == "1"
        assert 0.0 <= float(row["final_reward"]) <= 10.0, row
        # the trial dir is named after its settings, and holds the trial's own run
        trial_dir = Path(row["output_dir"])
        assert f"trainer.num_generations={row['trainer.num_generations']}" in trial_dir.name
        assert (trial_dir / "adapter" / "adapter_config.json").exists()
    markdown = (tmp_path / "summary.md").read_text()
    assert "4 trials, 4 completed" in markdown
    assert "model=tiny" in markdown  # shared settings are listed once, above the table


@pytest.mark.slow
def test_a_failing_trial_is_recorded_and_the_others_still_run(tmp_path):
    # num_generations=1 is refused by validation; it runs first, and must not stop the trial after it
    result, rows = _multirun(tmp_path, "trainer.num_generations=1,2")
    by_group = {row["trainer.num_generations"]: row for row in rows}
    assert set(by_group) == {"1", "2"}, result.output[-3000:]
    assert by_group["1"]["status"] == "failed"
    assert "trainer.num_generations" in by_group["1"]["error"] and "ConfigError" in by_group["1"]["error"]
    assert by_group["1"]["final_reward"] == ""
    assert by_group["2"]["status"] == "completed", result.output[-3000:]
    assert by_group["2"]["final_reward"] != ""
    assert "2 trials, 1 completed" in (tmp_path / "summary.md").read_text()
    # Hydra still reports the failure in the exit status, after every trial has run
    assert result.returncode != 0


def _write_trial(sweep_dir: Path, num: int, overrides: list[str], metrics: list[dict], status: dict | None):
    import json

    trial = sweep_dir / f"{num}_{','.join(overrides)}"
    (trial / ".hydra").mkdir(parents=True)
    (trial / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    (trial / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump({"hydra": {"job": {"num": num}}}))
    (trial / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in metrics))
    if status is not None:
        (trial / "trial_status.json").write_text(json.dumps({"job_num": num, **status}))
    return trial


def test_summary_reads_reward_and_final_accuracy_from_each_trial(tmp_path):
    from grpo.sweep_summary import objective, write_summary

    metrics = [
        {"step": 0, "eval/phase": "before", "eval/gsm8k/accuracy_strict": 0.25},
        {"step": 1, "loss": 0.0, "reward": 0.5},
        {"step": 2, "loss": 0.0, "reward": 0.75},
        {"step": 2, "eval/phase": "after", "eval/gsm8k/accuracy_strict": 0.5, "eval/gsm8k/accuracy_flexible": 0.625},
    ]
    good = _write_trial(tmp_path, 0, ["+task=gsm8k", "trainer.learning_rate=1e-5"], metrics, {"status": "completed"})
    _write_trial(tmp_path, 1, ["+task=gsm8k", "trainer.learning_rate=1e-4"], [], {"status": "failed", "error": "OOM | big"})
    _write_trial(tmp_path, 2, ["+task=gsm8k", "trainer.learning_rate=1e-3"], metrics[:2], None)
    with (write_summary(tmp_path)).open() as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["trial"], r["status"], r["trainer.learning_rate"]) for r in rows] == [
        ("0", "completed", "1e-5"), ("1", "failed", "1e-4"), ("2", "incomplete", "1e-3"),
    ]
    assert (rows[0]["final_reward"], rows[0]["steps"]) == ("0.75", "2")
    assert (rows[0]["eval/gsm8k/accuracy_strict"], rows[0]["eval/gsm8k/accuracy_flexible"]) == ("0.5", "0.625")
    assert rows[2]["eval/gsm8k/accuracy_strict"] == ""  # no end-of-training evaluation yet
    assert "task" not in rows[0]  # the same in every trial: above the table, not a column
    markdown = (tmp_path / "summary.md").read_text()
    assert "OOM \\| big" in markdown and "`task=gsm8k`" in markdown
    assert objective(good, "gsm8k") == 0.5


def test_summary_survives_the_torn_last_line_of_a_killed_trial(tmp_path):
    from grpo.sweep_summary import write_summary

    metrics = [{"step": 1, "loss": 0.0, "reward": 0.5}, {"step": 2, "loss": 0.0, "reward": 0.75}]
    trial = _write_trial(tmp_path, 0, ["+task=gsm8k", "trainer.learning_rate=1e-5"], metrics, None)
    with (trial / "metrics.jsonl").open("a") as handle:
        handle.write('{"step": 3, "loss": 0.0, "rew')  # the kill landed mid-write
    with write_summary(tmp_path).open() as handle:
        rows = list(csv.DictReader(handle))
    assert (rows[0]["status"], rows[0]["final_reward"], rows[0]["steps"]) == ("incomplete", "0.75", "2")


def test_choice_task_objective_is_its_accuracy(tmp_path):
    from grpo.sweep_summary import objective

    metrics = [{"step": 2, "eval/phase": "after", "eval/pubmedqa/accuracy": 0.6}]
    trial = _write_trial(tmp_path, 0, ["+task=pubmedqa"], metrics, {"status": "completed"})
    assert objective(trial, "pubmedqa") == 0.6


# -- the W&B sweep file ----------------------------------------------------------------------------
SWEEP_FILE = REPO / "scripts" / "sweep.yaml"


def _sweep():
    return yaml.safe_load(SWEEP_FILE.read_text())


def _command_line(sweep: dict, args: dict) -> list[str]:
    """What `wandb agent` runs, as W&B expands the macros (wandb/sdk/launch/sweeps/utils.py)."""
    expanded = {"${env}": [], "${interpreter}": ["python"], "${args_no_hyphens}": [f"{k}={v}" for k, v in args.items()]}
    return [part for item in sweep["command"] for part in expanded.get(item, [item])]


def test_sweep_file_maximises_the_final_eval_accuracy_the_eval_logs():
    sweep = _sweep()
    assert sweep["metric"] == {"name": "eval/gsm8k/accuracy_strict", "goal": "maximize"}
    assert sweep["parameters"]["trainer.num_generations"]["values"] == [2, 4, 6, 8, 12, 16]
    assert sweep["parameters"]["trainer.learning_rate"]["distribution"] == "log_uniform_values"
    # the eval callback logs exactly this key (eval/<evaluator>/<metric>)
    from eval.suite import EvalResult

    assert "eval/gsm8k/accuracy_strict" in EvalResult("gsm8k", {"accuracy_strict": 0.0}).prefixed("eval/")


def test_sweep_parameters_are_config_keys_and_their_command_lines_validate(tmp_path):
    sweep = _sweep()
    base = compose_train("+task=gsm8k")
    for key in sweep["parameters"]:
        parent, _, leaf = key.rpartition(".")
        assert leaf in OmegaConf.select(base, parent), f"{key} is not a config key"
    learning_rate = sweep["parameters"]["trainer.learning_rate"]
    for group in sweep["parameters"]["trainer.num_generations"]["values"]:
        for lr in (learning_rate["min"], learning_rate["max"]):
            command = _command_line(sweep, {"trainer.learning_rate": lr, "trainer.num_generations": group})
            assert command[:3] == ["python", "-m", "grpo.train"], command
            cfg = compose_train(*command[3:], "model=tiny", "profile=cpu", f"output_dir={tmp_path}")
            plan, _, _ = validate_training_config(cfg, cuda=False)
            assert plan.num_generations == group
            assert cfg.trainer.learning_rate == pytest.approx(lr)


def test_optuna_sweep_config_searches_the_same_two_parameters():
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base=None):
        cfg = compose(config_name="train", overrides=["+task=gsm8k", "+sweep=optuna"], return_hydra_config=True)
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_ == "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper"
    assert set(sweeper.params) == set(_sweep()["parameters"])
    assert str(sweeper.direction) in ("maximize", "Direction.maximize")


def test_run_name_carries_the_trial_settings(tmp_path):
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig

    from grpo.sweep_summary import run_name_with_settings

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base=None):
        overrides = ["+task=gsm8k", "model=tiny", "trainer.num_generations=6", "trainer.learning_rate=3e-6"]
        cfg = compose(config_name="train", overrides=overrides, return_hydra_config=True)
        HydraConfig.instance().set_config(cfg)
        # a W&B agent's trial: a timestamped run dir, so the settings are appended
        name = run_name_with_settings(cfg, tmp_path / "2026-01-01_00-00-00")
        assert name.startswith("gsm8k-tiny-2026-01-01_00-00-00-")
        assert "trainer.learning_rate=3e-6" in name and "trainer.num_generations=6" in name
        # a multirun trial's dir already carries them: not repeated
        trial_dir = tmp_path / f"0_{cfg.hydra.job.override_dirname}"
        assert run_name_with_settings(cfg, trial_dir) == f"gsm8k-tiny-{trial_dir.name}"
