"""GRPO training of a Gemma model: `python -m grpo.train +task=gsm8k`.

The steps read like open-r1's `grpo.py`: validate, seed, resume point, W&B, data, model, rewards,
GRPOTrainer, train, save, report. Where this departs from textbook GRPO (Shao et al., 2024):
- TRL's defaults apply: no KL term (beta=0, so no reference model), one policy update per generation
  batch (num_iterations=1), DAPO token-level loss normalisation, rewards scaled by the group's std.
- The model trains LoRA adapters by default (peft=lora); peft=full trains every weight.
- Batch sizes are derived from prompts per step and the group size (grpo/batching.py).
"""

import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf, open_dict

from grpo import ranks
from grpo.engine_eval import engine_evaluation_new_tokens
from grpo.hub_access import check_model_access
from grpo.entry import CONFIG_DIR, prepare_process
from grpo.errors import user_errors
from grpo.profile import cuda_available
from grpo.resume import last_checkpoint
from grpo.validate import ConfigError, check_context_length, validate_training_config
from grpo.vllm_env import fit_vllm_context, prepare_vllm

log = logging.getLogger("grpo.train")



def run_training(cfg: DictConfig, start_evaluation=None) -> Path:
    """Train as configured; return the output directory. Library patches the run applies are undone
    when it ends (grpo/patches.py), so a sweep's next trial starts clean. `start_evaluation`: an
    evaluation of the starting weights to reuse as the "before" one (eval/reuse.py)."""
    from grpo.patches import patched_for_run

    with patched_for_run():
        return _train(cfg, start_evaluation)


def _train(cfg: DictConfig, start_evaluation=None) -> Path:
    started = time.time()
    cuda = cuda_available()
    plan, reward_funcs, reward_weights = validate_training_config(cfg, cuda)
    trainer_class(cfg)  # checks the dynamic_sampling and batch switches before any model loads
    from grpo.hub_push import check_hub_config, push_run

    check_hub_config(cfg.get("hub"))
    check_model_access(cfg.model)  # gated or unreachable hub model: say so before W&B starts
    check_context_length(cfg)
    output_dir = Path(cfg.output_dir)
    cfg = as_run(cfg, plan)
    log_resolved(cfg, plan, cuda, output_dir)
    main = ranks.is_main_process()  # run files, W&B, card and upload: one per launch, from rank 0
    if main:
        OmegaConf.save(cfg, output_dir / "resolved_config.yaml", resolve=True)

    from transformers import set_seed

    set_seed(cfg.seed)
    checkpoint = last_checkpoint(cfg.resume, output_dir)
    report_to = start_tracking(cfg, output_dir) if main else []
    args = grpo_config(cfg, plan, reward_weights, report_to, output_dir)

    from tasks import build_task

    train_dataset, data_report = build_task(cfg.task).hf_dataset("train")
    model, tokenizer = load_policy(cfg)
    prepare_vllm(cfg.rollout, cfg.model)
    fit_vllm_context(args, train_dataset, tokenizer, engine_evaluation_new_tokens(cfg))
    run = build_trainer(cfg, args, model, tokenizer, train_dataset, reward_funcs, output_dir, start_evaluation)
    trainer = run.trainer
    from grpo.checkpoint_callback import ChecksumManifest

    trainer.add_callback(ChecksumManifest())  # a checkpoint is complete when its manifest verifies

    stop = run.stop
    stop.train(trainer, resume_from_checkpoint=checkpoint)  # a stop signal ends it early (grpo/interrupt.py)
    run.nonfinite_guard.raise_if_halted()
    save_final(trainer, output_dir, cfg.model)
    if main:
        summarise(cfg, run, output_dir, time.time() - started, stop.requested, data_report.summary())
        push_run(cfg, output_dir)
        from grpo.tracking import finish_wandb

        finish_wandb()
    return output_dir


def as_run(cfg: DictConfig, plan) -> DictConfig:
    """The config with the values the run really uses filled in, for resolved_config.yaml and W&B: the
    derived batch sizes, bf16 from the model's dtype, the rollout's GRPOConfig fields (use_vllm, ...),
    and the profile `profile=auto` resolved to."""
    import torch

    from grpo.models import resolve_dtype

    cfg = cfg.copy()
    with open_dict(cfg):
        overrides = cfg.rollout.get("trainer_overrides")
        if overrides:
            cfg.trainer = OmegaConf.merge(cfg.trainer, overrides)
        cfg.trainer.per_device_train_batch_size = plan.per_device_train_batch_size
        cfg.trainer.gradient_accumulation_steps = plan.gradient_accumulation_steps
        # TRL counts micro-batches; batch.optimizer_steps_per_generation counts optimizer steps
        cfg.trainer.steps_per_generation = plan.gradient_accumulation_steps * cfg.batch.optimizer_steps_per_generation
        cfg.trainer.bf16 = resolve_dtype(cfg.model.dtype) == torch.bfloat16
        # on CPU, accelerate starts a process group only when told (grpo/ranks.py)
        # (not under DeepSpeed, which would quietly become plain CPU data parallel: grpo/validate.py)
        cfg.trainer.use_cpu = ranks.cpu_data_parallel()
        cfg.profile = _profile_choice()
    return cfg


def _profile_choice() -> str | None:
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get().runtime.choices.get("profile") if HydraConfig.initialized() else None


def log_resolved(cfg: DictConfig, plan, cuda: bool, output_dir: Path) -> None:
    from grpo.models import resolve_dtype

    log.info(
        "model=%s (%s) device=%s dtype=%s rollout=%s peft=%s steps=%d output_dir=%s",
        cfg.model.name,
        cfg.model.hub_id or cfg.model.source,
        "cuda" if cuda else "cpu",
        str(resolve_dtype(cfg.model.dtype)).replace("torch.", ""),
        cfg.rollout.name,
        cfg.peft.method,
        cfg.trainer.max_steps,
        output_dir,
    )
    log.info(plan.explain())
    per_rollout = cfg.batch.optimizer_steps_per_generation
    if per_rollout > 1:
        log.info("one generate() call serves %d optimizer steps (batch.optimizer_steps_per_generation)", per_rollout)
        if cfg.trainer.max_steps > 0 and cfg.trainer.max_steps % per_rollout:
            log.warning("trainer.max_steps=%d is not a multiple of batch.optimizer_steps_per_generation=%d: the last "
                        "rollout's completions for %d step(s) go unused", cfg.trainer.max_steps, per_rollout,
                        per_rollout - cfg.trainer.max_steps % per_rollout)


def start_tracking(cfg: DictConfig, output_dir: Path) -> list[str]:
    from grpo.tracking import start_wandb

    from grpo.sweep_summary import run_name_with_settings

    run_name = cfg.logger.get("run_name") or run_name_with_settings(cfg, output_dir)
    config = OmegaConf.to_container(cfg, resolve=True)
    return start_wandb(cfg.logger, run_name, str(output_dir), config, resume_id=_wandb_id(output_dir))


def _wandb_id(output_dir: Path) -> str:
    """One W&B run id per output dir, so a resumed run continues the same W&B run."""
    import uuid

    id_file = output_dir / ".wandb_run_id"
    if not id_file.exists():
        id_file.write_text(uuid.uuid4().hex[:12])
    return id_file.read_text().strip()


def load_policy(cfg: DictConfig):
    """The base model and tokenizer, with `init_adapter` loaded trainable when given.

    GRPO continues training the same adapter (it is not merged): the final adapter loads directly on
    the base model and carries both stages.
    """
    from grpo.models import load_model_and_tokenizer

    model, tokenizer = load_model_and_tokenizer(cfg.model, cfg.peft)
    if cfg.init_adapter:
        from peft import PeftModel

        if not (Path(cfg.init_adapter) / "adapter_config.json").exists():
            raise ConfigError(f"init_adapter={cfg.init_adapter} holds no adapter_config.json")
        model = PeftModel.from_pretrained(model, cfg.init_adapter, is_trainable=True)
        log.info("Starting from adapter %s", cfg.init_adapter)
    return model, tokenizer


def peft_config(cfg: DictConfig):
    if cfg.peft.method == "full" or cfg.init_adapter:
        return None
    from peft import LoraConfig

    target = cfg.peft.target_modules or cfg.model.lora_target_modules
    target = list(target) if OmegaConf.is_list(target) else target
    return LoraConfig(
        r=cfg.peft.r,
        lora_alpha=cfg.peft.lora_alpha,
        lora_dropout=cfg.peft.lora_dropout,
        bias=cfg.peft.bias,
        target_modules=target,
        task_type="CAUSAL_LM",
    )


def grpo_config(cfg: DictConfig, plan, reward_weights, report_to, output_dir: Path):
    from trl import GRPOConfig

    fields = OmegaConf.to_container(as_run(cfg, plan).trainer, resolve=True)
    fields.update(
        output_dir=str(output_dir),
        seed=cfg.seed,
        reward_weights=list(reward_weights),
        report_to=report_to,
        run_name=output_dir.name,
    )
    try:
        return GRPOConfig(**fields)
    except (ValueError, TypeError) as error:
        raise ConfigError(f"trainer: {error}") from None


def trainer_class(cfg: DictConfig):
    """TRL's GRPOTrainer, or its dynamic-sampling subclass (grpo/dynamic_sampling.py) when enabled, with the
    shared prompt encoding of the training pass (grpo/shared_prompt_forward.py), the sampler's old
    log-probs (grpo/sampler_old_logps.py) and the whole-group shuffle (grpo/group_shuffle.py) when enabled."""
    dynamic = _switch(cfg, "dynamic_sampling", "enabled")
    _switch(cfg, "batch", "cpu_lean_logprob_head")  # checked here, before any model loads
    shared = _switch(cfg, "batch", "share_prompt_forward")
    whole_groups = _switch(cfg, "batch", "shuffle_whole_groups")
    # TRL runs its old-log-prob pass only when a rollout serves several updates
    off_policy = cfg.batch.optimizer_steps_per_generation > 1 or cfg.trainer.num_iterations > 1
    sampler_logps = (_switch(cfg, "rollout", "sampler_old_logps") and _switch(cfg, "rollout", "inverse_cdf_sampling")
                     and off_policy)
    if dynamic:
        from grpo.dynamic_sampling import DynamicSamplingGRPOTrainer as chosen
    else:
        from trl import GRPOTrainer as chosen
    if shared:
        from grpo.shared_prompt_forward import with_shared_prompt_forward

        chosen = with_shared_prompt_forward(chosen)
    if sampler_logps:
        from grpo.sampler_old_logps import with_sampler_old_logps

        chosen = with_sampler_old_logps(chosen)
    if whole_groups:
        from grpo.group_shuffle import with_whole_group_shuffle

        chosen = with_whole_group_shuffle(chosen)
    return chosen


def _switch(cfg: DictConfig, block: str, key: str) -> bool:
    value = (cfg.get(block) or {}).get(key, False)
    if not isinstance(value, bool):
        raise ConfigError(f"{block}.{key}={value!r}: use true or false")
    return value


@dataclass
class TrainingRun:
    """The trainer and the pieces of ours it runs with, by name (nothing of ours is set on TRL's trainer)."""

    trainer: object
    metrics: object  # MetricsJsonlCallback: metrics.jsonl, and the rows of this process
    stop: object  # GracefulStop: SIGTERM / SIGINT
    evaluation: object | None  # InTrainingEval, or None with eval.limit=0
    nonfinite_guard: object


def build_trainer(cfg, args, model, tokenizer, train_dataset, reward_funcs, output_dir: Path,
                  start_evaluation=None) -> TrainingRun:
    from grpo.fast_decode import speed_up_generation
    from grpo.guards import build_guards, run_guards_first
    from grpo.interrupt import GracefulStop
    from grpo.metrics import MetricsJsonlCallback
    from grpo.patches import lean_logprob_head_on_cpu, score_only_completion_tokens_on_cpu

    if not cuda_available():
        score_only_completion_tokens_on_cpu()
        if _switch(cfg, "batch", "cpu_lean_logprob_head"):
            lean_logprob_head_on_cpu()

    metrics = MetricsJsonlCallback(output_dir / "metrics.jsonl")
    graceful_stop = GracefulStop()
    guards = build_guards(cfg)
    evaluation = in_training_eval(cfg, metrics, start_evaluation)
    callbacks = [metrics, graceful_stop, *evaluation]
    trainer = trainer_class(cfg)(
        model=model,
        reward_funcs=reward_funcs,
        args=args,
        train_dataset=train_dataset,
        processing_class=tokenizer,
        peft_config=peft_config(cfg),
        callbacks=callbacks,
    )
    run_guards_first(trainer, guards)  # their additions to the logs reach W&B and metrics.jsonl
    if evaluation:
        from grpo.distributed_eval import generator_context
        from grpo.engine_eval import engine_evaluation

        # every rank takes part; on the colocated vLLM engine when there is one (eval.generator)
        evaluation[0].generator_context = generator_context(trainer, engine_evaluation(cfg, trainer, tokenizer))
    speed_up_generation(cfg.rollout, trainer.model, getattr(trainer, "sampled_logps", None))  # grpo/fast_decode.py
    if cfg.rollout.get("end_at_stop_strings"):
        from grpo.models import eos_token_ids
        from grpo.stop_strings import end_rollouts_at_stop_strings
        from tasks import build_task

        end_rollouts_at_stop_strings(trainer.model, tokenizer, build_task(cfg.task).stop,
                                     eos_token_ids(cfg.model, tokenizer)[0])
    return TrainingRun(trainer, metrics, graceful_stop, evaluation[0] if evaluation else None, guards[0])


def in_training_eval(cfg: DictConfig, metrics, start_evaluation=None) -> list:
    if cfg.eval.limit == 0:
        return []
    from eval.callback import InTrainingEval

    return [InTrainingEval(cfg, metrics, start=start_evaluation)]


def save_final(trainer, output_dir: Path, model_cfg) -> None:
    """The final adapter (or full model) in output_dir/adapter, loadable with PeftModel.from_pretrained
    on the base's hub id (not our local cache path) on any machine."""
    from grpo.run_dir import record_base_model

    final = output_dir / "adapter"
    trainer.save_model(str(final))  # every rank: under ZeRO-3 / FSDP the weights are gathered to save
    if ranks.is_main_process():
        trainer.processing_class.save_pretrained(str(final))
        record_base_model(final, model_cfg)


def summarise(cfg, run: TrainingRun, output_dir: Path, wall_time_s: float, stopped_by: str | None,
              data_source: str | None = None) -> None:
    """Model card and plots in output_dir, then the console summary."""
    from eval.card import write_run_report
    from grpo.summary import print_summary

    write_run_report(output_dir, cfg, run.evaluation, wall_time_s, data_source)
    print_summary(cfg, run.metrics.history, run.trainer.state.global_step, output_dir, wall_time_s, stopped_by)


def run_pipeline(cfg: DictConfig) -> Path:
    """The optional SFT warm-up stage, then GRPO starting from its adapter (each in its own subfolder).

    Both stages' configs are checked before either starts, so a bad GRPO setting never wastes an SFT run.
    """
    if cfg.sft.name == "none":
        return run_training(cfg)
    from grpo.interrupt import stop_requested
    from grpo.resume import resume_command
    from grpo.sft import run_sft, validate_sft_config

    validate_training_config(cfg, cuda_available())
    trainer_class(cfg)
    validate_sft_config(cfg)
    root = Path(cfg.output_dir)
    sft_adapter = run_sft(cfg, root / "sft")
    if stop_requested():
        log.warning("Stopped by %s during the SFT stage, so GRPO does not start; continue with: %s",
                    stop_requested(), resume_command("grpo.train", root / "sft"))
        return root / "sft"
    grpo_cfg = cfg.copy()
    with open_dict(grpo_cfg):
        grpo_cfg.output_dir = str(root / "grpo")
        grpo_cfg.init_adapter = str(sft_adapter)
    from eval.reuse import reusable_final_evaluation

    # GRPO's "before" evaluation would score the adapter the SFT stage has just evaluated, the same way
    return run_training(grpo_cfg, reusable_final_evaluation(root / "sft", grpo_cfg))


@hydra.main(version_base=None, config_path=CONFIG_DIR, config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Train; return the final held-out accuracy, the objective a Hydra sweeper (Optuna) maximises."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from grpo.guards import TrainingHalted
    from grpo.sweep_summary import objective

    # in a sweep only the trial fails: Hydra records it and runs the others (grpo/sweep_summary.py)
    with user_errors("grpo.train", reraise=HydraConfig.get().mode == RunMode.MULTIRUN):
        try:
            output_dir = run_pipeline(cfg)
        except TrainingHalted as error:
            log.error("training stopped: %s", error)
            sys.exit(3)
    return objective(output_dir, cfg.task.name)


if __name__ == "__main__":
    prepare_process()
    main()
