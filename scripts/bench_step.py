"""Step-time benchmark: where a GRPO step spends its time, ours against plain TRL.

    .venv/bin/python scripts/bench_step.py [--steps 3] [--repeats 2] [--variants ours ours-nopatch plain]
        [--omp-threads 2] [--out bench.json] [--gpu-rollouts] -- [Hydra overrides, as for grpo.train]

    e.g. .venv/bin/python scripts/bench_step.py --steps 3 -- model=tiny trainer.max_completion_length=8

Each run is a fresh child process (so peak memory and TRL patches never leak between runs) that composes
the config like grpo.train (`+task=gsm8k`, `profile=auto` and `logger=none` are added unless given),
builds a trainer, trains `--steps` optimizer steps and reports per step:

  generation    TRL's own timer around generate() (`profiling/Time taken: GRPOTrainer.transformers.generate`,
                or `vLLM.generate`); completion tokens/s are completion tokens / this time
  reward        TRL's timer around `_calculate_rewards` (all reward functions)
  logprob       TRL's timer around `_get_per_token_logps_and_entropies` (every log-prob forward pass:
                the training forward, and old/reference passes when TRL needs them)
  backward      `accelerator.backward` (timed by wrapping it)
  optimizer     on_pre_optimizer_step .. on_optimizer_step (callbacks)
  weight_sync   TRL's `sync_weights` timer (vLLM rollouts only; n/a with rollout=hf)
  eval          in-training evaluation that ran inside the step (ours only; before/after are reported apart)
  other         the rest of the step (on_step_begin .. on_step_end): tokenising, advantages, loss
                arithmetic, gradient clipping, callbacks

TRL 1.16 only sends its profiling timers to W&B/MLflow/Trackio, so the child records them by wrapping
`trl.extras.profiling.ProfilingContext._log_metrics`. Variants:

  ours          grpo.train's trainer (build_trainer: guards, metrics.jsonl, eval callback, CPU log-prob patch)
  ours-nopatch  the same, with TRL's scoring of every prompt position restored (grpo/patches.py undone)
  plain         scripts/bench_plain_trl.py: the same model dir, rows, reward functions, GRPOConfig and
                LoraConfig straight into trl.GRPOTrainer
  plain-patched plain with grpo/patches.py applied

Runs alternate (ours, plain, ours, plain, ...) to spread the noise of a shared machine; each run's step
time is the mean of its steps after the first (the first also pays one-off warm-up), and the summary
gives medians over repeats, min-max spreads and the ratios ours / plain. W&B is never started. Model
load and trainer construction are reported as `load_s`, outside the step times.
"""

import argparse
import json
import logging
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

log = logging.getLogger("bench_step")

VARIANTS = ("ours", "ours-nopatch", "plain", "plain-patched")
PARTS = ("generation", "reward", "logprob", "backward", "optimizer", "weight_sync", "eval", "other")
GENERATE_TIMERS = ("transformers.generate", "transformers.generate_batch", "vLLM.generate")
GPU_ROLLOUT_MODELS = ("gemma3-1b-it", "gemma3-4b-it")


# ---------------------------------------------------------------------------------------------------
# Child: one run of one variant
# ---------------------------------------------------------------------------------------------------
class StepRecorder:
    """Collects the timers of the optimizer step in progress; events between steps go to `outside`."""

    def __init__(self):
        self.steps: list[dict] = []
        self.current: dict | None = None
        self.outside: dict[str, float] = {}

    def add(self, name: str, seconds: float) -> None:
        bucket = self.current["timers"] if self.current is not None else self.outside
        bucket[name] = bucket.get(name, 0.0) + seconds

    def begin(self) -> None:
        self.current = {"started": time.perf_counter(), "timers": {}}

    def end(self, global_step: int) -> None:
        record, self.current = self.current, None
        record["step"] = global_step
        record["step_s"] = time.perf_counter() - record.pop("started")
        self.steps.append(record)


def record_trl_profiling(recorder: StepRecorder) -> None:
    """Route TRL's profiling timers (`profiling_context` / `profiling_decorator`) into the recorder."""
    from grpo.patches import record_trl_timers

    record_trl_timers(recorder.add)


def timing_callbacks(recorder: StepRecorder):
    """(first, last): one callback to run before all others at step begin, one after all at step end."""
    from transformers import TrainerCallback

    class StepBegin(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            recorder.begin()

        def on_pre_optimizer_step(self, args, state, control, **kwargs):
            self._optimizer_started = time.perf_counter()

        def on_optimizer_step(self, args, state, control, **kwargs):
            recorder.add("optimizer", time.perf_counter() - self._optimizer_started)

    class StepEnd(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            recorder.end(state.global_step)

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and recorder.steps and "completions/mean_length" in logs:
                recorder.steps[-1]["logs"] = {
                    k: logs[k] for k in ("completions/mean_length", "step_time", "reward") if k in logs
                }

    return StepBegin(), StepEnd()


def time_calls(recorder: StepRecorder, obj, method: str, name: str) -> None:
    """Replace obj.method (on the instance) by a wrapper that adds its wall time to the recorder."""
    original = getattr(obj, method)

    def timed(*args, **kwargs):
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            recorder.add(name, time.perf_counter() - started)

    setattr(obj, method, timed)


def compose_config(overrides: list[str], output_dir: str):
    from grpo.entry import compose_config as compose_with_profile

    overrides = list(overrides)
    if not any(o.lstrip("+~").startswith("task=") for o in overrides):
        overrides = ["+task=gsm8k", *overrides]
    if not any(o.startswith("logger=") for o in overrides):
        overrides.append("logger=none")
    if not any(o.startswith("output_dir=") for o in overrides):
        overrides.append(f"output_dir={output_dir}")
    return compose_with_profile(overrides), overrides


def build_variant(variant: str, cfg, recorder: StepRecorder):
    """The trainer of `variant`, built from the same config, rows, rewards and GRPOConfig."""
    import torch
    from omegaconf import OmegaConf
    from transformers import set_seed

    from tasks import build_task
    from grpo.train import build_trainer, grpo_config, load_policy, peft_config
    from grpo.validate import validate_training_config

    plan, reward_funcs, reward_weights = validate_training_config(cfg, torch.cuda.is_available())
    output_dir = Path(cfg.output_dir)
    OmegaConf.save(cfg, output_dir / "resolved_config.yaml", resolve=True)
    set_seed(cfg.seed)
    args = grpo_config(cfg, plan, reward_weights, [], output_dir)
    train_dataset, _ = build_task(cfg.task).hf_dataset("train")
    from grpo.patches import cpu_scoring_patched, undo_cpu_scoring

    if variant.startswith("ours"):
        model, tokenizer = load_policy(cfg)
        run = build_trainer(cfg, args, model, tokenizer, train_dataset, reward_funcs, output_dir)
        trainer = run.trainer
        if run.evaluation is not None:
            time_calls(recorder, run.evaluation, "evaluate", "eval")
        if variant == "ours-nopatch":
            undo_cpu_scoring()
    else:
        from bench_plain_trl import build_plain_trainer

        from grpo.chat_template import GEMMA3_CHAT_TEMPLATE
        from grpo.models import resolve_dtype, resolve_model_path

        if variant == "plain-patched":
            from grpo.patches import score_only_completion_tokens_on_cpu

            score_only_completion_tokens_on_cpu()
        trainer = build_plain_trainer(
            resolve_model_path(cfg.model),
            resolve_dtype(cfg.model.dtype),
            cfg.model.attn_implementation,
            GEMMA3_CHAT_TEMPLATE,
            list(cfg.model.eos_tokens),
            train_dataset,
            reward_funcs,
            args,
            peft_config(cfg),
        )
    return trainer, cpu_scoring_patched()


def step_breakdown(record: dict, generation_batch: int, use_vllm: bool) -> dict:
    timers = record["timers"]
    row = {
        "step": record["step"],
        "step_s": record["step_s"],
        "generation_s": sum(timers.get(name, 0.0) for name in GENERATE_TIMERS),
        "reward_s": timers.get("_calculate_rewards", 0.0),
        "logprob_s": timers.get("_get_per_token_logps_and_entropies", 0.0),
        "backward_s": timers.get("backward", 0.0),
        "optimizer_s": timers.get("optimizer", 0.0),
        "weight_sync_s": timers.get("sync_weights", 0.0) if use_vllm else None,
        "eval_s": timers.get("eval", 0.0),
    }
    row["other_s"] = row["step_s"] - sum(row[f"{p}_s"] or 0.0 for p in PARTS if p != "other")
    mean_length = record.get("logs", {}).get("completions/mean_length")
    row["completion_tokens"] = round(mean_length * generation_batch) if mean_length is not None else None
    row["completion_tokens_per_s"] = (
        row["completion_tokens"] / row["generation_s"] if row["completion_tokens"] and row["generation_s"] else None
    )
    row["trl_step_time_s"] = record.get("logs", {}).get("step_time")
    row["timers"] = timers
    return row


def peak_memory() -> dict:
    import torch

    memory = {"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}  # KiB on Linux
    try:
        import psutil

        memory["rss_now_mb"] = psutil.Process().memory_info().rss / 1024**2
    except ImportError:
        pass
    memory["cuda_peak_mb"] = torch.cuda.max_memory_allocated() / 1024**2 if torch.cuda.is_available() else None
    return memory


def run_child(variant: str, steps: int, overrides: list[str], out: Path) -> None:
    import torch

    load_start = os.getloadavg()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench_step_") as tmp:
        cfg, overrides = compose_config(overrides, tmp)
        cfg.trainer.max_steps = steps
        recorder = StepRecorder()
        record_trl_profiling(recorder)
        trainer, patched = build_variant(variant, cfg, recorder)
        first, last = timing_callbacks(recorder)
        trainer.callback_handler.callbacks.insert(0, first)
        trainer.add_callback(last)
        time_calls(recorder, trainer.accelerator, "backward", "backward")
        load_s = time.perf_counter() - started
        train_started = time.perf_counter()
        trainer.train()
        train_s = time.perf_counter() - train_started
    use_vllm = bool(trainer.args.use_vllm)
    generation_batch = trainer.args.generation_batch_size
    result = {
        "variant": variant,
        "logprob_patch": patched,
        "overrides": overrides,
        "model": cfg.model.name,
        "dtype": str(trainer.model.dtype).replace("torch.", ""),
        "attn_implementation": cfg.model.attn_implementation,
        "rollout": cfg.rollout.name,
        "peft": cfg.peft.method,
        "completions_per_step": generation_batch,
        "num_generations": cfg.trainer.num_generations,
        "max_completion_length": cfg.trainer.max_completion_length,
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "torch_threads": torch.get_num_threads(),
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "loadavg_start": load_start,
        "loadavg_end": os.getloadavg(),
        "load_s": load_s,
        "train_s": train_s,
        "outside_steps": recorder.outside,  # e.g. evaluation before/after training
        "steps": [step_breakdown(r, generation_batch, use_vllm) for r in recorder.steps],
        **peak_memory(),
    }
    out.write_text(json.dumps(result, indent=1))


# ---------------------------------------------------------------------------------------------------
# Parent: alternate runs, summarise, print, write JSON
# ---------------------------------------------------------------------------------------------------
def machine() -> dict:
    model = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {"nproc": os.cpu_count(), "cpu_model": model, "platform": platform.platform(), "gpu": None}
    try:
        import torch

        info["torch"] = torch.__version__
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return info


def launch(variant: str, steps: int, overrides: list[str], omp_threads: int | None, timeout: int) -> dict:
    env = dict(os.environ)
    if omp_threads is not None:
        env["OMP_NUM_THREADS"] = str(omp_threads)
    env.setdefault("WANDB_MODE", "disabled")
    with tempfile.TemporaryDirectory(prefix="bench_step_out_") as tmp:
        out = Path(tmp) / "run.json"
        command = [sys.executable, str(Path(__file__).resolve()), "--child", variant, "--child-out", str(out),
                   "--steps", str(steps), "--", *overrides]
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0 or not out.exists():
            raise RuntimeError(f"{variant} run failed (exit {done.returncode}):\n{(done.stdout + done.stderr)[-4000:]}")
        return json.loads(out.read_text())


def run_time(run: dict, part: str = "step") -> float | None:
    """A run's time for `part`: the mean over its steps after the first (all steps when there is one)."""
    steps = run["steps"][1:] or run["steps"]
    values = [s[f"{part}_s"] for s in steps if s.get(f"{part}_s") is not None]
    return statistics.fmean(values) if values else None


def whole_step_rate(run: dict) -> float | None:
    """Completion tokens per second of whole steps: the tokens generated from the second generating step
    on, over the time of those steps and of the steps their rollouts served (with
    batch.optimizer_steps_per_generation = k one step in k generates; with k = 1, steps 2..)."""
    steps = run["steps"]
    generating = [i for i, s in enumerate(steps) if s.get("generation_s")]
    window = steps[generating[1]:] if len(generating) > 1 else steps
    tokens = sum(s.get("completion_tokens") or 0 for s in window)
    seconds = sum(s["step_s"] for s in window)
    return tokens / seconds if tokens and seconds else None


def summarise(runs: list[dict]) -> dict:
    summary = {}
    for variant in dict.fromkeys(r["variant"] for r in runs):
        mine = [r for r in runs if r["variant"] == variant]
        entry = {"runs": len(mine)}
        for part in ("step", *PARTS):
            values = [v for v in (run_time(r, part) for r in mine) if v is not None]
            entry[f"{part}_s"] = statistics.median(values) if values else None
            if part == "step":
                entry["step_s_min"], entry["step_s_max"] = min(values), max(values)
        rates = [s["completion_tokens_per_s"] for r in mine for s in (r["steps"][1:] or r["steps"])
                 if s.get("completion_tokens_per_s")]
        tokens = [s["completion_tokens"] for r in mine for s in r["steps"] if s.get("completion_tokens")]
        entry["completion_tokens_per_s"] = statistics.median(rates) if rates else None
        whole = [w for w in (whole_step_rate(r) for r in mine) if w is not None]
        entry["whole_step_tokens_per_s"] = statistics.median(whole) if whole else None
        entry["completion_tokens_per_step"] = statistics.median(tokens) if tokens else None
        entry["peak_rss_mb"] = max(r["peak_rss_mb"] for r in mine)
        cuda = [r["cuda_peak_mb"] for r in mine if r.get("cuda_peak_mb") is not None]
        entry["cuda_peak_mb"] = max(cuda) if cuda else None
        entry["load_s"] = statistics.median(r["load_s"] for r in mine)
        summary[variant] = entry
    return summary


RATIO_PAIRS = (("ours", "plain"), ("ours-nopatch", "plain"), ("plain-patched", "plain"), ("ours", "plain-patched"))


def ratios(runs: list[dict], summary: dict) -> dict:
    """ours / plain (medians over runs), plus each alternation round's own ratio for the spread."""
    by_round = {}
    for r in runs:
        by_round.setdefault(r["repeat"], {})[r["variant"]] = run_time(r)
    found = {}
    for variant, baseline in RATIO_PAIRS:
        if variant not in summary or baseline not in summary:
            continue
        paired = [t[variant] / t[baseline] for t in by_round.values() if variant in t and baseline in t]
        found[f"{variant}/{baseline}"] = {
            "median_ratio": summary[variant]["step_s"] / summary[baseline]["step_s"],
            "per_round": paired,
            "min": min(paired),
            "max": max(paired),
        }
    return found


def _fmt(value, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def report(result: dict) -> str:
    lines = [
        f"bench_step {result['date']}  {result['machine']['nproc']} x {result['machine']['cpu_model']}  "
        f"OMP_NUM_THREADS={result['omp_num_threads']}  load average {result['loadavg_start']} -> {result['loadavg_end']}",
        f"config: {' '.join(result['overrides'])}  ({result['steps']} steps per run; step times: mean of steps 2.., "
        "median over runs)",
        "",
        "per run, per step (s):",
        "variant        run step  total   gen   reward logprob backward optim  sync   eval  other  tokens tok/s",
    ]
    for r in result["runs"]:
        for s in r["steps"]:
            lines.append(
                f"{r['variant']:<14} {r['repeat']:>3} {s['step']:>4} {s['step_s']:>6.2f} {s['generation_s']:>6.2f} "
                f"{s['reward_s']:>6.3f} {s['logprob_s']:>7.2f} {s['backward_s']:>8.2f} {s['optimizer_s']:>5.2f} "
                f"{_fmt(s['weight_sync_s']):>5} {s['eval_s']:>6.2f} {s['other_s']:>6.2f} "
                f"{s['completion_tokens'] if s['completion_tokens'] is not None else 'n/a':>7} "
                f"{_fmt(s['completion_tokens_per_s'], 1):>5}"
            )
    lines += ["", "summary (medians over runs):",
              "variant        step_s  [min-max]        gen   reward logprob backward optim  sync  eval  other  tok/s  "
              "whole tok/s  peak RSS MB  load_s"]
    for variant, e in result["summary"].items():
        lines.append(
            f"{variant:<14} {e['step_s']:>6.2f}  [{e['step_s_min']:.2f}-{e['step_s_max']:.2f}]  "
            f"{_fmt(e['generation_s']):>7} {_fmt(e['reward_s'], 3):>6} {_fmt(e['logprob_s']):>7} "
            f"{_fmt(e['backward_s']):>8} {_fmt(e['optimizer_s']):>5} {_fmt(e['weight_sync_s']):>5} "
            f"{_fmt(e['eval_s']):>5} {_fmt(e['other_s']):>6} {_fmt(e['completion_tokens_per_s'], 1):>6} "
            f"{_fmt(e.get('whole_step_tokens_per_s'), 2):>12} {e['peak_rss_mb']:>11.0f} {e['load_s']:>7.1f}"
        )
    for name, ratio in result["ratios"].items():
        per_round = ", ".join(f"{x:.3f}" for x in ratio["per_round"])
        lines.append(f"{name}: {ratio['median_ratio']:.3f} (per round: {per_round}; spread {ratio['min']:.3f}-{ratio['max']:.3f})")
    lines.append(f"HF vs vLLM rollouts ({', '.join(GPU_ROLLOUT_MODELS)}): {result['gpu_rollouts']}")
    return "\n".join(lines)


def gpu_rollouts(args, overrides: list[str]) -> dict | str:
    """tokens/s of rollout=hf vs rollout=vllm_colocate for the Gemma 3 1B/4B shapes (our trainer)."""
    import torch

    if not args.gpu_rollouts:
        return "not run (--gpu-rollouts not given)"
    if not torch.cuda.is_available():
        return "not measured: no GPU"
    found = {}
    for model in GPU_ROLLOUT_MODELS:
        for rollout in ("hf", "vllm_colocate"):
            run = launch("ours", args.steps, [*overrides, f"model={model}", f"rollout={rollout}"], args.omp_threads,
                         args.timeout)
            found[f"{model}/{rollout}"] = summarise([{**run, "repeat": 0}])["ours"]
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=3, help="optimizer steps per run")
    parser.add_argument("--repeats", type=int, default=2, help="alternation rounds (each runs every variant once)")
    parser.add_argument("--variants", nargs="+", default=["ours", "ours-nopatch", "plain"], choices=VARIANTS)
    parser.add_argument("--omp-threads", type=int, default=None, help="OMP_NUM_THREADS for the runs (default: inherited)")
    parser.add_argument("--out", type=Path, help="write the full result as JSON here")
    parser.add_argument("--gpu-rollouts", action="store_true", help="also compare HF and vLLM rollouts (needs CUDA)")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds allowed per run")
    parser.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--child-out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, after --")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.child:
        run_child(args.child, args.steps, args.overrides, args.child_out)
        return

    result = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "omp_num_threads": str(args.omp_threads) if args.omp_threads is not None else os.environ.get("OMP_NUM_THREADS"),
        "overrides": args.overrides,
        "steps": args.steps,
        "loadavg_start": tuple(round(x, 2) for x in os.getloadavg()),
        "runs": [],
    }
    for repeat in range(args.repeats):
        for variant in args.variants:
            log.info("round %d/%d: %s", repeat + 1, args.repeats, variant)
            run = launch(variant, args.steps, args.overrides, args.omp_threads, args.timeout)
            result["runs"].append({**run, "repeat": repeat})
    result["loadavg_end"] = tuple(round(x, 2) for x in os.getloadavg())
    result["summary"] = summarise(result["runs"])
    result["ratios"] = ratios(result["runs"], result["summary"])
    result["gpu_rollouts"] = gpu_rollouts(args, args.overrides)
    print(report(result))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    from grpo.entry import set_process_settings

    set_process_settings()  # as the commands do: measured figures are those of a real run
    main()
