"""GRPO's "before" evaluation reuses the SFT stage's final one only when it scored the same thing (eval/reuse.py)."""

import json

import pytest
from omegaconf import OmegaConf, open_dict
from transformers import TrainerState

from eval.callback import InTrainingEval
from eval.reuse import reusable_final_evaluation
from fixtures.eval_stand_ins import compose_eval
from grpo.metrics import MetricsJsonlCallback

SETTINGS = ("eval.limit=3", "eval.max_new_tokens=4", "eval.batch_size=4")
AFTER = {"step": 8, "eval/phase": "after", "eval/gsm8k/accuracy_strict": 0.25, "eval/gsm8k/format_rate": 0.75,
         "eval/gsm8k/n": 3, "eval/wall_time_s": 5.0}


def _finished_sft_stage(path, cfg, evaluations=({"step": 0, "eval/phase": "before"}, AFTER)):
    """A stage dir as grpo/sft.py leaves it: resolved_config.yaml, metrics.jsonl, samples of the final evaluation."""
    path.mkdir()
    saved = cfg.copy()
    with open_dict(saved):
        saved.output_dir = str(path)
    OmegaConf.save(saved, path / "resolved_config.yaml", resolve=True)
    rows = [{"step": 1, "loss": 1.0}, *evaluations]
    (path / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    (path / "samples_step-8.jsonl").write_text(json.dumps({"step": 8, "phase": "after", "completion": "x"}) + "\n")
    return path


def test_the_before_evaluation_is_the_sft_stage_s_final_one_and_generates_nothing(tmp_path):
    cfg = compose_eval(*SETTINGS, config_name="train")
    found = reusable_final_evaluation(_finished_sft_stage(tmp_path / "sft", cfg), cfg)
    assert found is not None and found.row == AFTER

    grpo = tmp_path / "grpo"
    grpo.mkdir()
    callback = InTrainingEval(cfg, MetricsJsonlCallback(grpo / "metrics.jsonl"), start=found)
    # no model: generating anything would fail
    callback.on_train_begin(None, TrainerState(global_step=0, max_steps=4), None, model=None, processing_class=None)

    [row] = [json.loads(line) for line in (grpo / "metrics.jsonl").read_text().splitlines()]
    assert row["step"] == 0 and row["eval/phase"] == "before" and row["eval/reused_from"] == str(tmp_path / "sft")
    scores = [k for k in AFTER if k.startswith("eval/gsm8k/")]
    assert {k: row[k] for k in scores} == {k: AFTER[k] for k in scores}
    assert row["eval/wall_time_s"] == 0.0  # the SFT stage's 5 s were spent there, not here
    assert callback.history == [row]
    [sample] = [json.loads(line) for line in (grpo / "samples_step-0.jsonl").read_text().splitlines()]
    assert sample == {"step": 0, "phase": "before", "completion": "x"}


@pytest.mark.parametrize("changed", ["eval.limit=5", "eval.max_new_tokens=8", "task.example=null", "seed=7",
                                     "eval.domains=[pubmedqa]"])
def test_other_evaluation_settings_are_evaluated_again(tmp_path, changed):
    stage = _finished_sft_stage(tmp_path / "sft", compose_eval(*SETTINGS, config_name="train"))
    assert reusable_final_evaluation(stage, compose_eval(*SETTINGS, changed, config_name="train")) is None


def test_a_final_evaluation_of_the_whole_test_set_is_not_reused(tmp_path):
    cfg = compose_eval(*SETTINGS, "eval.final_full=true", config_name="train")
    assert reusable_final_evaluation(_finished_sft_stage(tmp_path / "sft", cfg), cfg) is None


def test_a_stage_without_a_final_evaluation_is_not_reused(tmp_path):
    cfg = compose_eval(*SETTINGS, config_name="train")
    stage = _finished_sft_stage(tmp_path / "sft", cfg, evaluations=[{"step": 0, "eval/phase": "before"}])
    assert reusable_final_evaluation(stage, cfg) is None
    assert reusable_final_evaluation(tmp_path / "missing", cfg) is None
