"""GRPO rollouts repeat each prompt once per completion of its group (TRL's RepeatSampler), so a plain
generate() encodes every prompt `num_generations` times. `prefill_each_prompt_once` encodes each distinct
prompt once, copies its KV cache to the rows that repeat it, and lets generate() carry on from there:
transformers' generate() resumes from a cache that covers all but the last prompt token.

The tokens and their probabilities are those of the plain call up to float rounding (the prompt is
encoded in two forwards instead of one); tests/test_shared_prefill.py compares both. Calls without
repeated rows (evaluation) and calls with inputs this does not know (images, a cache of their own) go
through unchanged, and so do models whose generation config asks for another kind of cache (the hub
Gemma 3 checkpoints' "hybrid"): generate() refuses a cache passed in beside a `cache_implementation`.
"""

import functools
import logging

import torch
from transformers import DynamicCache

from grpo.fast_decode import as_generate_sees_it

log = logging.getLogger(__name__)

# generate() keyword arguments that leave the prompt's encoding alone; any other (pixel_values,
# token_type_ids, past_key_values, inputs_embeds, ...) sends the call through unchanged
PASSED_THROUGH = {"input_ids", "attention_mask", "generation_config", "logits_processor", "stopping_criteria",
                  "tokenizer", "max_new_tokens", "do_sample", "pad_token_id", "eos_token_id", "streamer"}


def distinct_rows(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(a row index of each distinct prompt, the distinct prompt of each row: an index into the first)."""
    rows = torch.cat([input_ids, attention_mask.to(input_ids.dtype)], dim=1)
    _, row_to_distinct = torch.unique(rows, dim=0, return_inverse=True)
    representative = torch.empty(int(row_to_distinct.max()) + 1, dtype=torch.long, device=rows.device)
    representative[row_to_distinct] = torch.arange(rows.shape[0], device=rows.device)
    return representative, row_to_distinct


def generate_positions(attention_mask: torch.Tensor) -> torch.Tensor:
    """The position ids generate() gives left-padded rows (transformers' _prepare_position_ids_for_generation)."""
    return (attention_mask.long().cumsum(-1) - 1).masked_fill(attention_mask == 0, 0)


def prompt_cache(model, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> DynamicCache | None:
    """The KV cache of all but the last token of each prompt, encoded once per distinct prompt and copied
    to every row that repeats it; None when no prompt repeats."""
    representative, row_to_distinct = distinct_rows(input_ids, attention_mask)
    if len(representative) == input_ids.shape[0] or input_ids.shape[1] < 2:
        return None
    ids, mask = input_ids[representative, :-1], attention_mask[representative, :-1]
    positions = generate_positions(mask)
    cache = DynamicCache(config=model.config.get_text_config(decoder=True))
    with torch.no_grad():
        model(input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=cache, use_cache=True,
              logits_to_keep=1)
    cache.reorder_cache(row_to_distinct)
    return cache


def prefill_each_prompt_once(model) -> None:
    """Make `model.generate` encode each distinct prompt of a call once (see the module docstring)."""
    generate = model.generate

    @functools.wraps(generate)
    def generate_from_shared_prefill(*args, **kwargs):
        input_ids, attention_mask = kwargs.get("input_ids"), kwargs.get("attention_mask")
        if args or input_ids is None or attention_mask is None or not set(kwargs) <= PASSED_THROUGH:
            return generate(*args, **kwargs)
        config = as_generate_sees_it(kwargs.get("generation_config") or model.generation_config, model)
        # generate() refuses a cache of ours beside a cache_implementation (hub Gemma 3: "hybrid"), and
        # expands the rows, but not a cache passed in, for beams and several sequences per prompt
        if (config.cache_implementation is not None or config.use_cache is False
                or (config.num_beams or 1) > 1 or (config.num_return_sequences or 1) > 1):
            return generate(*args, **kwargs)
        cache = prompt_cache(model, input_ids, attention_mask)
        if cache is None:
            return generate(*args, **kwargs)
        return generate(**kwargs, past_key_values=cache)

    model.generate = generate_from_shared_prefill
    log.info("rollout.share_prompt_prefill: each distinct prompt of a generate() call is encoded once")
