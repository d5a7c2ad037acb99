"""Hostile completions: bounded time, score 0, no side effects, from any thread."""

import os
import sys
import threading
import time
from pathlib import Path

import pytest

import rewards.extract as extract_module
from rewards import extract_answer, get_reward
from rewards.safe_verify import VerifierPool, VerifyError

sys.path.insert(0, str(Path(__file__).parent / "rewards"))
from hostile_cases import hostile_cases  # noqa: E402

BOUND_S = 5.0  # generous: these tests are about not hanging, not about speed
CASES = hostile_cases()
PWNED = "/tmp/gemma_grpo_pwned"
ALL_REWARDS = {
    "correctness": {},
    "numeric_format": {},
    "reasoning_steps": {},
    "structure": {},
    "length": {"max_completion_length": 256},
    "choice": {"labels": ["A", "B", "C", "D", "E"]},
    "regex_verdict": {},
}


@pytest.fixture(scope="module")
def correctness():
    return get_reward("correctness")


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_case_scores_zero_quickly(case, correctness):
    if os.path.exists(PWNED):
        os.remove(PWNED)
    start = time.monotonic()
    scores = correctness(prompts=[None], completions=[CASES[case]], answer=["72"])
    elapsed = time.monotonic() - start
    assert elapsed < BOUND_S, f"{case} took {elapsed:.2f}s"
    assert scores == [0.0]
    assert not os.path.exists(PWNED), "completion text was executed"


@pytest.mark.parametrize("name", sorted(ALL_REWARDS))
def test_every_reward_survives_the_whole_hostile_batch(name):
    reward = get_reward(name, **ALL_REWARDS[name])
    completions = list(CASES.values())
    start = time.monotonic()
    scores = reward(prompts=[None] * len(completions), completions=completions, answer=["E"] * len(completions))
    elapsed = time.monotonic() - start
    assert elapsed < BOUND_S * 4, f"{name} took {elapsed:.2f}s on {len(completions)} hostile completions"
    assert len(scores) == len(completions)
    assert all(s is None or -1.0 <= s <= 1.0 for s in scores)
    assert reward.error_count == 0, reward.last_error


def test_hostile_hedges_are_marked_ambiguous():
    for case in ("hedge_boxed", "hedge_tag", "hedge_prose", "many_boxed_different"):
        assert extract_answer(CASES[case]).ambiguous, case


def test_worker_is_killed_and_replaced_on_timeout():
    pool = VerifierPool(timeout_s=1.0)
    try:
        pool.warm_up()
        start = time.monotonic()
        with pytest.raises(VerifyError, match="timed out"):
            pool.verify("72", "999^{999^{999}}")
        assert time.monotonic() - start < BOUND_S
        assert pool.restarts == 1
        assert pool.verify("4", "\\sqrt{16}") is True  # the replacement works
    finally:
        pool.close()


def test_worker_runs_under_a_memory_limit():
    pool = VerifierPool(memory_bytes=700 << 20)
    try:
        pool.warm_up()
        limits = Path(f"/proc/{pool._process.pid}/limits").read_text()
        line = next(x for x in limits.splitlines() if x.startswith("Max address space"))
        assert str(700 << 20) in line
    finally:
        pool.close()


def test_worker_that_died_between_calls_is_replaced():
    pool = VerifierPool()
    try:
        pool.warm_up()
        pool._process.kill()
        pool._process.wait()
        assert pool.verify("4", "\\sqrt{16}") is True
        assert pool.restarts == 1
    finally:
        pool.close()


def test_worker_dying_mid_call_is_a_verify_error():
    pool = VerifierPool(memory_bytes=30 << 20)  # too small to even import sympy: the worker dies
    try:
        start = time.monotonic()
        with pytest.raises(VerifyError):
            pool.verify("4", "\\sqrt{16}")
        assert time.monotonic() - start < BOUND_S
    finally:
        pool.close()


def _run_in_thread(fn):
    result = {}

    def target():
        start = time.monotonic()
        result["value"] = fn()
        result["elapsed"] = time.monotonic() - start

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(timeout=30)
    assert not thread.is_alive(), "reward hung in a non-main thread"
    return result


def test_reward_off_the_main_thread_is_still_bounded(monkeypatch):
    # Let a pathological answer through the cheap screen so it reaches the worker, then call the
    # reward from a non-main thread, where math-verify's signal.alarm timeout cannot work.
    monkeypatch.setattr(extract_module, "_safe_for_math_verify", lambda s: True)
    reward = get_reward("correctness")
    completion = "<answer>999^{999^{999}}</answer>"
    result = _run_in_thread(lambda: reward(prompts=[None], completions=[completion], answer=["72"]))
    assert result["value"] == [0.0]
    assert result["elapsed"] < BOUND_S
    assert reward.error_count == 1  # a timeout is an error, counted


def test_symbolic_fallback_works_off_the_main_thread():
    reward = get_reward("correctness")
    result = _run_in_thread(lambda: reward(prompts=[None], completions=["<answer>\\sqrt{5184}</answer>"], answer=["72"]))
    assert result["value"] == [1.0]
    assert reward.error_count == 0
