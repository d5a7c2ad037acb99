"""The end-of-run summary printed to the console (and the resume line after a preemption)."""

import logging
import sys
import textwrap
from pathlib import Path

from eval.card import experiment_choice, smoke_run_note
from grpo.resume import resume_command

log = logging.getLogger("grpo.train")

# Fewer optimizer steps than this cannot show learning on any task we ship (the learning experiment in
# docs/results.md needs several times more), so such a run is reported as a smoke run: it checks that
# the pipeline works end to end, and says so instead of letting a before/after table look like a result.
def reward_trajectory(history: list[dict]) -> list[tuple[int, float]]:
    return [(row["step"], row["reward"]) for row in history if row.get("reward") is not None]


def print_summary(cfg, history: list[dict], global_step: int, output_dir: Path, wall_time_s: float,
                  stopped_by: str | None) -> None:
    """`history`: this run's metrics.jsonl rows; `global_step`: where training stopped."""
    rewards = reward_trajectory(history)
    lines = [
        "",
        "=" * 72,
        f"gemma-grpo run finished: {cfg.task.name} on {cfg.model.name} ({cfg.peft.method}, rollout={cfg.rollout.name})",
        f"  steps: {global_step}/{cfg.trainer.max_steps}   wall time: {wall_time_s / 60:.1f} min",
    ]
    if rewards:
        trajectory = " ".join(f"{r:.2f}" for _, r in rewards)
        lines.append(f"  reward per step: {trajectory}")
        names = sorted({k for row in history for k in row if k.startswith("rewards/") and k.endswith("/mean")})
        for name in names:
            values = [row[name] for row in history if row.get(name) is not None]
            lines.append(f"  {name}: first {values[0]:.3f}  last {values[-1]:.3f}")
    lines += [
        f"  adapter:  {output_dir / 'adapter'}",
        f"  metrics:  {output_dir / 'metrics.jsonl'}",
        f"  config:   {output_dir / 'resolved_config.yaml'}",
    ]
    note = smoke_run_note(cfg.trainer.max_steps, experiment_choice())
    if note:
        # break_on_hyphens=False keeps the command (+experiment=cpu-learning) copyable
        lines += ["", *textwrap.wrap(note, 70, initial_indent="  ", subsequent_indent="  ", break_on_hyphens=False)]
    if stopped_by:
        lines.append(
            f"  stopped by {stopped_by} after a checkpoint; continue it with: "
            f"{resume_command('grpo.train', output_dir)}"
        )
    lines.append("=" * 72)
    print("\n".join(lines), file=sys.stderr)
