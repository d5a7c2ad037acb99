"""Load a Gemma model and its tokenizer as a model config (conf/model/*.yaml) describes it.

Every source resolves to a local directory first (the embedded GGUF conversion, a cached tiny random
model, or a hub id / local path), so the trainer, the evaluator and the SFT stage load models one way.
"""

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import torch

from grpo.cache import build_once, cache_dir
from grpo.chat_template import GEMMA3_CHAT_TEMPLATE

log = logging.getLogger(__name__)


def resolve_dtype(dtype_name: str) -> torch.dtype:
    """`auto` is bf16 with CUDA and fp32 on CPU (bf16 is several times slower on our CPUs)."""
    if dtype_name == "auto":
        return torch.bfloat16 if torch.cuda.is_available() else torch.float32
    return {"bfloat16": torch.bfloat16, "float32": torch.float32}[dtype_name]


def resolve_model_path(model_cfg) -> str:
    """The local directory (or hub id) that `from_pretrained` should read for this model config."""
    if model_cfg.source == "embedded":
        from grpo.embedded import embedded_model_dir

        return str(embedded_model_dir())
    if model_cfg.source == "tiny":
        return str(tiny_model_dir(dict(model_cfg.tiny_config)))
    return model_cfg.hub_id


def tiny_model_dir(shape: dict[str, Any]) -> Path:
    """A random-init Gemma 3 text model with the real tokenizer, saved once per shape so every run and
    every evaluation of an adapter sees exactly the same base weights."""
    from grpo.embedded import TOKENIZER_DIR_NAME

    # the tokenizer's version is part of the key: a tokenizer fix must not reuse a stale tiny model
    key = json.dumps({**shape, "tokenizer": TOKENIZER_DIR_NAME}, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return build_once(cache_dir() / f"tiny-gemma3-{digest}", "config.json", lambda directory: _save_tiny_model(directory, shape))


def _save_tiny_model(directory: Path, shape: dict[str, Any]) -> None:
    from transformers import AutoTokenizer, Gemma3ForCausalLM, Gemma3TextConfig

    from grpo.embedded import embedded_tokenizer_dir

    tokenizer = AutoTokenizer.from_pretrained(embedded_tokenizer_dir())
    config = Gemma3TextConfig(
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **shape,
    )
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(0)
    model = Gemma3ForCausalLM(config)
    torch.random.set_rng_state(generator_state)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)


def load_tokenizer(model_cfg, path: str | None = None):
    from transformers import AutoTokenizer

    from grpo.patches import tokenizer_read_once

    with tokenizer_read_once():
        tokenizer = AutoTokenizer.from_pretrained(path or resolve_model_path(model_cfg))
    if model_cfg.chat_template == "gemma3" or not tokenizer.chat_template:
        tokenizer.chat_template = GEMMA3_CHAT_TEMPLATE
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    template_kwargs = model_cfg.get("chat_template_kwargs")
    if template_kwargs:
        bind_chat_template_kwargs(tokenizer, dict(template_kwargs))
    return tokenizer


def bind_chat_template_kwargs(tokenizer, template_kwargs: dict) -> None:
    """Make `template_kwargs` (e.g. Gemma 4's enable_thinking=False) the default of every
    `tokenizer.apply_chat_template` call, so TRL's rollout prompts, the evaluators and SFT formatting
    render one and the same prompt; a caller's own keyword still wins."""
    import functools

    method = type(tokenizer).apply_chat_template
    tokenizer.apply_chat_template = functools.partial(method, tokenizer, **template_kwargs)


def eos_token_ids(model_cfg, tokenizer) -> list[int]:
    """The ids of `model.eos_tokens`. An entry the tokenizer does not know is an error: dropping it
    silently let a model generate past the end of its turn (Gemma 4 closes turns with `<turn|>`, not
    Gemma 3's `<end_of_turn>`)."""
    from grpo.validate import ConfigError

    ids, unknown = [], []
    for token in model_cfg.eos_tokens:
        token_id = tokenizer.convert_tokens_to_ids(token)
        if token_id is None or (token_id == tokenizer.unk_token_id and token != tokenizer.unk_token):
            unknown.append(token)
        else:
            ids.append(token_id)
    if unknown:
        raise ConfigError(
            f"model.eos_tokens: {', '.join(unknown)} not in the tokenizer of model={model_cfg.name}; use the "
            "model's own turn-end tokens (Gemma 3: <end_of_turn>, Gemma 4: <turn|>) and <eos>"
        )
    return ids


def load_model_and_tokenizer(model_cfg, peft_cfg=None, adapter: str | None = None):
    """Load the model (fp32 on CPU, bf16 on GPU), tokenizer and, optionally, a trained adapter on top.

    Generation stops at `<end_of_turn>` as well as `<eos>`; TRL reads the stop ids from the model's
    generation config.
    """
    from transformers import AutoModelForCausalLM

    path = resolve_model_path(model_cfg)
    tokenizer = load_tokenizer(model_cfg, path)
    kwargs: dict[str, Any] = {
        "dtype": resolve_dtype(model_cfg.dtype),
        "attn_implementation": model_cfg.attn_implementation,
    }
    if peft_cfg is not None and peft_cfg.method == "qlora":
        kwargs["quantization_config"] = bnb_config(peft_cfg)
    # Multimodal checkpoints (Gemma 3 4B+, Gemma 4) load as their ...ForConditionalGeneration class; with
    # transformers >= 5 its training forward needs no token_type_ids for text-only batches (trl #5032,
    # #5807 were on 4.x), and the model's lora_target_modules regex keeps LoRA off the vision tower
    # (tests/test_multimodal.py).
    model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    model.generation_config.eos_token_id = eos_token_ids(model_cfg, tokenizer)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    if adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter)
    return model, tokenizer


def bnb_config(peft_cfg):
    """The 4-bit quantization conf/peft/qlora.yaml describes (quant_type nf4 | fp4, double_quant)."""
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=peft_cfg.get("quant_type", "nf4"),
        bnb_4bit_use_double_quant=bool(peft_cfg.get("double_quant", True)),
        bnb_4bit_compute_dtype=torch.bfloat16,
    )
