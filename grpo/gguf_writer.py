"""Write a Gemma 3 text model as a GGUF file that llama.cpp and Ollama load (`gemma3` architecture).

The layout mirrors what llama.cpp's own converter (`convert_hf_to_gguf.py`, Gemma3Model) writes, and what
the embedded 270M package file carries: the same `gemma3.*` hyperparameter keys, llama.cpp's tensor names
(gguf's own name map), the SentencePiece vocabulary with scores and token types, and the chat template.

Two conventions matter for the numbers to come back unchanged:
- Gemma's RMSNorm multiplies by (1 + w); llama.cpp's multiplies by w, so every `*norm.weight` is stored
  as w + 1. transformers' GGUF loader subtracts the 1 again (`Gemma2TensorProcessor`, also used for
  gemma3), so this is its exact inverse.
- Norms (1-D tensors) stay float32, as llama.cpp keeps them; matrices are f16 or Q8_0. A matrix whose
  rows do not split into Q8_0 blocks of 32 falls back to f16, as llama.cpp's converter does.

The vocabulary's scores are not kept by the fast (BPE) tokenizer, so they are taken from the embedded
Gemma 3 GGUF, after checking that the model's tokenizer has exactly that vocabulary (every Gemma 3 text
model shares it); anything else is refused rather than written with wrong scores.
"""

import functools
import logging
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

# gguf.type -> (how matrices are stored, llama.cpp's file type)
GGUF_TYPES = ("f16", "q8_0")
ARCH = "gemma3"
SUPPORTED_MODEL_TYPES = ("gemma3_text",)


class GGUFExportError(ValueError):
    """The model cannot be written as a llama.cpp Gemma 3 GGUF (with the reason and what to do)."""


def write_gguf(model, tokenizer, path: Path, gguf_type: str, name: str, eot_tokens=("<end_of_turn>",)) -> Path:
    """Write `model` (a Gemma3ForCausalLM, any dtype) and `tokenizer` to `path`; return `path`.

    `name`: general.name in the metadata. The caller writes to a temporary name and renames.
    """
    import gguf

    if gguf_type not in GGUF_TYPES:
        raise GGUFExportError(f"gguf.type={gguf_type}: unknown; valid types: {', '.join(GGUF_TYPES)}")
    config = model.config
    check_exportable(config)
    writer = gguf.GGUFWriter(str(path), ARCH)
    _add_metadata(writer, config, name, gguf_type)
    _add_tokenizer(writer, tokenizer, eot_tokens)
    for gguf_name, array, raw_type in gemma3_tensors(model, gguf_type):
        writer.add_tensor(gguf_name, array, raw_dtype=raw_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def check_exportable(config) -> None:
    if config.model_type not in SUPPORTED_MODEL_TYPES:
        raise GGUFExportError(
            f"format=gguf writes Gemma 3 text models (model_type gemma3_text); this model is {config.model_type}. "
            "Use format=merged and llama.cpp's convert_hf_to_gguf.py on the merged directory"
        )
    pattern = _sliding_window_pattern(config)
    if pattern is None:
        log.warning(
            "layer_types %s do not follow Gemma 3's every-6th-layer-global pattern that llama.cpp assumes",
            config.layer_types,
        )
    scalar = getattr(config, "query_pre_attn_scalar", config.head_dim)
    if scalar != config.head_dim:
        # llama.cpp scales attention by 1/sqrt(head_dim) for every size but 27B (llama-model.cpp, gemma3)
        log.warning(
            "query_pre_attn_scalar=%s differs from head_dim=%s: llama.cpp scales attention by 1/sqrt(head_dim), "
            "so its outputs will differ from transformers' (real Gemma 3 checkpoints up to 12B have them equal)",
            scalar, config.head_dim,
        )


def _sliding_window_pattern(config) -> int | None:
    types = list(getattr(config, "layer_types", None) or [])
    expected = ["full_attention" if (i + 1) % 6 == 0 else "sliding_attention" for i in range(len(types))]
    return 6 if types == expected else None


def _add_metadata(writer, config, name: str, gguf_type: str) -> None:
    import gguf

    writer.add_type("model")
    writer.add_name(name)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_key_length(config.head_dim)
    writer.add_value_length(config.head_dim)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_rope_freq_base(_rope(config, "full_attention").get("rope_theta", 1_000_000.0))
    writer.add_sliding_window(config.sliding_window)
    scaling = _rope(config, "full_attention")
    if scaling.get("rope_type") == "linear":  # Gemma 3 4B+ (llama.cpp reads the same two keys)
        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(scaling["factor"])
    file_type = gguf.LlamaFileType.MOSTLY_F16 if gguf_type == "f16" else gguf.LlamaFileType.MOSTLY_Q8_0
    writer.add_file_type(int(file_type))
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)


def _rope(config, layer_type: str) -> dict:
    params = getattr(config, "rope_parameters", None) or {}
    return dict(params.get(layer_type, params) or {})


def _add_tokenizer(writer, tokenizer, eot_tokens) -> None:
    tokens, scores, types = gemma3_vocabulary(tokenizer)
    writer.add_tokenizer_model("llama")  # SentencePiece, as llama.cpp's converter writes for Gemma
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_bos_token_id(tokenizer.bos_token_id)
    writer.add_eos_token_id(tokenizer.eos_token_id)
    writer.add_unk_token_id(tokenizer.unk_token_id)
    writer.add_pad_token_id(tokenizer.pad_token_id)
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)
    writer.add_add_sep_token(False)
    writer.add_add_space_prefix(False)
    for token in eot_tokens:
        token_id = tokenizer.convert_tokens_to_ids(token)
        if token_id is not None and token_id != tokenizer.unk_token_id:
            writer.add_eot_token_id(token_id)  # llama.cpp ends a chat turn here (Ollama too)
            break
    if tokenizer.chat_template:
        writer.add_chat_template(tokenizer.chat_template)


def gemma3_vocabulary(tokenizer) -> tuple[list[str], list[float], list[int]]:
    """Tokens, scores and types for the GGUF, from the embedded Gemma 3 GGUF once the tokenizer is shown
    to have exactly its vocabulary (same pieces at the same ids)."""
    tokens, scores, types = _embedded_vocabulary()
    ours = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    if ours != tokens:
        differing = next((i for i, (a, b) in enumerate(zip(ours, tokens)) if a != b), min(len(ours), len(tokens)))
        raise GGUFExportError(
            f"the tokenizer's vocabulary ({len(ours)} tokens) is not Gemma 3's ({len(tokens)} tokens; first "
            f"difference at id {differing}); format=gguf writes Gemma 3 vocabularies only. Use format=merged "
            "and llama.cpp's convert_hf_to_gguf.py"
        )
    return tokens, scores, types


@functools.lru_cache(maxsize=1)
def _embedded_vocabulary() -> tuple[list[str], list[float], list[int]]:
    """Read once per process."""
    from grpo.embedded import _gguf_path
    from grpo.gguf_tokenizer import read_gguf_vocabulary

    return read_gguf_vocabulary(_gguf_path())


def gemma3_tensors(model, gguf_type: str):
    """(llama.cpp name, array, raw GGML type or None) for every weight, tied lm_head left out as llama.cpp
    does (it reuses token_embd)."""
    import gguf
    import torch

    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.GEMMA3, model.config.num_hidden_layers)
    tied = getattr(model.config, "tie_word_embeddings", True)
    for hf_name, tensor in model.state_dict().items():
        if tied and hf_name == "lm_head.weight":
            continue
        stem, suffix = hf_name.rsplit(".", 1)
        gguf_stem = names.get_name(stem)
        if gguf_stem is None:
            raise GGUFExportError(f"no llama.cpp gemma3 tensor name for {hf_name}")
        data = tensor.detach().to(torch.float32).cpu().numpy()
        if hf_name.endswith("norm.weight"):
            yield f"{gguf_stem}.{suffix}", data + np.float32(1.0), None  # (1 + w) convention, see above
            continue
        yield (f"{gguf_stem}.{suffix}", *_encode_matrix(data, gguf_type))


def _encode_matrix(data: np.ndarray, gguf_type: str):
    import gguf

    if data.ndim < 2:
        return data, None
    if gguf_type == "q8_0":
        block = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType.Q8_0][0]
        if data.shape[-1] % block == 0:
            return gguf.quants.quantize(data, gguf.GGMLQuantizationType.Q8_0), gguf.GGMLQuantizationType.Q8_0
        log.info("row size %d is not a multiple of %d: stored as f16", data.shape[-1], block)
    return data.astype(np.float16), None
