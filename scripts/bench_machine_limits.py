"""What this CPU can do at most, for the limit analysis of a GRPO step (docs/performance.md, section 7).

Prints the fp32 matrix-multiply rate (compute bound), the read bandwidth of a large tensor (memory bound),
and the time of the 270M's output layer at decode batch sizes (262,144 x 640 fp32: 671 MB read per step),
as torch's linear computes it (h @ W^T) and transposed ((W @ h^T)^T, rollout.cpu_transposed_head).
Run it alone on a quiet machine: `.venv/bin/python scripts/bench_machine_limits.py`.
"""

import argparse
import json
import time

import torch

VOCAB, HIDDEN = 262_144, 640  # Gemma 3 270M: tied embedding / output layer


def best_seconds(fn, repeats: int) -> float:
    fn()  # warm-up: first touch of the memory, kernel selection
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.manual_seed(0)
    results = {"threads": torch.get_num_threads()}

    n = 2048
    a, b = torch.randn(n, n), torch.randn(n, n)
    results["matmul_gflops"] = 2 * n**3 / best_seconds(lambda: a @ b, args.repeats) / 1e9

    big = torch.randn(256 * 1024 * 1024 // 4 * 4)  # 1 GiB of fp32, far beyond every cache
    results["read_gb_per_s"] = big.numel() * 4 / best_seconds(lambda: big.sum(), args.repeats) / 1e9
    out = torch.empty_like(big)
    results["copy_gb_per_s"] = 2 * big.numel() * 4 / best_seconds(lambda: out.copy_(big), args.repeats) / 1e9
    del big, out

    head = torch.randn(VOCAB, HIDDEN)
    for batch in (1, 8, 32, 64):
        hidden = torch.randn(batch, HIDDEN)
        seconds = best_seconds(lambda: hidden @ head.T, args.repeats)
        results[f"output_layer_ms_batch_{batch}"] = seconds * 1e3
        seconds = best_seconds(lambda: torch.mm(head, hidden.T).T, args.repeats)
        results[f"output_layer_transposed_ms_batch_{batch}"] = seconds * 1e3
    print(json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in results.items()}, indent=1))


if __name__ == "__main__":
    main()
