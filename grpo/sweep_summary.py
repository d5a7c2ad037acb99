"""One table of a sweep's trials: settings, status, final reward and held-out accuracy.

A Hydra callback (configured under `hydra.callbacks` in conf/train.yaml) for multiruns
(`python -m grpo.train -m ...`, the basic sweeper or the Optuna one). After every trial it records the
trial's status in `<trial dir>/trial_status.json` and rewrites `summary.csv` and `summary.md` in the
sweep dir, so the table is current while the sweep runs and complete even if a later trial takes the
whole sweep down. Each row comes from the trial's own files: `.hydra/overrides.yaml` (its settings),
`metrics.jsonl` (TRL's `reward` per step; `eval/...` rows from eval/callback.py) and the status file.

It also closes what a failed trial leaves open in the sweep's process: its W&B run (else the next
trial would log into it) and the frames its traceback holds (else a failed trial's model stays in
memory for the rest of the sweep).

`python -m grpo.sweep_summary <sweep dir>` rebuilds the table from the files alone.
"""

import csv
import gc
import json
import logging
import sys
import traceback
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from hydra.types import RunMode

log = logging.getLogger(__name__)

STATUS_FILE = "trial_status.json"
# The held-out score a sweep maximises: the final evaluation's strict accuracy (eval/callback.py).
OBJECTIVE_METRIC = "accuracy_strict"


class SweepSummary(Callback):
    """Writes summary.csv and summary.md in the sweep dir after each trial and at the end."""

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if config.hydra.mode != RunMode.MULTIRUN:
            return
        error = job_return._return_value if job_return.status == JobStatus.FAILED else None
        trial_dir = Path(config.hydra.runtime.output_dir)
        if error is not None:
            log.error("trial %s failed: %s", trial_dir.name, error, exc_info=error)
            traceback.clear_frames(error.__traceback__)  # drop the failed trial's model and trainer
        _close_wandb_run(failed=error is not None)
        _free_memory()
        status = {"job_num": int(config.hydra.job.num), "status": "failed" if error else "completed"}
        if error is not None:
            status["error"] = f"{type(error).__name__}: {error}"
        (trial_dir / STATUS_FILE).write_text(json.dumps(status) + "\n")
        write_summary(Path(config.hydra.sweep.dir))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        csv_path = write_summary(Path(config.hydra.sweep.dir))
        log.info("Sweep summary: %s (and summary.md)", csv_path)


def _close_wandb_run(failed: bool) -> None:
    """Finish the trial's W&B run if it is still open (a trial that raised never reached finish_wandb)."""
    wandb = sys.modules.get("wandb")
    if wandb is None or getattr(wandb, "run", None) is None:
        return
    try:
        wandb.finish(exit_code=1 if failed else 0)
    except Exception as error:  # W&B trouble must never stop the sweep
        log.warning("W&B finish after the trial failed (%s)", error)


def _free_memory() -> None:
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def run_name_with_settings(cfg: DictConfig, output_dir: Path) -> str:
    """`<task>-<model>-<output dir name>`, plus the run's command-line settings when the dir name lacks
    them: a multirun trial's dir is already named after them, a W&B agent's trial runs in a timestamped dir."""
    from hydra.core.hydra_config import HydraConfig

    name = f"{cfg.task.name}-{cfg.model.name}-{Path(output_dir).name}"
    settings = HydraConfig.get().job.override_dirname if HydraConfig.initialized() else ""
    return f"{name}-{settings}" if settings and settings not in name else name


# -- reading one trial ---------------------------------------------------------------------------
def read_metrics(trial_dir: Path) -> list[dict]:
    """The trial's metrics.jsonl rows (GRPO's, under grpo/ when an SFT stage ran first); [] if none."""
    from eval.card import read_metrics as read_metrics_file

    for path in (trial_dir / "metrics.jsonl", trial_dir / "grpo" / "metrics.jsonl"):
        if path.exists():
            return read_metrics_file(path)  # a killed trial's torn last line is skipped, not fatal
    return []


def final_eval(rows: list[dict]) -> dict[str, float]:
    """The accuracies of the end-of-training evaluation (`eval/phase` == "after"); {} if there was none."""
    after = [row for row in rows if row.get("eval/phase") == "after"]
    if not after:
        return {}
    return {k: v for k, v in after[-1].items() if k.startswith("eval/") and "accuracy" in k and _is_number(v)}


def objective(output_dir: Path, task_name: str) -> float | None:
    """The final held-out `eval/<task>/accuracy_strict` (`accuracy` for a choice task, which has no strict
    and flexible reading): what `grpo.train` returns to a Hydra sweeper."""
    # None without an end-of-training evaluation (eval.limit=0): Optuna then records the trial as failed
    final = final_eval(read_metrics(Path(output_dir)))
    return final.get(f"eval/{task_name}/{OBJECTIVE_METRIC}", final.get(f"eval/{task_name}/accuracy"))


def read_trial(trial_dir: Path) -> dict[str, Any]:
    overrides = [str(o) for o in OmegaConf.load(trial_dir / ".hydra" / "overrides.yaml")]
    status_path = trial_dir / STATUS_FILE
    # no status file: the trial is still running, or the process died during it
    status = json.loads(status_path.read_text()) if status_path.exists() else {"status": "incomplete"}
    if "job_num" not in status:
        status["job_num"] = int(OmegaConf.load(trial_dir / ".hydra" / "hydra.yaml").hydra.job.num)
    rows = read_metrics(trial_dir)
    rewards = [row for row in rows if _is_number(row.get("reward"))]
    return {
        "trial": status["job_num"],
        "status": status["status"],
        "settings": dict(_split_override(o) for o in overrides),
        "steps": rewards[-1]["step"] if rewards else None,
        "final_reward": rewards[-1]["reward"] if rewards else None,
        "eval": final_eval(rows),
        "error": status.get("error", ""),
        "output_dir": str(trial_dir),
        "overrides": " ".join(overrides),
    }


def _split_override(override: str) -> tuple[str, str]:
    key, _, value = override.partition("=")
    return key.lstrip("+~"), value


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# -- the table ------------------------------------------------------------------------------------
def collect_trials(sweep_dir: Path) -> list[dict]:
    trial_dirs = [p.parent.parent for p in Path(sweep_dir).glob("*/.hydra/overrides.yaml")]
    return sorted((read_trial(d) for d in trial_dirs), key=lambda t: t["trial"])


def table(trials: list[dict]) -> tuple[list[str], list[dict], dict[str, str]]:
    """Columns, one flat row per trial, and the settings every trial shares (left out of the columns)."""
    keys = list(dict.fromkeys(k for t in trials for k in t["settings"]))
    varying = [k for k in keys if len({t["settings"].get(k) for t in trials}) > 1]
    swept = varying if varying or len(trials) > 1 else keys
    shared = {k: trials[0]["settings"][k] for k in keys if k not in swept and trials}
    eval_keys = sorted({k for t in trials for k in t["eval"]})
    columns = ["trial", "status", *swept, "steps", "final_reward", *eval_keys, "error", "output_dir", "overrides"]
    rows = []
    for t in trials:
        row = {"trial": t["trial"], "status": t["status"], "steps": t["steps"], "final_reward": t["final_reward"]}
        row.update({k: t["settings"].get(k, "") for k in swept})
        row.update({k: t["eval"].get(k) for k in eval_keys})
        row.update(error=t["error"], output_dir=t["output_dir"], overrides=t["overrides"])
        rows.append(row)
    return columns, rows, shared


def write_summary(sweep_dir: Path) -> Path:
    """Write summary.csv (every column) and summary.md (readable) in the sweep dir; return the CSV path."""
    sweep_dir = Path(sweep_dir)
    columns, rows, shared = table(collect_trials(sweep_dir))
    csv_path = sweep_dir / "summary.csv"
    with csv_path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows({k: "" if v is None else v for k, v in row.items()} for row in rows)
    (sweep_dir / "summary.md").write_text(_markdown(columns, rows, shared))
    return csv_path


def _markdown(columns: list[str], rows: list[dict], shared: dict[str, str]) -> str:
    shown = [c for c in columns if c not in ("output_dir", "overrides")]
    done = sum(r["status"] == "completed" for r in rows)
    lines = [f"# Sweep summary: {len(rows)} trials, {done} completed", ""]
    if shared:
        lines += ["Every trial: `" + " ".join(f"{k}={v}" for k, v in shared.items()) + "`", ""]
    lines += ["| " + " | ".join(shown) + " |", "|" + "---|" * len(shown)]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row[c], c) for c in shown) + " |")
    return "\n".join(lines) + "\n"


def _cell(value, column: str) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    text = str(value).replace("\n", " ").replace("|", "\\|")
    return text[:160] + "…" if column == "error" and len(text) > 160 else text


def main(argv: list[str]) -> None:
    if len(argv) != 1:
        raise SystemExit("usage: python -m grpo.sweep_summary <sweep dir>")
    print(write_summary(Path(argv[0])))


if __name__ == "__main__":
    main(sys.argv[1:])
