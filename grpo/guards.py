"""Training-loop guards: skip non-finite updates, and warn when GRPO groups carry no signal.

Both are TrainerCallbacks added in `grpo.train.build_trainer`. Settings come from the optional `guard`
block of the config (read with defaults, so older configs work unchanged):

    guard:
      max_consecutive_nonfinite: 3   # stop after this many skipped updates in a row
      zero_std_threshold: 0.9        # warn when frac_reward_zero_std stays >= this ...
      zero_std_window: 10            # ... for this many logged steps in a row
"""

import logging
from collections import deque

from transformers import TrainerCallback

from grpo import ranks

log = logging.getLogger(__name__)

SKIPPED_METRIC = "train/skipped_nonfinite_updates"


class TrainingHalted(RuntimeError):
    """Training was stopped by a guard; the message names the cause and what was kept."""


def guard_settings(cfg) -> dict:
    guard = cfg.get("guard") or {}
    return {
        "max_consecutive_nonfinite": int(guard.get("max_consecutive_nonfinite", 3)),
        "zero_std_threshold": float(guard.get("zero_std_threshold", 0.9)),
        "zero_std_window": int(guard.get("zero_std_window", 10)),
    }


def build_guards(cfg) -> list:
    settings = guard_settings(cfg)
    return [
        NonFiniteGuard(settings["max_consecutive_nonfinite"]),
        ZeroVarianceWarning(settings["zero_std_threshold"], settings["zero_std_window"]),
    ]


def run_guards_first(trainer, guards) -> None:
    """Move the guards to the head of the trainer's callbacks, and let them see the trainer's engine.

    Their `on_log` adds SKIPPED_METRIC to the logs; the reporting callbacks (W&B, TensorBoard), which
    `report_to` puts ahead of every callback passed to the trainer, must see it already there.
    """
    callbacks = trainer.callback_handler.callbacks
    for guard in reversed(guards):
        if guard in callbacks:
            callbacks.remove(guard)
        callbacks.insert(0, guard)
        guard.trainer = trainer


def grads_are_finite(model) -> bool:
    """On every rank: no rank holds a non-finite gradient (FSDP shards the gradients, so ranks must agree)."""
    import torch

    flags = [_local(p.grad).isfinite().all() for p in model.parameters() if p.grad is not None]
    finite = bool(torch.stack(flags).all()) if flags else True
    return not ranks.any_rank(not finite)


def _local(grad):
    return grad.to_local() if hasattr(grad, "to_local") else grad  # FSDP2's DTensor: this rank's shard


class NonFiniteGuard(TrainerCallback):
    """Drop an update whose gradients hold NaN/inf; stop after `max_consecutive` such updates in a row.

    Runs after clipping and before `optimizer.step()`: a non-finite loss makes the clipped gradients
    non-finite too, so checking the gradients covers both. Setting every `p.grad = None` makes
    torch's optimizers (AdamW included) skip those parameters entirely: no weight change and no
    moment update. The LR scheduler still advances one step (the Trainer steps it unconditionally);
    with fp16 a GradScaler would skip on its own, but Gemma trains in bf16/fp32, where nothing else does.

    Under DeepSpeed the gradients live in the engine (`p.grad` is None) and the engine has stepped inside
    backward, before this hook: there DeepSpeed's ZeRO optimizer skips a non-finite step itself (its
    overflow check, on by default for bf16 and fp32 in DeepSpeed 0.19) and counts it in
    `engine.skipped_steps`, which this guard reads to count and stop the same way.
    """

    def __init__(self, max_consecutive: int = 3):
        self.max_consecutive = max_consecutive
        self.skipped = 0
        self.consecutive = 0
        self.halted: str | None = None
        self.trainer = None  # set by run_guards_first
        self._engine_skipped = 0  # DeepSpeed's count at the start of the step

    def on_step_begin(self, args, state, control, **kwargs):
        engine = getattr(self.trainer, "deepspeed", None)
        self._engine_skipped = engine.skipped_steps if engine is not None else 0

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        engine = getattr(self.trainer, "deepspeed", None)
        if engine is not None:
            finite = engine.skipped_steps == self._engine_skipped
        else:
            finite = grads_are_finite(model)
            if not finite:
                for param in model.parameters():
                    param.grad = None
        if finite:
            self.consecutive = 0
            return control
        self.skipped += 1
        self.consecutive += 1
        step = state.global_step + 1
        log.warning(
            "step %d: non-finite loss or gradients, update skipped (%d in a row, %d in this run)",
            step, self.consecutive, self.skipped,
        )
        if self.consecutive >= self.max_consecutive:
            self.halted = (
                f"{self.consecutive} consecutive updates had non-finite (NaN/inf) loss or gradients "
                f"(last at step {step}; guard.max_consecutive_nonfinite={self.max_consecutive}). "
                "None of them was applied, so the weights and the last checkpoint are the last good ones. "
                "Likely causes: learning rate too high, fp16 overflow, or bad data; lower trainer.learning_rate "
                "or check the inputs, then resume."
            )
            log.error("stopping: %s", self.halted)
            control.should_training_stop = True
        return control

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs is not None and ("loss" in logs or "reward" in logs):
            logs[SKIPPED_METRIC] = self.skipped

    def raise_if_halted(self) -> None:
        if self.halted:
            raise TrainingHalted(self.halted)


class ZeroVarianceWarning(TrainerCallback):
    """Warn when most groups have identical rewards for `window` logged steps in a row.

    A group whose completions all score the same has zero advantage: GRPO learns nothing from it.
    TRL logs the share of such groups as `frac_reward_zero_std`; a share that stays high means the
    reward is too hard (all 0) or too easy (all full marks) for the model.
    """

    def __init__(self, threshold: float = 0.9, window: int = 10):
        self.threshold = threshold
        self.window = window
        self.recent: deque = deque(maxlen=window)
        self.warnings = 0

    def on_log(self, args, state, control, logs=None, **kwargs):
        share = (logs or {}).get("frac_reward_zero_std")
        if share is None:
            return
        self.recent.append(share)
        if len(self.recent) == self.window and min(self.recent) >= self.threshold:
            self.warnings += 1
            log.warning(
                "frac_reward_zero_std >= %.2f for the last %d steps (now %.2f, step %d): most groups score "
                "all-equal, so GRPO gets no signal from them; the reward is too hard or too easy for this "
                "model (check reward means), or raise trainer.num_generations / trainer.temperature",
                self.threshold, self.window, share, state.global_step,
            )
            self.recent.clear()
