"""Gemma's tokenizer rebuilt from the GGUF file's vocabulary, as the BPE tokenizer Gemma really uses.

transformers' GGUF loader turns Gemma's SentencePiece-BPE vocabulary into a *Unigram* tokenizer whose
scores are BPE merge ranks, so Viterbi prefers short pieces: `user` becomes `us er`, `Hello world`
becomes `Hello ▁w or ld`, and prompts drift from what the model was trained on. Here the merges are
derived from the ranks (transformers' own `generate_merges`), control tokens (`<start_of_turn>`, ...)
become special tokens and user-defined ones (runs of newlines, ...) always-split tokens, as
SentencePiece treats them. tests/test_tokenizer.py checks known Gemma 3 token ids.
"""

import json

CONTROL, USER_DEFINED = 3, 4


def read_gguf_vocabulary(gguf_path) -> tuple[list[str], list[float], list[int]]:
    from grpo.gguf_metadata import read_gguf_metadata

    metadata = read_gguf_metadata(gguf_path)
    return (metadata["tokenizer.ggml.tokens"], [float(score) for score in metadata["tokenizer.ggml.scores"]],
            metadata["tokenizer.ggml.token_type"])


def build_gemma_tokenizer(gguf_path, chat_template: str):
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import generate_merges

    tokens, scores, types = read_gguf_vocabulary(gguf_path)
    vocab = {token: index for index, token in enumerate(tokens)}
    unsplittable = {t for t, kind in zip(tokens, types) if kind in (CONTROL, USER_DEFINED)}
    merges = generate_merges(vocab, list(zip(tokens, scores)), skip_tokens=unsplittable)
    backend = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    backend.normalizer = normalizers.Replace(" ", "▁")
    backend.pre_tokenizer = pre_tokenizers.Split(" ", behavior="merged_with_previous")
    backend.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()])
    backend.add_special_tokens(
        [AddedToken(t, normalized=False, special=True) for t, kind in zip(tokens, types) if kind == CONTROL]
    )
    backend.add_tokens(
        [AddedToken(t, normalized=False, special=False) for t, kind in zip(tokens, types) if kind == USER_DEFINED]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<bos>",
        eos_token="<eos>",
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token="<mask>",
        add_bos_token=True,
        add_eos_token=False,
    )
    tokenizer.chat_template = chat_template
    return tokenizer


def mark_fast(directory) -> None:
    """Saved tokenizers load as `PreTrainedTokenizerFast` (tokenizer.json as it is), never re-derived."""
    config_path = directory / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    config_path.write_text(json.dumps(config, indent=2))
