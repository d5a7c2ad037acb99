"""Reuse the SFT stage's final evaluation as GRPO's "before" evaluation when it scored the same thing.

In `python -m grpo.train ... sft=<name>` GRPO starts from the adapter the SFT stage has just evaluated,
with the same evaluation settings, so its "before" evaluation would repeat that one question for question
(greedy, same fixed subset, same seed): on GSM8K with 256-token answers that is ~10 minutes of two CPU
cores. Reuse is allowed only when everything the evaluation reads is equal in the SFT stage's
resolved_config.yaml and the GRPO config (tests/test_eval_reuse.py); otherwise GRPO evaluates as usual
and says why.
"""

import logging
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FinishedEvaluation:
    """An "after" row of a finished stage's metrics.jsonl and the file of what the model wrote then."""

    row: dict
    samples: Path | None
    stage_dir: Path


def evaluation_settings(cfg: DictConfig) -> dict:
    """Everything an in-training evaluation's result depends on besides the weights."""
    def value(key: str):
        node = OmegaConf.select(cfg, key)
        return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node

    # trainer.max_completion_length: what eval.max_new_tokens=null falls back to (eval/suite.py)
    return {key: value(key) for key in ("model", "task", "eval", "seed", "trainer.max_completion_length")}


def reusable_final_evaluation(stage_dir: Path, cfg: DictConfig) -> FinishedEvaluation | None:
    """The final evaluation of the stage in `stage_dir` when it scored the adapter that stage saved with
    the evaluation settings of `cfg`; None otherwise (with a log line when the settings are why)."""
    from eval.card import read_metrics

    stage_dir = Path(stage_dir)
    config_path = stage_dir / "resolved_config.yaml"
    if not config_path.exists():
        return None
    if cfg.eval.get("final_full"):
        log.info("GRPO evaluates before its first step: the SFT stage's final evaluation used the whole test "
                 "set (eval.final_full=true), not the fixed subset")
        return None
    if evaluation_settings(OmegaConf.load(config_path)) != evaluation_settings(cfg):
        log.info("GRPO evaluates before its first step: the SFT stage in %s was evaluated with other settings",
                 stage_dir)
        return None
    evaluations = [row for row in read_metrics(stage_dir / "metrics.jsonl") if "eval/phase" in row]
    if not evaluations or evaluations[-1]["eval/phase"] != "after":
        return None
    after = evaluations[-1]
    samples = stage_dir / f"samples_step-{after['step']}.jsonl"
    return FinishedEvaluation(after, samples if samples.exists() else None, stage_dir)

