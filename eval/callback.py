"""Held-out evaluation inside training: before the first step, every N steps, and at the end.

Always the same fixed subset of `eval.limit` test questions (a seeded shuffle, first N; never training
data), so points on the curve are comparable; evaluating the full test set during training would cost
as much as many training steps (in public verl GSM8K logs one full pass cost ~10 training steps). `eval.final_full=true` scores the
whole test set at the end instead.

Built by grpo/train.py as `InTrainingEval(cfg, metrics_writer)` and passed to the trainer's callbacks
after the MetricsJsonlCallback. Each evaluation is one `metrics.jsonl` row
({"step": s, "eval/phase": "before|during|after", "eval/gsm8k/accuracy_strict": ..., ...}) and, when a
W&B run is active, one `wandb.log`. `history` keeps every evaluation for the model card. What the model
wrote for each question is kept beside metrics.jsonl as `samples_step-<N>.jsonl` (one JSON object per
question: prompt, completion, extracted answer, gold, correct), so a reader can see what a score means.

When GRPO continues the adapter an SFT stage has just evaluated with the same settings, the "before"
evaluation is that one, reused rather than repeated (eval/reuse.py).

Every process of a multi-process launch evaluates (the trainer sets `generator_context`, which shares the
prompts out across ranks: grpo/distributed_eval.py); only the main process writes.
"""

import json
import logging
import time
from contextlib import contextmanager
from pathlib import Path

from transformers import TrainerCallback

from eval.generate import HFGenerator
from eval.suite import eval_seed, selected_evaluators

log = logging.getLogger(__name__)


class InTrainingEval(TrainerCallback):
    def __init__(self, cfg, metrics_writer, samples_dir: Path | None = None, start=None):
        """`samples_dir`: where samples_step-N.jsonl go; default the directory of metrics_writer's file.
        `start`: an evaluation of the very weights training starts from, with these settings
        (eval.reuse.FinishedEvaluation); the "before" evaluation reuses it instead of repeating it."""
        self.cfg = cfg
        self.start = start
        self.metrics_writer = metrics_writer
        if samples_dir is None and metrics_writer is not None:
            samples_dir = Path(metrics_writer.path).parent
        self.samples_dir = Path(samples_dir) if samples_dir is not None else None
        self.every_n_steps = int(cfg.eval.get("every_n_steps") or 0)
        self.history: list[dict] = []
        self._prepared: list | None = None
        # (model, make_generator) -> context yielding the Generator to score with; the trainer may replace it
        self.generator_context = _plain_generator

    # -- trainer hooks ------------------------------------------------------------------------
    def on_train_begin(self, args, state, control, **kwargs):
        if state.global_step > 0:
            log.info("Resumed at step %d: the baseline evaluation is in metrics.jsonl already", state.global_step)
            return
        if self.start is not None:
            self.reuse_start(state)
            return
        self.evaluate(state, kwargs["model"], kwargs["processing_class"], "before")

    def on_step_end(self, args, state, control, **kwargs):
        step = state.global_step
        if self.every_n_steps and step % self.every_n_steps == 0 and step < state.max_steps:
            self.evaluate(state, kwargs["model"], kwargs["processing_class"], "during")

    def on_train_end(self, args, state, control, **kwargs):
        full = bool(self.cfg.eval.get("final_full", False))
        self.evaluate(state, kwargs["model"], kwargs["processing_class"], "after", full=full)

    # -- evaluation ---------------------------------------------------------------------------
    def evaluate(self, state, model, tokenizer, phase: str, full: bool = False) -> dict:
        """Score the fixed subset with the model as it is now; log and keep the row (the main process)."""
        started = time.time()
        row = {"step": state.global_step, "eval/phase": phase}
        samples = []

        def make_generator(generation_model):
            return HFGenerator(generation_model, tokenizer, batch_size=self.cfg.eval.batch_size,
                               seed=eval_seed(self.cfg))

        with self.generator_context(model, make_generator) as generator:
            for evaluator, rows in self._data(full):
                result = evaluator.score(rows, generator, self.cfg)
                row.update(result.prefixed("eval/"))
                samples += [{"evaluator": result.name, "step": state.global_step, "phase": phase, **sample}
                            for sample in result.samples]
            row["eval/generator"] = getattr(generator, "name", "transformers")  # vllm: the colocated engine
        if not state.is_world_process_zero:
            return row
        self._write_samples(state.global_step, samples)
        row["eval/wall_time_s"] = round(time.time() - started, 2)
        return self._keep(row, f"eval {phase} step {state.global_step}")

    def reuse_start(self, state) -> dict:
        """Record the given evaluation of the starting weights as this run's "before" evaluation."""
        row = {key: value for key, value in self.start.row.items() if key.startswith("eval/")}
        row.update({"step": state.global_step, "eval/phase": "before", "eval/reused_from": str(self.start.stage_dir),
                    "eval/wall_time_s": 0.0})  # nothing was generated again
        if not state.is_world_process_zero:
            return row
        if self.start.samples is not None:
            samples = [json.loads(line) for line in self.start.samples.read_text().splitlines() if line.strip()]
            self._write_samples(state.global_step, [{**s, "step": state.global_step, "phase": "before"} for s in samples])
        return self._keep(row, f"eval before step {state.global_step}: reused the final evaluation of "
                               f"{self.start.stage_dir} (same adapter, same settings)")

    def _keep(self, row: dict, label: str) -> dict:
        """Log an evaluation row, keep it for the card, write it to metrics.jsonl and W&B (main process)."""
        log.info("%s: %s", label, "  ".join(f"{k[5:]}={v:.3f}" for k, v in row.items() if _is_score(k, v)))
        self.history.append(row)
        self.metrics_writer.write(row)
        _wandb_log(row)
        return row

    def _write_samples(self, step: int, samples: list[dict]) -> None:
        if self.samples_dir is None:
            return
        path = self.samples_dir / f"samples_step-{step}.jsonl"
        path.write_text("".join(json.dumps(sample, default=str) + "\n" for sample in samples))

    def prepare(self) -> None:
        """Load (and check) the fixed subset now, e.g. before the model is loaded, so missing data fails
        the run at start-up rather than at the first evaluation."""
        self._data(full=False)

    def _data(self, full: bool) -> list:
        if full:
            return [(ev, ev.load(self.cfg, None)) for ev in selected_evaluators(self.cfg)]
        if self._prepared is None:
            self._prepared = [(ev, ev.load(self.cfg, self.cfg.eval.limit)) for ev in selected_evaluators(self.cfg)]
        return self._prepared


@contextmanager
def _plain_generator(model, make_generator):
    yield make_generator(model)


def _is_score(key: str, value) -> bool:
    return isinstance(value, float) and "accuracy" in key


def _wandb_log(row: dict) -> None:
    """Log to the active W&B run on TRL's step axis; W&B trouble never stops training."""
    try:
        import wandb

        if wandb.run is not None:
            numbers = {k: v for k, v in row.items() if isinstance(v, int | float) and k != "step"}
            wandb.log({**numbers, "train/global_step": row["step"]})
    except Exception as error:
        log.warning("W&B log of the evaluation failed (%s); it is in metrics.jsonl", error)
