"""Every labelled case scores exactly as labelled, as a string and as a chat message list."""

import sys
from pathlib import Path

import pytest

from rewards import get_reward

sys.path.insert(0, str(Path(__file__).parent / "rewards"))
import labelled_cases as cases  # noqa: E402

CORRECTNESS = get_reward("correctness")
NUMERIC_FORMAT = get_reward("numeric_format")
STRUCTURE = get_reward("structure")
REASONING_STEPS = get_reward("reasoning_steps")
LENGTH = get_reward("length", max_completion_length=100, cache=20)
VERDICT = get_reward("regex_verdict")


def _as_chat(text):
    return [{"role": "assistant", "content": text}]


def _ids(rows):
    return [f"{i}:{str(r[0])[:40]!r}" for i, r in enumerate(rows)]


def test_labelled_set_is_large_enough():
    total = sum(
        len(x)
        for x in (cases.CORRECTNESS, cases.NUMERIC_FORMAT, cases.STRUCTURE, cases.REASONING_STEPS, cases.LENGTH, cases.CHOICE, cases.VERDICT)
    )
    assert total >= 200


@pytest.mark.parametrize(("completion", "gold", "expected"), cases.CORRECTNESS, ids=_ids(cases.CORRECTNESS))
def test_correctness(completion, gold, expected):
    as_text = CORRECTNESS(prompts=[None], completions=[completion], answer=[gold])
    as_chat = CORRECTNESS(prompts=[None], completions=[_as_chat(completion)], answer=[gold])
    assert as_text == [expected]
    assert as_chat == as_text


def test_correctness_batch_equals_one_by_one():
    completions = [c for c, _, _ in cases.CORRECTNESS]
    golds = [g for _, g, _ in cases.CORRECTNESS]
    assert CORRECTNESS(prompts=None, completions=completions, answer=golds) == [e for _, _, e in cases.CORRECTNESS]


@pytest.mark.parametrize(("completion", "expected"), cases.NUMERIC_FORMAT, ids=_ids(cases.NUMERIC_FORMAT))
def test_numeric_format(completion, expected):
    assert NUMERIC_FORMAT(prompts=[None], completions=[completion]) == [expected]
    assert NUMERIC_FORMAT(prompts=[None], completions=[_as_chat(completion)]) == [expected]


@pytest.mark.parametrize(("completion", "expected"), cases.STRUCTURE, ids=_ids(cases.STRUCTURE))
def test_structure(completion, expected):
    assert STRUCTURE(prompts=[None], completions=[completion]) == [expected]
    assert STRUCTURE(prompts=[None], completions=[_as_chat(completion)]) == [expected]


@pytest.mark.parametrize(("completion", "expected"), cases.REASONING_STEPS, ids=_ids(cases.REASONING_STEPS))
def test_reasoning_steps(completion, expected):
    assert REASONING_STEPS(prompts=[None], completions=[completion]) == [pytest.approx(expected)]
    assert REASONING_STEPS(prompts=[None], completions=[_as_chat(completion)]) == [pytest.approx(expected)]


@pytest.mark.parametrize(("n_tokens", "expected"), cases.LENGTH)
def test_length_uses_completion_ids(n_tokens, expected):
    text = "word " * 5  # the estimate would say "short": completion_ids must win
    assert LENGTH(prompts=[None], completions=[text], completion_ids=[[1] * n_tokens]) == [pytest.approx(expected)]


@pytest.mark.parametrize(("n_words", "expected"), cases.LENGTH)
def test_length_falls_back_to_whitespace_estimate(n_words, expected):
    assert LENGTH(prompts=[None], completions=[_as_chat("w " * n_words)]) == [pytest.approx(expected)]


@pytest.mark.parametrize(("completion", "labels", "gold", "expected"), cases.CHOICE, ids=_ids(cases.CHOICE))
def test_choice(completion, labels, gold, expected):
    reward = get_reward("choice", labels=labels)
    assert reward(prompts=[None], completions=[completion], answer=[gold]) == [expected]
    assert reward(prompts=[None], completions=[_as_chat(completion)], answer=[gold]) == [expected]


@pytest.mark.parametrize(("completion", "gold", "expected"), cases.VERDICT, ids=_ids(cases.VERDICT))
def test_regex_verdict(completion, gold, expected):
    assert VERDICT(prompts=[None], completions=[completion], answer=[gold]) == [expected]
    assert VERDICT(prompts=[None], completions=[_as_chat(completion)], answer=[gold]) == [expected]


def test_no_errors_were_counted_on_the_labelled_set():
    for reward in (CORRECTNESS, NUMERIC_FORMAT, STRUCTURE, REASONING_STEPS, LENGTH, VERDICT):
        assert reward.error_count == 0, (reward.__name__, reward.last_error)
