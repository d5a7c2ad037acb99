"""metrics.jsonl: one JSON object per logged training step, flushed as it is written.

Written line by line (and flushed) so an interrupted run keeps every step it logged. A resumed run
appends; steps at or after the resume point are dropped from the old file first so the log has each
step once. Only the main process writes (TRL gathers the metrics of every rank before logging).
"""

import json
import math
import time
from pathlib import Path

from transformers import TrainerCallback


def _finite_or_none(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _step(line: str) -> float:
    """The step of a metrics.jsonl line; inf (dropped on resume) for a line cut short by a kill."""
    try:
        return json.loads(line).get("step", 0)
    except (json.JSONDecodeError, AttributeError):
        return math.inf


class MetricsJsonlCallback(TrainerCallback):
    def __init__(self, path: Path):
        self.path = Path(path)
        self._last_time = None
        self.history: list[dict] = []

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero and self.path.exists() and state.global_step > 0:
            kept = [line for line in self.path.read_text(errors="replace").splitlines() if _step(line) <= state.global_step]
            self.path.write_text("".join(line + "\n" for line in kept))
        self._last_time = time.monotonic()

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or not state.is_world_process_zero:
            return
        row = {"step": state.global_step, **{k: _finite_or_none(v) for k, v in logs.items()}}
        if "loss" in logs or "reward" in logs:
            now = time.monotonic()
            row["wall_step_time_s"] = now - self._last_time if self._last_time else None
            self._last_time = now
        self.history.append(row)
        self.write(row)

    def write(self, row: dict) -> None:
        with self.path.open("a") as handle:
            handle.write(json.dumps(row) + "\n")
            handle.flush()
