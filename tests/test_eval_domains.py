"""Held-out domain evaluators: shipped PubMedQA, multiple choice on a fixture, offline hub error, verdict metrics."""

from collections import Counter
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from eval import multiple_choice, verdict
from eval.metrics import binary_metrics
from eval.suite import DatasetUnavailable, fixed_subset, get_evaluator
from fixtures.eval_stand_ins import StandInGenerator, compose_eval
from tasks import pubmedqa

FIXTURES = Path(__file__).parent / "fixtures"


def cfg(**eval_blocks):
    return OmegaConf.create({"seed": 42, "eval": {"limit": None, **eval_blocks}})


def test_pubmedqa_ships_all_1000_expert_labelled_questions_in_two_disjoint_halves():
    test, train = pubmedqa.load_pubmedqa("test"), pubmedqa.load_pubmedqa("train")
    assert len(test) == len(train) == 500
    assert not {r["id"] for r in test} & {r["id"] for r in train}
    assert Counter(r["final_decision"] for r in test + train) == {"yes": 552, "no": 338, "maybe": 110}
    assert all(r["question"] and r["contexts"] for r in test + train)


def test_pubmedqa_domain_prompt_holds_contexts_and_question_and_subset_is_fixed():
    config = compose_eval()
    evaluator = get_evaluator("pubmedqa")
    first, again = evaluator.load(config, 5), evaluator.load(config, 5)
    assert [r["id"] for r in first] == [r["id"] for r in again]
    source = {r["id"]: r for r in pubmedqa.load_pubmedqa("test")}
    question = first[0]["prompt"][-1]["content"]
    assert source[first[0]["id"]]["question"] in question
    assert source[first[0]["id"]]["contexts"][0] in question


def test_pubmedqa_domain_scores_gold_decisions_as_correct_within_its_own_token_budget():
    config = compose_eval()
    evaluator = get_evaluator("pubmedqa")
    rows = evaluator.load(config, 6)
    gold = {r["prompt"][-1]["content"]: r["answer"] for r in rows}
    budgets = []

    class Recording(StandInGenerator):
        def generate(self, conversations, max_new_tokens, **kwargs):
            budgets.append(max_new_tokens)
            return super().generate(conversations, max_new_tokens, **kwargs)

    result = evaluator.score(rows, Recording(lambda q: f"<answer>\n{gold[q]}\n</answer>"), config)
    assert result.metrics["accuracy"] == 1.0
    assert result.metrics["n"] == 6
    assert budgets == [32]  # conf/task/pubmedqa.yaml's max_new_tokens, not the run's


def test_fixed_subset_is_seeded_and_spread():
    assert fixed_subset(100, 10, seed=1) == fixed_subset(100, 10, seed=1)
    assert fixed_subset(100, 10, seed=1) != fixed_subset(100, 10, seed=2)
    assert fixed_subset(100, 10, seed=1) != list(range(10))
    assert fixed_subset(5, None, seed=1) == [0, 1, 2, 3, 4]


def test_multiple_choice_on_local_fixture():
    config = cfg(mmlu={"data_files": str(FIXTURES / "mmlu_tiny.jsonl")})
    rows = multiple_choice.load(config, None)
    assert len(rows) == 4
    assert sorted(r["answer"] for r in rows) == ["A", "B", "C", "C"]
    by_question = {r["prompt"][-1]["content"]: r["answer"] for r in rows}
    # right on the questions whose gold is A or B, a wrong letter on one C, unreadable on the other
    replies = {}
    for question, gold in by_question.items():
        if gold in "AB":
            replies[question] = f"<answer>{gold}</answer>"
        elif "organelle" in question:
            replies[question] = "<answer>D</answer>"
        else:
            replies[question] = "I am not sure."
    result = multiple_choice.score(rows, StandInGenerator(lambda q: replies[q]), config)
    assert result.metrics["accuracy"] == 0.5
    assert result.metrics["unparsed"] == 1
    assert "A. " in rows[0]["prompt"][-1]["content"]


def test_multiple_choice_offline_fails_early_naming_dataset_and_local_files(monkeypatch, tmp_path):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "datasets"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(DatasetUnavailable) as error:
        multiple_choice.load(cfg(mmlu={"hub_id": "cais/mmlu", "subjects": ["formal_logic"]}), 10)
    message = str(error.value)
    assert "cais/mmlu" in message
    assert "eval.mmlu.data_files" in message
    assert "offline" in message


# Verdicts: truth A A A R R (A = ACCEPTANCE positive); the model says A, A, R, A, nothing.
VERDICT_CASES = [
    ("paper 1", "ACCEPTANCE", "I recommend this paper for ACCEPTANCE."),
    ("paper 2", "ACCEPTANCE", "Solid work. I recommend this paper for acceptance"),
    ("paper 3", "ACCEPTANCE", "I recommend this paper for REJECTION."),
    ("paper 4", "REJECTION", "I recommend this paper for ACCEPTANCE."),
    ("paper 5", "REJECTION", "Hard to say."),
]


def test_verdict_metrics_on_a_hand_computed_case(tmp_path):
    data = tmp_path / "verdicts.jsonl"
    data.write_text("".join(f'{{"prompt": "{p}", "label": "{label}"}}\n'
                            for p, label, _ in VERDICT_CASES))
    config = cfg(verdict={"data_files": str(data)})
    rows = verdict.load(config, None)
    replies = {p: reply for p, _, reply in VERDICT_CASES}
    m = verdict.score(rows, StandInGenerator(lambda q: replies[q]), config).metrics
    # tp=2 (papers 1, 2), fp=1 (paper 4), fn=1 (paper 3), tn=1 (paper 5: no verdict counts as negative)
    assert m["accuracy"] == pytest.approx(3 / 5)
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 / 3)
    assert m["predicted_positive_rate"] == pytest.approx(3 / 5)
    assert m["actual_positive_rate"] == pytest.approx(3 / 5)
    assert m["unparsed"] == 1


def test_always_accept_gets_high_f1_but_the_rates_show_it():
    actual = [True] * 9 + [False]
    m = binary_metrics([True] * 10, actual)
    assert m["f1"] == pytest.approx(18 / 19)  # 0.947 while knowing nothing
    assert m["predicted_positive_rate"] == 1.0
    assert m["actual_positive_rate"] == 0.9
    assert m["always_positive_f1"] == pytest.approx(m["f1"])


def test_verdict_without_data_files_says_what_to_set():
    with pytest.raises(DatasetUnavailable, match="eval.verdict.data_files"):
        verdict.load(cfg(), None)
