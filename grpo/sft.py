"""SFT warm-up stage: `python -m grpo.sft sft=<domain> [+task=gsm8k] [model=...]`, or before GRPO with
`python -m grpo.train +task=gsm8k sft=gsm8k_cot` (grpo.train.run_pipeline).

Small and base models rarely write the answer format a reward can check, so GRPO from a cold start wastes
its first hundreds of steps. This stage teaches the format (and a domain) with TRL's SFTTrainer:
- data: TRL prompt-completion conversations (grpo/sft_data.py), the prompt built exactly as the GRPO
  stage builds it, loss on the completion tokens only (`completion_only_loss`), the same chat template;
- `sft.trainer.*` are SFTConfig fields under TRL's own names, passed 1:1 as SFTConfig(**sft.trainer);
- the adapter comes from the `peft` group, the same LoRA the GRPO stage uses: GRPO loads this adapter
  trainable (`init_adapter`) and keeps training it, unmerged, so the final adapter carries both stages.

Order: validate, seed, data (hub datasets fail here, before any model loads), evaluation data, model,
SFTTrainer, train, save adapter/, done. The run dir holds adapter/, metrics.jsonl, resolved_config.yaml.
"""

import logging
import time
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf, open_dict

from grpo import ranks
from grpo.entry import CONFIG_DIR, prepare_process
from grpo.errors import user_errors
from grpo.profile import cuda_available
from grpo.resume import last_checkpoint
from grpo.validate import (
    ConfigError,
    check_dataclass_fields,
    check_eval,
    check_model,
    check_number,
    check_output_dir,
)

log = logging.getLogger("grpo.sft")

# SFTConfig fields gemma-grpo sets itself (from output_dir, seed, model.dtype, the logger group).
_SFT_KEYS_WE_SET = {"output_dir", "seed", "run_name", "bf16", "use_cpu", "report_to"}
_GPU_OPTIMIZERS = ("8bit", "bnb", "paged")


def validate_sft_config(cfg: DictConfig, cuda: bool | None = None, then_grpo: bool = True) -> None:
    """Check the SFT stage before anything loads. `then_grpo`: a GRPO stage continues this adapter."""
    if cuda is None:
        cuda = cuda_available()
    sft = cfg.sft
    if sft.name == "none":
        raise ConfigError("sft=none: choose an SFT domain, e.g. sft=gsm8k_cot (see conf/sft/)")
    if then_grpo and sft.get("only"):
        raise ConfigError(
            f"sft={sft.name} is set up as an SFT-only recipe (sft.only=true): run it with "
            "`python -m grpo.sft ...`, or set sft.only=false to follow it with GRPO"
        )
    if then_grpo and cfg.peft.method == "full":
        raise ConfigError(
            "sft with peft=full before GRPO: the GRPO stage continues an adapter (init_adapter); use peft=lora "
            "or peft=qlora, or run the full fine-tune alone with `python -m grpo.sft`"
        )
    if cfg.get("init_adapter"):
        raise ConfigError(
            f"init_adapter={cfg.init_adapter} with sft={sft.name}: the SFT stage starts a new adapter and GRPO "
            "continues it; drop one of the two"
        )
    from grpo.sft_data import get_format, get_loader

    get_loader(sft.loader)
    get_format(sft.format)
    check_model(cfg, cuda)
    check_sft_trainer(sft.trainer, cuda)
    check_eval(cfg)


def check_sft_trainer(trainer: DictConfig, cuda: bool) -> None:
    from trl import SFTConfig

    check_dataclass_fields(trainer, SFTConfig, "sft.trainer")
    for key in trainer:
        if key in _SFT_KEYS_WE_SET:
            raise ConfigError(
                f"sft.trainer.{key} is set by gemma-grpo (from output_dir, seed, model.dtype or the logger group)"
            )
    check_number(trainer.learning_rate, "sft.trainer.learning_rate", minimum=0, exclusive=True)
    check_number(trainer.max_steps, "sft.trainer.max_steps", minimum=-1, integer=True)
    if trainer.max_steps == 0 or (trainer.max_steps == -1 and not trainer.get("num_train_epochs")):
        raise ConfigError("sft.trainer.max_steps must be >= 1, or -1 with sft.trainer.num_train_epochs > 0")
    check_number(trainer.per_device_train_batch_size, "sft.trainer.per_device_train_batch_size", minimum=1, integer=True)
    check_number(trainer.gradient_accumulation_steps, "sft.trainer.gradient_accumulation_steps", minimum=1, integer=True)
    check_number(trainer.max_length, "sft.trainer.max_length", minimum=1, integer=True)
    if trainer.get("fp16"):
        raise ConfigError(
            "sft.trainer.fp16=true: Gemma's activations overflow float16 (NaN gradients); bf16 is chosen from "
            "model.dtype (bfloat16 on GPU, float32 on CPU)"
        )
    optim = str(trainer.get("optim") or "")
    if any(mark in optim for mark in _GPU_OPTIMIZERS) and not cuda:
        raise ConfigError(
            f"sft.trainer.optim={optim} is a bitsandbytes optimizer and needs a CUDA GPU; use adamw_torch here"
        )


def run_sft(cfg: DictConfig, output_dir: Path) -> Path:
    """Train the SFT stage into output_dir; return the adapter (or full model) directory."""
    from grpo.patches import patched_for_run

    with patched_for_run():
        return _train_sft(cfg, output_dir)


def _train_sft(cfg: DictConfig, output_dir: Path) -> Path:
    started = time.time()
    output_dir = Path(output_dir)
    check_output_dir(str(output_dir))
    from grpo.hub_access import check_model_access

    check_model_access(cfg.model)  # gated or unreachable hub model: say so before W&B starts
    cfg = _with_output_dir(cfg, output_dir)
    main = ranks.is_main_process()  # run files and W&B: one per launch, from rank 0
    if main:
        OmegaConf.save(cfg, output_dir / "resolved_config.yaml", resolve=True)
    log.info(
        "SFT stage: sft=%s model=%s peft=%s max_steps=%s output_dir=%s",
        cfg.sft.name, cfg.model.name, cfg.peft.method, cfg.sft.trainer.max_steps, output_dir,
    )

    from transformers import set_seed

    set_seed(cfg.seed)
    from grpo.sft_data import load_sft_dataset

    dataset, _ = load_sft_dataset(cfg)
    args = sft_config(cfg, output_dir, _start_tracking(cfg, output_dir) if main else [])
    metrics, stop, callbacks = _callbacks(cfg, output_dir)  # evaluation data loads here, before the model
    from grpo.models import load_model_and_tokenizer
    from grpo.train import peft_config

    model, tokenizer = load_model_and_tokenizer(cfg.model, cfg.peft)
    from trl import SFTTrainer

    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=peft_config(cfg),
        callbacks=callbacks,
    )
    _check_not_all_truncated(trainer, cfg)
    from grpo.fast_decode import speed_up_generation

    speed_up_generation(cfg.rollout, trainer.model)  # the stage's evaluations generate as GRPO's do
    evaluation = next((c for c in callbacks if hasattr(c, "generator_context")), None)
    if evaluation is not None:
        from grpo.distributed_eval import generator_context

        evaluation.generator_context = generator_context(trainer)  # every rank takes part
    stop.train(trainer, resume_from_checkpoint=last_checkpoint(cfg.get("resume", "auto"), output_dir))
    adapter = output_dir / "adapter"
    trainer.save_model(str(adapter))  # every rank: under ZeRO-3 / FSDP the weights are gathered to save
    if main:
        tokenizer.save_pretrained(str(adapter))
        from grpo.run_dir import record_base_model

        record_base_model(adapter, cfg.model)
    from grpo.tracking import finish_wandb

    finish_wandb()  # the GRPO stage starts its own W&B run
    losses = [row["loss"] for row in metrics.history if "loss" in row]
    log.info(
        "SFT done in %.0f s: %d steps, loss %s -> %s; adapter: %s",
        time.time() - started, trainer.state.global_step,
        f"{losses[0]:.3f}" if losses else "n/a", f"{losses[-1]:.3f}" if losses else "n/a", adapter,
    )
    return adapter


def _check_not_all_truncated(trainer, cfg: DictConfig) -> None:
    """TRL silently drops rows whose prompt alone fills max_length (nothing left to learn from)."""
    kept = len(trainer.train_dataset)
    if kept == 0:
        raise ConfigError(
            f"sft.trainer.max_length={cfg.sft.trainer.max_length}: every row's prompt fills it, so no completion "
            "token is left to train on; raise sft.trainer.max_length"
        )
    log.info("SFT: %d rows after tokenization (rows whose prompt alone fills max_length are dropped)", kept)


def _with_output_dir(cfg: DictConfig, output_dir: Path) -> DictConfig:
    cfg = cfg.copy()
    with open_dict(cfg):
        cfg.output_dir = str(output_dir)
    return cfg


def _start_tracking(cfg: DictConfig, output_dir: Path) -> list[str]:
    from grpo.tracking import start_wandb

    run_name = cfg.logger.get("run_name") or f"sft-{cfg.sft.name}-{cfg.model.name}-{output_dir.name}"
    return start_wandb(cfg.logger, run_name, str(output_dir), OmegaConf.to_container(cfg, resolve=True))


def sft_config(cfg: DictConfig, output_dir: Path, report_to: list[str]):
    import torch
    from trl import SFTConfig

    from grpo.models import resolve_dtype

    fields = OmegaConf.to_container(cfg.sft.trainer, resolve=True)
    fields.update(
        output_dir=str(output_dir),
        seed=cfg.seed,
        run_name=f"sft-{cfg.sft.name}-{output_dir.name}",
        bf16=resolve_dtype(cfg.model.dtype) == torch.bfloat16,
        use_cpu=ranks.cpu_data_parallel(),  # on CPU, accelerate starts a process group only when told
        report_to=report_to,
    )
    try:
        return SFTConfig(**fields)
    except (ValueError, TypeError) as error:
        raise ConfigError(f"sft.trainer: {error}") from None


def _callbacks(cfg: DictConfig, output_dir: Path):
    """(metrics writer, stop handler, every callback): the first two by name, for the caller."""
    from grpo.checkpoint_callback import ChecksumManifest
    from grpo.interrupt import GracefulStop
    from grpo.metrics import MetricsJsonlCallback

    metrics, stop = MetricsJsonlCallback(output_dir / "metrics.jsonl"), GracefulStop()
    callbacks = [metrics, stop, ChecksumManifest()]
    evaluation = _in_training_eval(cfg, metrics)
    if evaluation is not None:
        evaluation.prepare()  # load (and check) the evaluation data now, before the model
        callbacks.append(evaluation)
    return metrics, stop, callbacks


def _in_training_eval(cfg: DictConfig, metrics):
    """Before/after evaluation as in GRPO (eval.limit > 0): the task's evaluator when there is a task,
    and `eval.domains` (forgetting checks)."""
    if not cfg.eval.limit:
        return None
    has_task = "task" in cfg and cfg.task is not None
    domains = list(cfg.eval.get("domains") or [])
    if not has_task and not domains:
        log.info("SFT: no task and no eval.domains, so no before/after evaluation")
        return None
    if not has_task:
        cfg = cfg.copy()
        with open_dict(cfg):
            cfg.eval.task = False
    from eval.callback import InTrainingEval

    return InTrainingEval(cfg, metrics)


@hydra.main(version_base=None, config_path=CONFIG_DIR, config_name="train")
def main(cfg: DictConfig) -> None:
    with user_errors("grpo.sft"):
        validate_sft_config(cfg, then_grpo=False)
        run_sft(cfg, Path(cfg.output_dir))


if __name__ == "__main__":
    prepare_process()
    main()
