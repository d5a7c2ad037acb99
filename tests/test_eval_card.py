"""Model card and plots from a synthetic metrics.jsonl; the reward-hacking and forgetting flags."""

import json

import pytest
from omegaconf import open_dict

from eval.card import check_trends, write_run_report
from fixtures.eval_stand_ins import compose_eval


@pytest.fixture(scope="module")
def cfg():
    return compose_eval()


def write_metrics(path, rewards, before, after, domain_before=0.6, domain_after=0.6):
    rows = [{"step": 0, "eval/phase": "before", "eval/gsm8k/accuracy_strict": before,
             "eval/gsm8k/accuracy_flexible": before, "eval/gsm8k/n": 20,
             "eval/pubmedqa/accuracy": domain_before, "eval/pubmedqa/n": 20}]
    for step, reward in enumerate(rewards, start=1):
        rows.append({"step": step, "reward": reward, "reward_std": 0.1, "rewards/correctness/mean": reward / 2,
                     "completions/mean_length": 50.0})
    rows.append({"step": len(rewards), "eval/phase": "after", "eval/gsm8k/accuracy_strict": after,
                 "eval/gsm8k/accuracy_flexible": after, "eval/gsm8k/n": 20,
                 "eval/pubmedqa/accuracy": domain_after, "eval/pubmedqa/n": 20})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


RISING = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
FLAT = [0.5, 0.52, 0.48, 0.5, 0.51, 0.49, 0.5, 0.5, 0.5]


def test_card_has_before_after_table_and_plots(tmp_path, cfg):
    write_metrics(tmp_path / "metrics.jsonl", RISING, before=0.30, after=0.45)
    readme = write_run_report(tmp_path, cfg, None, wall_time_s=600).read_text()
    assert "| gsm8k/accuracy_strict | 30.0% | 45.0% | +15.0 pp |" in readme
    assert "| pubmedqa/accuracy | 60.0% | 60.0% | +0.0 pp |" in readme
    for fact in ("base model", "r=16, alpha=32", "numeric_format | 0.25", "learning_rate", "wall time", "10.0 min"):
        assert fact in readme
    for image in ("reward.png", "eval_accuracy.png"):
        assert (tmp_path / image).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"({image})" in readme
    assert "reward hacking" not in readme


def test_reward_up_and_accuracy_down_is_flagged(tmp_path, cfg, caplog):
    write_metrics(tmp_path / "metrics.jsonl", RISING, before=0.50, after=0.30)
    readme = write_run_report(tmp_path, cfg, None, wall_time_s=60).read_text()
    assert "Possible reward hacking" in readme
    assert "Possible reward hacking" in caplog.text


def test_flat_reward_with_falling_accuracy_is_not_reward_hacking(tmp_path, cfg):
    write_metrics(tmp_path / "metrics.jsonl", FLAT, before=0.50, after=0.30)
    readme = write_run_report(tmp_path, cfg, None, wall_time_s=60).read_text()
    assert "reward hacking" not in readme


def test_falling_held_out_domain_is_flagged_as_forgetting():
    rows = [{"step": 0, "eval/phase": "before", "eval/pubmedqa/accuracy": 0.6},
            {"step": 9, "eval/phase": "after", "eval/pubmedqa/accuracy": 0.4}]
    warnings = check_trends(rows, rows, "gsm8k")
    assert len(warnings) == 1 and "forgetting" in warnings[0]


def test_card_without_evaluations_says_so(tmp_path, cfg):
    (tmp_path / "metrics.jsonl").write_text(json.dumps({"step": 1, "reward": 0.2}) + "\n")
    readme = write_run_report(tmp_path, cfg, None).read_text()
    assert "No before/after evaluation was recorded" in readme
    assert (tmp_path / "reward.png").exists()


def test_card_names_the_data_the_run_really_used(tmp_path, cfg):
    write_metrics(tmp_path / "metrics.jsonl", FLAT, before=0.5, after=0.5)
    shipped = "gsm8k (shipped copy) train: 7473 rows, 7473 usable"
    readme = write_run_report(tmp_path, cfg, None, data_source=shipped).read_text()
    assert f"| training data | {shipped} |" in readme
    assert "openai/gsm8k" not in readme.split("## Training")[1].split("### Reward stack")[0]


def test_short_run_card_says_smoke_run_and_points_to_the_learning_experiment(tmp_path, cfg):
    assert cfg.trainer.max_steps == 12  # profile=cpu, the default CPU run
    write_metrics(tmp_path / "metrics.jsonl", FLAT, before=0.5, after=0.5)
    readme = write_run_report(tmp_path, cfg, None).read_text()
    head = readme.split("## Results")[0]
    assert "Smoke run" in head and "12 steps, fewer than 50" in head and "docs/results.md" in head


def test_run_of_fifty_steps_or_more_is_not_called_a_smoke_run(tmp_path):
    long_cfg = compose_eval("trainer.max_steps=50")
    write_metrics(tmp_path / "metrics.jsonl", FLAT, before=0.5, after=0.5)
    readme = write_run_report(tmp_path, long_cfg, None).read_text()
    assert "smoke run" not in readme.lower()


def test_accuracies_with_counts_get_wilson_intervals_in_the_card(tmp_path, cfg):
    rows = [{"step": 0, "eval/phase": "before", "eval/gsm8k/accuracy_strict": 0.098, "eval/gsm8k/correct_strict": 49,
             "eval/gsm8k/n": 500, "eval/gsm8k/num_samples": 1},
            {"step": 60, "eval/phase": "after", "eval/gsm8k/accuracy_strict": 0.3, "eval/gsm8k/correct_strict": 150,
             "eval/gsm8k/n": 500, "eval/gsm8k/num_samples": 1}]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    readme = write_run_report(tmp_path, cfg, None, wall_time_s=60).read_text()
    assert "| gsm8k/accuracy_strict | 9.8% [7.5%, 12.7%] | 30.0% [26.1%, 34.2%] | +20.2 pp |" in readme
    assert "Wilson 95% intervals" in readme


def test_reward_params_are_printed_as_the_reward_got_them(tmp_path):
    length_cfg = compose_eval()
    with open_dict(length_cfg):  # as conf/experiment/cpu-gsm8k.yaml writes it
        length_cfg.rewards.stack.length = {
            "weight": 0.25, "params": {"max_completion_length": "${trainer.max_completion_length}", "cache": 64}}
    write_metrics(tmp_path / "metrics.jsonl", FLAT, before=0.5, after=0.5)
    readme = write_run_report(tmp_path, length_cfg, None).read_text()
    assert f'{{"max_completion_length": {length_cfg.trainer.max_completion_length}, "cache": 64}}' in readme
    assert "${" not in readme
