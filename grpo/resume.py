"""Where a run continues from: the same rule for GRPO and the SFT stage, and `resume=<run dir>|latest`.

`resume` is `auto` (the newest checkpoint in the run dir that verifies, if any), `never`, a checkpoint dir,
a run dir, or `latest` (the newest run of this task under outputs/ that has a checkpoint). The last two
continue that run in its own dir: `resolve_resume_argv` turns them into `hydra.run.dir=<that dir>` and
`resume=auto` before Hydra starts, so checkpoints, metrics.jsonl and the W&B run id all stay together.

A checkpoint is complete when it verifies against its manifest (grpo/checkpoints.py): `auto` skips, with
the reason, every newer checkpoint that does not. When none verifies and one of them had been saved in
full (it is damaged, not merely cut short by a kill while being written) it refuses to start afresh: that
would silently throw the run's work away. Checkpoints that were all cut short hold no finished work, so
the run starts afresh (a preempted job requeued with the same command keeps going).
"""

import logging
from pathlib import Path

from grpo.checkpoints import CHECKPOINT_PREFIX, checkpoint_problem, saved_in_full
from tasks import ConfigError

log = logging.getLogger(__name__)

OUTPUTS = Path("outputs")


def checkpoints_newest_first(run_dir: Path) -> list[Path]:
    found = [p for p in Path(run_dir).glob(f"{CHECKPOINT_PREFIX}*") if p.name[len(CHECKPOINT_PREFIX):].isdigit()]
    return sorted(found, key=lambda p: int(p.name[len(CHECKPOINT_PREFIX):]), reverse=True)


def is_complete(checkpoint: Path) -> bool:
    """Every file the checkpoint needs is there and intact (grpo/checkpoints.py)."""
    return checkpoint_problem(checkpoint) is None


def last_checkpoint(resume: str, output_dir: Path) -> str | None:
    """The checkpoint to continue from (see the module docstring); None: start afresh."""
    if resume == "never":
        return None
    if resume != "auto":
        problem = checkpoint_problem(Path(resume))
        if problem:
            raise ConfigError(f"resume={resume}: not a complete checkpoint ({problem}); use resume=auto, never, "
                              "a run dir or latest")
        return resume
    damaged = []
    for checkpoint in checkpoints_newest_first(output_dir):
        problem = checkpoint_problem(checkpoint)
        if problem is None:
            log.info("Resuming from %s", checkpoint)
            return str(checkpoint)
        log.warning("Skipping %s: %s", checkpoint, problem)
        if saved_in_full(checkpoint):
            damaged.append(f"{checkpoint.name} ({problem})")
    if damaged:
        raise ConfigError(
            f"resume=auto: {output_dir} holds checkpoints but none verifies: {'; '.join(damaged)}. Move or delete "
            "them to start this run afresh, or run in a new dir (drop hydra.run.dir / resume=<run dir>)"
        )
    return None


def is_run_dir(path: Path) -> bool:
    """A run's output dir (GRPO's, or a chained run's root with sft/ and grpo/), not a checkpoint."""
    path = Path(path)
    return path.is_dir() and not path.name.startswith(CHECKPOINT_PREFIX) and (
        (path / "resolved_config.yaml").exists() or (path / "sft").is_dir() or (path / "grpo").is_dir()
    )


def latest_run(task: str, outputs: Path | None = None) -> Path | None:
    """The newest run dir of `task` (outputs/<task>/<time>) holding a complete checkpoint, itself or in
    its sft/ or grpo/ stage."""
    outputs = outputs or OUTPUTS
    runs = sorted((p for p in (outputs / task).glob("*") if p.is_dir()), reverse=True)
    for run in runs:
        stages = [run, run / "sft", run / "grpo"]
        if any(is_complete(c) for stage in stages for c in checkpoints_newest_first(stage)):
            return run
    return None


def resolve_resume_argv(argv: list[str]) -> list[str]:
    """`resume=<run dir>` or `resume=latest` -> `hydra.run.dir=<run dir> resume=auto`."""
    value = next((a.split("=", 1)[1] for a in argv if a.startswith("resume=")), None)
    if value is None or value in ("auto", "never"):
        return argv
    if value == "latest":
        task = next((a.split("=", 1)[1] for a in argv if a.lstrip("+").startswith("task=")), None)
        run = latest_run(task) if task else None
        if run is None:
            raise ConfigError(f"resume=latest: no run of task {task} under {OUTPUTS}/ has a checkpoint to continue"
                              if task else "resume=latest needs +task=<name> to know which runs to look at")
    elif is_run_dir(Path(value)):
        run = Path(value)
    else:
        return argv  # a checkpoint dir: last_checkpoint checks it
    log.info("Continuing the run in %s", run)
    kept = [a for a in argv if not a.startswith(("resume=", "hydra.run.dir="))]
    return [*kept, f"hydra.run.dir={run}", "resume=auto"]


def resume_command(module: str, output_dir: Path) -> str:
    """The command that continues this run in its own dir (a chained run's root, not its grpo/ stage)."""
    output_dir = Path(output_dir)
    if output_dir.name in ("grpo", "sft") and (output_dir.parent / "sft").is_dir():
        output_dir = output_dir.parent
    return f"python -m {module} <the same overrides> resume={output_dir}"
