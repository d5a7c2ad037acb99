"""InTrainingEval on the tiny model: baseline row before step 1, the same subset every time, train mode restored."""

import json

import pytest
from transformers import TrainerState

from eval.callback import InTrainingEval
from fixtures.eval_stand_ins import compose_eval
from grpo.metrics import MetricsJsonlCallback


@pytest.fixture(scope="module")
def tiny():
    from grpo.models import load_model_and_tokenizer

    # the training config: the callback must work without conf/eval.yaml's extra keys
    cfg = compose_eval("eval.limit=3", "eval.max_new_tokens=4", "eval.every_n_steps=2", "eval.batch_size=4",
                       config_name="train")
    model, tokenizer = load_model_and_tokenizer(cfg.model)
    return cfg, model, tokenizer


def test_evaluates_before_during_and_after_on_a_fixed_subset(tmp_path, tiny):
    cfg, model, tokenizer = tiny
    writer = MetricsJsonlCallback(tmp_path / "metrics.jsonl")
    callback = InTrainingEval(cfg, writer)
    state = TrainerState(global_step=0, max_steps=4)
    hooks = {"model": model, "processing_class": tokenizer}
    model.train()

    callback.on_train_begin(None, state, None, **hooks)
    subset = [row["prompt"] for row in callback._prepared[0][1]]
    for step in (1, 2, 3, 4):
        state.global_step = step
        callback.on_step_end(None, state, None, **hooks)
    callback.on_train_end(None, state, None, **hooks)

    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [(r["step"], r["eval/phase"]) for r in rows] == [(0, "before"), (2, "during"), (4, "after")]
    assert all(r["eval/gsm8k/n"] == 3 and 0.0 <= r["eval/gsm8k/accuracy_strict"] <= 1.0 for r in rows)
    assert [row["prompt"] for row in callback._prepared[0][1]] == subset
    assert callback.history == rows
    assert model.training


def test_subset_is_test_split_never_training_data(tiny):
    from tasks import build_task

    cfg, _, _ = tiny
    callback = InTrainingEval(cfg, None)
    questions = {row["question"] for _, rows in callback._data(full=False) for row in rows}
    test_questions = set(build_task(cfg.task).hf_dataset("test")[0]["question"])
    assert questions <= test_questions


def test_each_evaluation_keeps_what_the_model_wrote(tmp_path, tiny):
    cfg, model, tokenizer = tiny
    writer = MetricsJsonlCallback(tmp_path / "metrics.jsonl")
    callback = InTrainingEval(cfg, writer)
    state = TrainerState(global_step=0, max_steps=4)
    hooks = {"model": model, "processing_class": tokenizer}
    callback.on_train_begin(None, state, None, **hooks)
    state.global_step = 4
    callback.on_train_end(None, state, None, **hooks)

    assert sorted(p.name for p in tmp_path.glob("samples_step-*.jsonl")) == ["samples_step-0.jsonl",
                                                                             "samples_step-4.jsonl"]
    golds = [row["answer"] for row in callback._prepared[0][1]]
    for row in callback.history:
        samples = [json.loads(line) for line in (tmp_path / f"samples_step-{row['step']}.jsonl").read_text().splitlines()]
        assert [s["gold"] for s in samples] == golds
        assert all(s["evaluator"] == "gsm8k" and s["phase"] == row["eval/phase"] for s in samples)
        assert all(isinstance(s["completion"], str) for s in samples)
        assert sum(s["correct_strict"] for s in samples) == row["eval/gsm8k/correct_strict"]
