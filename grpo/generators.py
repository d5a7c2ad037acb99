"""The generator a command evaluates with, built from a config: vLLM when the rollout asks for it and can
run here, else transformers generate on the model loaded as training loads it.

This sits in the training package, not in eval/, because it loads models (grpo/models.py): eval's
library only ever receives a `Generator`, and only the commands (eval.run, grpo.train) load models.
"""

import logging
from pathlib import Path

from eval.generate import Generator, HFGenerator, VLLMGenerator, vllm_available

log = logging.getLogger(__name__)


def vllm_generator(cfg, adapter: str | None, seed: int) -> VLLMGenerator:
    """A VLLMGenerator sized by the rollout config, as training's colocated engine is: its environment
    (on CPU the KV-cache size), engine dtype, maximum sequence length and, for a multimodal checkpoint,
    the language model only."""
    from grpo.models import eos_token_ids, load_tokenizer, resolve_model_path
    from grpo.vllm_env import apply_env, language_model_only

    apply_env(cfg.rollout.get("env") or {})
    path = resolve_model_path(cfg.model)
    tokenizer = load_tokenizer(cfg.model, path)
    engine = cfg.rollout.get("trainer_overrides") or {}
    log.info("Generating with vLLM (%s)", path)
    return VLLMGenerator(
        path, tokenizer, eos_token_ids(cfg.model, tokenizer), adapter, seed,
        dtype=cfg.rollout.get("vllm_dtype") or "auto",
        max_model_len=engine.get("vllm_max_model_length"),
        gpu_memory_utilization=engine.get("vllm_gpu_memory_utilization", 0.8),
        language_model_only=language_model_only(cfg.rollout, cfg.model),
    )


def trained_with_qlora(cfg, adapter: str | None) -> bool:
    """The adapter was trained on a 4-bit base: this config says peft=qlora, or the training run's
    resolved_config.yaml beside the adapter does."""
    if cfg.get("peft") is not None and cfg.peft.method == "qlora":
        return True
    if adapter:
        run_config = Path(adapter).parent / "resolved_config.yaml"
        if run_config.exists():
            from omegaconf import OmegaConf

            return OmegaConf.select(OmegaConf.load(run_config), "peft.method") == "qlora"
    return False


def warn_if_qlora_adapter_on_bf16_base(cfg, adapter: str | None) -> bool:
    """vLLM serves the base in bf16: a QLoRA adapter then runs on other weights than it was trained on
    (trl #3466 measured the rounding), so the scores are not the trained model's. Say so."""
    if not adapter or not trained_with_qlora(cfg, adapter):
        return False
    log.warning(
        "adapter %s was trained with QLoRA (4-bit NF4 base) but vLLM evaluates it on the bf16 base: scores "
        "may differ from the trained model's. For the trained model's own scores use rollout=hf, which "
        "loads the 4-bit base.", adapter,
    )
    return True


def build_generator(cfg, adapter: str | None = None) -> Generator:
    """The generator the standalone evaluator uses: vLLM when the rollout config asks for it and vLLM
    can run here, else transformers generate on the model loaded as training loads it."""
    from grpo.fast_decode import speed_up_generation
    from grpo.models import load_model_and_tokenizer

    seed = cfg.eval.get("seed", cfg.seed)
    if str(cfg.rollout.name).startswith("vllm"):
        from grpo.vllm_env import why_vllm_cannot_load

        cannot = "vLLM is not installed here" if not vllm_available() else why_vllm_cannot_load(cfg.model)
        if cannot is None:
            warn_if_qlora_adapter_on_bf16_base(cfg, adapter)
            return vllm_generator(cfg, adapter, seed)
        log.warning("rollout=%s but %s; using transformers generate", cfg.rollout.name, cannot)
    # an adapter trained with QLoRA is evaluated on the 4-bit base it was trained on
    peft_cfg = cfg.peft if cfg.get("peft") is not None and cfg.peft.method == "qlora" else None
    model, tokenizer = load_model_and_tokenizer(cfg.model, peft_cfg, adapter=adapter)
    speed_up_generation(cfg.rollout, model)
    return HFGenerator(model, tokenizer, batch_size=cfg.eval.batch_size, seed=seed)
