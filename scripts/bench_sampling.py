"""The token draw of one decode step over Gemma's 262,144-token vocabulary: transformers' sampling against
the inverse-CDF sampler of rollout=hf (grpo/fast_decode.InverseCdfSampler), plain and with a top-k cut.

    .venv/bin/python scripts/bench_sampling.py [--rows 8 32] [--top-k 0 64] [--rounds 7] [--json out.json]

transformers (generate()'s `_sample`): its temperature and top-k warpers, softmax, torch.multinomial.
Ours: the same distribution drawn by one uniform number per row against the cumulative sum (section 8.7 of
docs/performance.md). Logits are random normal (scale 3), fixed per shape; the settings are timed in
interleaved rounds and reported as medians (ms per decode step). Run it on a quiet machine.
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

VOCABULARY = 262_144
TEMPERATURE = 0.9


def transformers_draw(scores: torch.Tensor, top_k: int) -> torch.Tensor:
    from transformers import TemperatureLogitsWarper, TopKLogitsWarper

    scores = TemperatureLogitsWarper(TEMPERATURE)(None, scores)
    if top_k:
        scores = TopKLogitsWarper(top_k)(None, scores)
    return torch.multinomial(torch.softmax(scores, dim=-1), num_samples=1)


def inverse_cdf_draw(scores: torch.Tensor, top_k: int) -> torch.Tensor:
    from grpo.fast_decode import InverseCdfSampler

    return InverseCdfSampler(TEMPERATURE, top_k=top_k)(None, scores).argmax(-1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--top-k", type=int, nargs="+", default=[0, 64])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    generator = torch.Generator().manual_seed(0)
    logits = {rows: torch.randn(rows, VOCABULARY, generator=generator) * 3 for rows in args.rows}
    settings = [(name, draw, rows, top_k) for rows in args.rows for top_k in args.top_k
                for name, draw in (("transformers", transformers_draw), ("inverse_cdf", inverse_cdf_draw))]
    times = {setting[0::2] + (setting[3],): [] for setting in settings}
    for _ in range(args.rounds):
        for name, draw, rows, top_k in settings:
            scores = logits[rows].clone()
            start = time.perf_counter()
            draw(scores, top_k)
            times[(name, rows, top_k)].append((time.perf_counter() - start) * 1000)

    results = []
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, vocabulary {VOCABULARY}, "
          f"{args.rounds} interleaved rounds (medians, ms per decode step)")
    print(f"{'rows':>5} {'top_k':>6} {'transformers':>13} {'inverse_cdf':>12} {'ratio':>6}")
    for rows in args.rows:
        for top_k in args.top_k:
            theirs = statistics.median(times[("transformers", rows, top_k)])
            ours = statistics.median(times[("inverse_cdf", rows, top_k)])
            results.append({"rows": rows, "top_k": top_k, "transformers_ms": theirs, "inverse_cdf_ms": ours})
            print(f"{rows:>5} {top_k:>6} {theirs:>13.1f} {ours:>12.1f} {theirs / ours:>5.1f}x")
    if args.json:
        args.json.write_text(json.dumps({"rounds": args.rounds, "threads": torch.get_num_threads(),
                                         "results": results}, indent=2))


if __name__ == "__main__":
    main()
