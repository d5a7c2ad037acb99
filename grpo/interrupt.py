"""SIGTERM / SIGINT (preemption, Ctrl-C): finish the current step, checkpoint, and stop cleanly."""

import logging
import signal

from transformers import TrainerCallback

log = logging.getLogger(__name__)


class GracefulStop(TrainerCallback):
    """The first signal asks for a checkpoint at the next step boundary; a second one exits at once."""

    def __init__(self):
        self.requested: str | None = None
        self._previous = {}

    def install(self) -> "GracefulStop":
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def uninstall(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = signal.Signals(signum).name
        log.warning("%s received: checkpointing at the end of this step, then stopping", self.requested)

    def on_step_end(self, args, state, control, **kwargs):
        if self.requested:
            control.should_save = True
            control.should_training_stop = True
        return control
