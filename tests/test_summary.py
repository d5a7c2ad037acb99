"""The end-of-run console summary: a short run says it is a smoke run and where a real result is."""

from compose import compose_train
from eval.card import SMOKE_MAX_STEPS, smoke_run_note
from grpo.summary import print_summary


def _summary(capsys, tmp_path, *overrides):
    cfg = compose_train("+task=gsm8k", "model=tiny", "profile=cpu", *overrides)
    history = [{"step": 1, "reward": 0.25, "rewards/correctness/mean": 0.0}]
    print_summary(cfg, history, cfg.trainer.max_steps, tmp_path, 120.0, None)
    return capsys.readouterr().err


def test_default_cpu_run_summary_says_smoke_run(capsys, tmp_path):
    text = " ".join(_summary(capsys, tmp_path).split())  # the note is wrapped over several lines
    assert "smoke run (12 steps, fewer than 50)" in text
    assert "not that the model learns" in text and "docs/results.md" in text
    assert "python -m grpo.train +experiment=cpu-learning" in text


def test_long_run_summary_has_no_smoke_note(capsys, tmp_path):
    text = _summary(capsys, tmp_path, f"trainer.max_steps={SMOKE_MAX_STEPS}")
    assert "smoke" not in text.lower()
    assert "steps: 50/50" in text


def test_the_rule_is_fewer_than_fifty_steps():
    assert smoke_run_note(49) is not None
    assert smoke_run_note(50) is None and smoke_run_note(None) is None


def test_a_short_grpo_stage_of_a_measured_recipe_is_not_called_a_smoke_run():
    # +experiment=cpu-gsm8k ran 12 GRPO steps after 64 SFT steps in its first run (docs/results.md, part 2)
    assert smoke_run_note(12, experiment="cpu-gsm8k") is None
    assert smoke_run_note(12, experiment=None) is not None
