"""SIGTERM / SIGINT (preemption, Ctrl-C): stop within seconds, keep every finished step, exit 0.

The first signal asks the run to stop:
- between generations (backward, rewards, logging) the current step finishes, is checkpointed, and the
  run ends (`on_step_end`);
- during a generation (a rollout of transformers generate, or an in-training evaluation) the generation
  stops at its next token (a stopping criterion reads the flag), the unfinished step is discarded (a cut
  completion is never scored or trained on), and the run saves a checkpoint at the last finished step.
A generation can run for many minutes (long completions on CPU), longer than a cluster's grace period
before SIGKILL; this bounds the delay by one decoding step. vLLM rollouts are not covered.
A second signal exits at once (exit 128 + signal), without saving.

Under several processes a signal may reach one rank only (`kill` of one worker, a node's preemption): the
ranks agree at every step end (one all-reduce of a flag), so all of them checkpoint the same step and stop
together, and a generation is not cut short (ranks leaving a generation at different points would leave
the others waiting in the next collective): the stop takes effect at the end of the current step.
"""

import logging
import os
import signal
import sys
import time
from pathlib import Path

import torch
from transformers import StoppingCriteria, StoppingCriteriaList, TrainerCallback

from grpo import ranks

log = logging.getLogger(__name__)

_stopped_by: str | None = None  # signals are process-wide: a stopped stage must not start the next one


def stop_requested() -> str | None:
    """The signal that asked this process to stop, if any (e.g. during the SFT stage of a chained run)."""
    return _stopped_by


class GenerationStopped(Exception):
    """A generation was cut short by a stop signal; its output must not be used."""


class _StopRequested(StoppingCriteria):
    def __init__(self, stop: "GracefulStop"):
        self.stop = stop

    def __call__(self, input_ids, scores, **kwargs):
        return torch.full((input_ids.shape[0],), self.stop.requested is not None, dtype=torch.bool,
                          device=input_ids.device)


class GracefulStop(TrainerCallback):
    """The first signal stops the run at the next step boundary or generated token; a second exits at once."""

    def __init__(self):
        self.requested: str | None = None
        self._previous = {}
        self._step_started: float | None = None

    def install(self) -> "GracefulStop":
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def uninstall(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum, frame):
        name = signal.Signals(signum).name
        if self.requested:
            log.error("%s received again: exiting at once, without saving", name)
            for handler in logging.getLogger().handlers:
                handler.flush()
            sys.stderr.flush()
            os._exit(128 + signum)
        global _stopped_by
        self.requested = _stopped_by = name
        log.warning("%s received: stopping (a generation in progress is cut short, the step it belongs to "
                    "discarded); a second signal exits at once", name)

    def on_step_begin(self, args, state, control, **kwargs):
        self._step_started = time.monotonic()

    def on_step_end(self, args, state, control, **kwargs):
        self._step_started = None
        if ranks.any_rank(self.requested is not None):
            global _stopped_by
            if self.requested is None:
                self.requested = _stopped_by = "a stop signal to another rank"
                log.warning("%s: stopping at step %d with it", self.requested, state.global_step)
            control.should_save = True
            control.should_training_stop = True
        return control

    def train(self, trainer, **train_kwargs) -> None:
        """`trainer.train(**train_kwargs)` with the signal handlers installed and generation stoppable."""
        model = trainer.model
        own_generate = model.__dict__.get("generate")
        if not ranks.distributed():
            _stop_generation_on_request(model, self)
        self.install()
        try:
            trainer.train(**train_kwargs)
        except GenerationStopped:
            self._save_last_finished_step(trainer)
        finally:
            self.uninstall()
            if own_generate is not None:
                model.generate = own_generate
            elif "generate" in model.__dict__:
                del model.generate

    def _save_last_finished_step(self, trainer) -> None:
        state = trainer.state
        if self._step_started is not None:
            log.warning("%s: discarded the unfinished step %d (%.0f s of its work, cut short in generation; "
                        "nothing of it was trained on)", self.requested, state.global_step + 1,
                        time.monotonic() - self._step_started)
        else:
            log.warning("%s: an evaluation was cut short (its results are not recorded)", self.requested)
        if state.global_step == 0:
            log.warning("%s: no training step had finished, so there is nothing to checkpoint", self.requested)
            return
        checkpoint = Path(trainer.args.output_dir) / f"checkpoint-{state.global_step}"
        if not checkpoint.exists():
            trainer._save_checkpoint(trainer.model_wrapped, trial=None)  # what the Trainer's own save step calls
            trainer.control = trainer.callback_handler.on_save(trainer.args, state, trainer.control)
        log.warning("%s: saved %s, the last finished step", self.requested, checkpoint)


def _stop_generation_on_request(model, stop: GracefulStop) -> None:
    """Make `model.generate` (TRL's transformers rollouts and our evaluator call it) end at the next token
    once a stop is requested, and raise GenerationStopped instead of returning the cut output. Set on
    this run's model object only, like grpo/stop_strings.py."""
    generate = model.generate

    def generate_until_stop(*args, **kwargs):
        criteria = StoppingCriteriaList(kwargs.pop("stopping_criteria", None) or [])
        criteria.append(_StopRequested(stop))
        output = generate(*args, stopping_criteria=criteria, **kwargs)
        if stop.requested:
            raise GenerationStopped(stop.requested)
        return output

    model.generate = generate_until_stop
