"""Throughput of the correctness reward on realistic GSM8K-style completions, and the worst
wall time of a single hostile completion.

    .venv/bin/python scripts/bench_rewards.py [--n 512] [--batch 64] [--seed 0]

Prints a human summary and one JSON line (``{"completions_per_s": ..., ...}``).
Targets: >= 500 completions/s on 2 cores; worst hostile <= 2 s.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "rewards"))

from hostile_cases import hostile_cases  # noqa: E402

from rewards import get_reward  # noqa: E402
from rewards.safe_verify import get_pool, shutdown  # noqa: E402

NAMES = ["Natalia", "Weng", "Betty", "Julie", "James", "Albert", "Ken", "Alexis", "Tina", "Randy"]
ITEMS = ["clips", "apples", "pages", "eggs", "dollars", "marbles", "cookies", "miles"]


def _reasoning(rng: random.Random, gold: int) -> str:
    a = rng.randint(2, 40)
    b = rng.randint(2, 12)
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    lines = [
        f"{name} starts with {a} {item}.",
        f"Each day she gets {b} more, so after 3 days she has {a} + {b} * 3 = {a + 3 * b} {item}.",
        f"She gives away {a + 3 * b - gold if a + 3 * b > gold else 0} of them.",
        f"That leaves {gold} {item} in total.",
    ]
    return "\n".join(lines[: rng.randint(2, 4)])


def realistic_completions(n: int, seed: int = 0) -> tuple[list, list[str]]:
    """Varied completions: task format, costumes, boxed, ####, prose, wrong answers, fractions."""
    rng = random.Random(seed)
    completions, golds = [], []
    for i in range(n):
        gold = rng.choice([rng.randint(1, 200), rng.randint(200, 50_000), -rng.randint(1, 30)])
        shown = gold if rng.random() < 0.6 else gold + rng.choice([-10, -1, 1, 2, 100])
        work = _reasoning(rng, gold)
        style = i % 12
        if style == 0:
            text = f"<reasoning>\n{work}\n</reasoning>\n<answer>\n{shown}\n</answer>"
        elif style == 1:
            text = f"<reasoning>\n{work}\n</reasoning>\n<answer>\n${shown:,}.00\n</answer>"
        elif style == 2:
            text = f"<reasoning>\n{work}\n</reasoning>\n<answer>\n{shown} {rng.choice(ITEMS)}\n</answer>"
        elif style == 3:
            text = f"{work}\nSo the final answer is $\\boxed{{{shown}}}$."
        elif style == 4:
            text = f"{work}\n#### {shown}"
        elif style == 5:
            text = f"{work}\nThe answer is {shown}."
        elif style == 6:
            text = f"{work}\n**Answer:** {shown}"
        elif style == 7:
            text = f"{work} So she ends with {shown} {rng.choice(ITEMS)}."
        elif style == 8:  # fractions and decimals
            q = rng.choice([2, 4, 5, 8])
            gold = gold / q
            text = f"<reasoning>\n{work}\n</reasoning>\n<answer>\n\\frac{{{shown}}}{{{q}}}\n</answer>"
            golds.append(repr(gold) if gold != int(gold) else str(int(gold)))
            completions.append([{"role": "assistant", "content": text}])
            continue
        elif style == 9:  # conversational
            text = f"<reasoning>\n{work}\n</reasoning>\n<answer>\n**{shown}**\n</answer>"
            completions.append([{"role": "assistant", "content": text}])
            golds.append(str(gold))
            continue
        elif style == 10:  # truncated, no answer
            text = f"<reasoning>\n{work} and then we also need to consider"
        else:  # hedged
            text = f"<reasoning>\n{work}\n</reasoning>\n<answer>\n{shown} or {shown + 1}\n</answer>"
        completions.append(text)
        golds.append(str(gold))
    return completions, golds


def bench_throughput(n: int, batch: int, seed: int) -> dict:
    completions, golds = realistic_completions(n, seed)
    reward = get_reward("correctness")
    reward(prompts=None, completions=completions[:batch], answer=golds[:batch])  # warm caches/imports
    start = time.perf_counter()
    scores = []
    for i in range(0, n, batch):
        scores += reward(prompts=None, completions=completions[i : i + batch], answer=golds[i : i + batch])
    elapsed = time.perf_counter() - start
    return {
        "completions": n,
        "batch": batch,
        "seconds": round(elapsed, 4),
        "completions_per_s": round(n / elapsed, 1),
        "mean_score": round(sum(scores) / len(scores), 4),
        "errors": reward.error_count,
    }


def bench_fallback(n: int = 64) -> dict:
    """Answers only math-verify can decide (``\\sqrt{k^2}``): the worker path's own rate."""
    reward = get_reward("correctness")
    get_pool().warm_up()
    completions = [f"<answer>\\sqrt{{{k * k}}}</answer>" for k in range(1000, 1000 + n)]
    golds = [str(k) for k in range(1000, 1000 + n)]
    start = time.perf_counter()
    scores = reward(prompts=None, completions=completions, answer=golds)
    elapsed = time.perf_counter() - start
    return {"fallback_completions_per_s": round(n / elapsed, 1), "fallback_mean_score": sum(scores) / n}


def bench_hostile() -> dict:
    reward = get_reward("correctness")
    get_pool().warm_up()  # measure per-completion bounds, not the one-off worker start
    times = {}
    for name, text in hostile_cases().items():
        start = time.perf_counter()
        score = reward(prompts=None, completions=[text], answer=["72"])
        times[name] = (time.perf_counter() - start, score[0])
    worst = max(times, key=lambda k: times[k][0])
    return {
        "hostile_cases": len(times),
        "worst_hostile_case": worst,
        "worst_hostile_s": round(times[worst][0], 4),
        "hostile_nonzero_scores": sorted(k for k, (_, s) in times.items() if s != 0.0),
        "hostile_errors": reward.error_count,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=512)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    result = {**bench_throughput(args.n, args.batch, args.seed), **bench_fallback(), **bench_hostile()}
    shutdown()
    print(f"correctness: {result['completions_per_s']} completions/s ({result['completions']} in {result['seconds']} s, batch {result['batch']})")
    print(f"math-verify fallback path alone: {result['fallback_completions_per_s']} completions/s")
    print(f"worst hostile: {result['worst_hostile_s']} s ({result['worst_hostile_case']}, {result['hostile_cases']} cases)")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
