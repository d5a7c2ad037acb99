"""GSM8K scoring on a stand-in generator: exact fractions, strict vs flexible, maj@k and pass@k."""

import pytest

from eval.answers import score_answers
from eval.metrics import majority_vote, pass_at_k, wilson_interval
from fixtures.eval_stand_ins import StandInGenerator
from tasks import build_task, load_task_file

QUESTIONS = {"Q1": "72", "Q2": "5", "Q3": "1800", "Q4": "0.5"}


GSM8K = build_task(load_task_file("gsm8k"))


def score_gsm8k(rows, generator, **kwargs):
    return score_answers(GSM8K, rows, generator, **kwargs)


def rows(questions=QUESTIONS):
    return [{"prompt": [{"role": "system", "content": "s"}, {"role": "user", "content": q}], "answer": a}
            for q, a in questions.items()]


def formatted(answer):
    return f"<reasoning>\nworked it out\n</reasoning>\n<answer>\n{answer}\n</answer>"


def score(answer_for, **kwargs):
    return score_gsm8k(rows(), StandInGenerator(answer_for), max_new_tokens=8, **kwargs).metrics


def test_gold_answers_in_the_format_score_one():
    metrics = score(lambda q: formatted(QUESTIONS[q]))
    assert metrics["accuracy_strict"] == 1.0
    assert metrics["accuracy_flexible"] == 1.0
    assert metrics["correct_strict"] == metrics["n"] == 4


def test_wrong_answers_score_zero():
    metrics = score(lambda q: formatted(int(float(QUESTIONS[q])) + 1))
    assert metrics["accuracy_strict"] == 0.0
    assert metrics["accuracy_flexible"] == 0.0
    assert metrics["format_rate"] == 1.0  # wrong, but in the format


def test_mixed_answers_score_their_exact_fraction():
    right = {"Q1", "Q3", "Q4"}
    metrics = score(lambda q: formatted(QUESTIONS[q] if q in right else "999"))
    assert metrics["accuracy_strict"] == 0.75
    assert metrics["correct_flexible"] == 3


def test_untagged_answer_is_flexible_correct_but_strict_wrong():
    metrics = score(lambda q: f"The answer is {QUESTIONS[q]}")
    assert metrics["accuracy_strict"] == 0.0
    assert metrics["accuracy_flexible"] == 1.0
    assert metrics["format_rate"] == 0.0


def test_format_rate_counts_completions_with_a_tagged_number():
    tagged = {"Q1", "Q2", "Q3"}
    metrics = score(lambda q: formatted("999") if q in tagged else "<answer>no idea</answer>")
    assert metrics["format_rate"] == 0.75
    assert metrics["structure_rate"] == 0.75


def test_structure_rate_counts_reasoning_then_answer():
    def reply(q):
        # an answer tag alone (what base models often copy) is not the reasoning-then-answer format
        return formatted(QUESTIONS[q]) if q in {"Q1", "Q2"} else f"<answer>\n{QUESTIONS[q]}\n</answer>"

    metrics = score(reply)
    assert metrics["structure_rate"] == 0.5 and metrics["format_rate"] == 1.0


def test_answer_in_other_costume_matches_gold():
    costumes = {"Q1": "72.00", "Q2": "$5", "Q3": "1,800", "Q4": "1/2"}
    metrics = score(lambda q: formatted(costumes[q]))
    assert metrics["accuracy_strict"] == 1.0


def test_hedged_answer_is_wrong_in_both_modes():
    metrics = score(lambda q: formatted(f"{QUESTIONS[q]} or 3"))
    assert metrics["accuracy_strict"] == 0.0
    assert metrics["accuracy_flexible"] == 0.0


def test_samples_record_each_question():
    generator = StandInGenerator(lambda q: "The answer is 72")
    result = score_gsm8k(rows(), generator, max_new_tokens=8)
    first = result.samples[0]
    assert first["completion"] == "The answer is 72"
    assert (first["extracted_strict"], first["extracted_flexible"]) == (None, "72")
    assert (first["correct_strict"], first["correct_flexible"], first["gold"]) == (False, True, "72")
    assert len(result.samples) == 4


# Two questions, four samples each. Q1 (gold 72): correct, wrong, correct, unparsed -> c=2.
# Q2 (gold 5): wrong, wrong, correct, wrong -> c=1.
SAMPLED = {
    "Q1": [formatted(72), formatted(71), formatted(72), "no idea"],
    "Q2": [formatted(3), formatted(3), formatted(5), formatted(3)],
}


def test_sampled_metrics_match_hand_computed_values():
    gold = {"Q1": "72", "Q2": "5"}
    result = score_gsm8k(rows(gold), StandInGenerator(lambda q: SAMPLED[q]), max_new_tokens=8,
                         num_samples=4, temperature=1.0, ks=[1, 2, 4])
    m = result.metrics
    assert m["accuracy_strict"] == pytest.approx(3 / 8)
    assert m["pass@1_strict"] == pytest.approx(3 / 8)
    # Q1: 1 - C(2,2)/C(4,2) = 5/6; Q2: 1 - C(3,2)/C(4,2) = 1/2
    assert m["pass@2_strict"] == pytest.approx((5 / 6 + 1 / 2) / 2)
    assert m["pass@4_strict"] == pytest.approx(1.0)
    # maj@2: Q1 votes 72, 71 (tie -> first seen, 72, right); Q2 votes 3, 3 (wrong)
    assert m["maj@2_strict"] == pytest.approx(0.5)
    # maj@4: Q1 72 twice (right); Q2 3 three times (wrong)
    assert m["maj@4_flexible"] == pytest.approx(0.5)
    assert result.samples[0]["all_correct_strict"] == [True, False, True, False]


def test_sampling_without_temperature_is_refused():
    with pytest.raises(ValueError, match="temperature"):
        score_gsm8k(rows(), StandInGenerator(lambda q: "x"), max_new_tokens=8, num_samples=4, temperature=0.0)


def test_k_above_num_samples_is_refused_before_generating():
    generator = StandInGenerator(lambda q: "x")
    with pytest.raises(ValueError, match="eval.ks"):
        score_gsm8k(rows(), generator, max_new_tokens=8, num_samples=2, temperature=1.0, ks=[4])
    assert generator.calls == []


@pytest.mark.parametrize(
    ("n", "c", "k", "expected"),
    [(10, 3, 1, 0.3), (5, 0, 2, 0.0), (3, 1, 3, 1.0), (4, 2, 2, 5 / 6), (10, 8, 3, 1.0)],
)
def test_pass_at_k_estimator(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected)


def test_majority_vote_ignores_unparsed_and_breaks_ties_by_first_seen():
    assert majority_vote([None, "3", None]) == "3"
    assert majority_vote(["7", "3", "3", "7"]) == "7"
    assert majority_vote([None, None]) is None


def test_wilson_interval_matches_hand_computed_values():
    # 49/500: p = 0.098; by hand (z = 1.96) centre 0.10107, half-width 0.02614
    low, high = wilson_interval(49, 500)
    assert (round(low, 4), round(high, 4)) == (0.0749, 0.1272)
    # 0 of 10 correct still has an upper bound: z^2 / (n + z^2) = 3.8416 / 13.8416
    assert wilson_interval(0, 10) == (0.0, pytest.approx(0.2775, abs=1e-4))
    assert wilson_interval(10, 10) == (pytest.approx(0.7225, abs=1e-4), 1.0)
    with pytest.raises(ValueError, match="correct=3, n=2"):
        wilson_interval(3, 2)
