"""Soak: a tiny-model GRPO run of a few hundred steps, sampled for leaks while it runs.

    .venv/bin/python scripts/soak.py [--steps 300] [--save-steps 20] [--interval 5] [--out DIR]

Runs `python -m grpo.train +task=gsm8k model=tiny ...` in a subprocess (checkpoints every
--save-steps, save_total_limit=2, so they rotate) with one extra soak-only reward that sends every
completion to math-verify, so its worker process (rewards/safe_verify.py) works every step. Every
--interval seconds it samples, for the training process and its descendants:
  rss_mb     resident memory of the process tree (VmRSS)
  fds        open file descriptors of the training process
  workers    live math-verify worker processes
  ckpt_mb    disk used by the run dir's checkpoint-* dirs; logs_kb: the rest of the run dir but the final
             adapter/ (written after the last step)
A figure "stays flat" when, between the warm-up (the first quarter of the steps: first checkpoints,
first worker start) and the last step, its median over the second half of the samples exceeds its
median over the first half by less than the tolerance (RSS 10 %, fds +4, workers +0, checkpoints 10 %);
medians, because a checkpoint being written before the oldest one is rotated away is a real, passing peak.
The maxima are printed too.
logs_kb grows by design (metrics.jsonl, one line per step): its growth per step is printed instead.
Prints one row per sample, the verdicts, and a JSON line with everything.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORKER_MARK = "rewards.safe_verify import _worker_main"


def verify_each_completion(completions, **kwargs) -> list[float]:
    """Soak-only reward: math-verify every completion's tail against 1/2 (keeps the worker busy)."""
    from rewards.safe_verify import VerifyError, verify_equivalent

    scores = []
    for completion in completions:
        text = completion[-1]["content"] if isinstance(completion, list) else completion
        try:
            scores.append(float(verify_equivalent("\\frac{1}{2}", text[-40:] or "0")))
        except VerifyError:
            scores.append(0.0)
    return scores


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            tree.setdefault(parent, []).append(int(entry))
    return tree


def _descendants(pid: int) -> list[int]:
    tree, found, todo = _children(), [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(tree.get(current, []))
    return found


def _rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _is_worker(pid: int) -> bool:
    try:
        return WORKER_MARK in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False


def _disk_kb(paths) -> float:
    total = 0
    for path in paths:
        if not os.path.isdir(path):
            try:
                total += os.lstat(path).st_blocks * 512
            except OSError:
                pass
            continue
        for dirpath, _, files in os.walk(path):
            for name in files:
                try:
                    total += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
                except OSError:
                    pass
    return total / 1024


def _last_step(run_dir: Path) -> int:
    metrics = run_dir / "metrics.jsonl"
    if not metrics.exists():
        return 0
    step = 0
    for line in metrics.read_text(errors="replace").splitlines():
        try:
            step = max(step, json.loads(line).get("step", 0))
        except (json.JSONDecodeError, AttributeError):
            pass
    return step


def sample(pid: int, run_dir: Path) -> dict:
    tree = _descendants(pid)
    checkpoints = list(run_dir.glob("checkpoint-*"))
    try:
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        fds = 0
    others = [p for p in run_dir.iterdir() if p not in checkpoints and p.name != "adapter"] if run_dir.exists() else []
    return {
        "t_s": round(time.monotonic(), 1),
        "step": _last_step(run_dir),
        "rss_mb": round(sum(_rss_kb(p) for p in tree) / 1024, 1),
        "fds": fds,
        "workers": sum(_is_worker(p) for p in tree),
        "checkpoints": len(checkpoints),
        "ckpt_mb": round(_disk_kb(checkpoints) / 1024, 2),
        "logs_kb": round(_disk_kb(others), 1),
    }


def verdicts(samples: list[dict], steps: int) -> dict:
    steady = [s for s in samples if steps // 4 <= s["step"] < steps]
    half = len(steady) // 2
    first, second = steady[:half], steady[half:]
    if not first or not second:
        return {"error": "too few samples after the warm-up; lower --interval or raise --steps"}
    result = {}
    for key, grows_ok in (("rss_mb", lambda a, b: b <= a * 1.10), ("fds", lambda a, b: b <= a + 4),
                          ("workers", lambda a, b: b <= a), ("ckpt_mb", lambda a, b: b <= a * 1.10)):
        a, b = statistics.median(s[key] for s in first), statistics.median(s[key] for s in second)
        result[key] = {"median_first_half": a, "median_second_half": b, "flat": bool(grows_ok(a, b)),
                       "max_first_half": max(s[key] for s in first), "max_second_half": max(s[key] for s in second)}
    step_span = steady[-1]["step"] - steady[0]["step"]
    result["logs_kb_per_step"] = round((steady[-1]["logs_kb"] - steady[0]["logs_kb"]) / max(step_span, 1), 2)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--save-steps", type=int, default=20)
    parser.add_argument("--interval", type=float, default=5.0)
    parser.add_argument("--out", type=Path, default=None, help="run dir (default: a new temporary dir)")
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides for the run")
    args = parser.parse_args()
    run_dir = args.out or Path(tempfile.mkdtemp(prefix="soak-")) / "run"
    command = [
        sys.executable, "-m", "grpo.train", "+task=gsm8k", "model=tiny", "logger=none", "eval.limit=0",
        "batch.prompts_per_step=1", "trainer.num_generations=2", "trainer.max_completion_length=16",
        f"trainer.max_steps={args.steps}", f"trainer.save_steps={args.save_steps}", "trainer.save_total_limit=2",
        "+rewards.stack.soak_verify._target_=soak.verify_each_completion", f"hydra.run.dir={run_dir}",
        *args.overrides,
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "scripts"), "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled"}
    run_dir.mkdir(parents=True, exist_ok=True)
    print("command:", " ".join(command[1:]), flush=True)
    print(f"load average at start: {os.getloadavg()[0]:.1f}", flush=True)
    started = time.monotonic()
    with open(run_dir.parent / "soak.log", "w") as log:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        samples = []
        while proc.poll() is None:
            row = sample(proc.pid, run_dir)
            row["t_s"] = round(time.monotonic() - started, 1)
            samples.append(row)
            print(" ".join(f"{k}={v}" for k, v in row.items()), flush=True)
            time.sleep(args.interval)
    load_end = os.getloadavg()[0]
    if proc.returncode != 0:
        print(f"the run failed (exit {proc.returncode}); see {run_dir.parent / 'soak.log'}")
        return 1
    result = verdicts(samples, args.steps)
    wall = time.monotonic() - started
    print(f"\n{args.steps} steps in {wall / 60:.1f} min ({wall / args.steps:.2f} s/step); load average at end "
          f"{load_end:.1f}; run dir {run_dir}")
    for key, value in result.items():
        print(f"  {key}: {value}")
    print(json.dumps({"steps": args.steps, "wall_s": round(wall), "samples": samples, "verdicts": result}))
    return 0 if all(v.get("flat", True) for v in result.values() if isinstance(v, dict)) else 1


if __name__ == "__main__":
    sys.exit(main())
