"""Rollouts that stop computing rows that have finished (`rollout.drop_finished_rows`).

transformers' generate() keeps every row of the batch in every decode step until the last row ends,
writing padding into the finished ones. A GRPO rollout batch is ragged: the CPU default's 32 completions
of at most 96 tokens averaged ~55, so ~40% of the row-steps decoded padding (docs/performance.md 8.7).
`decode_dropping_finished_rows` runs the same greedy-over-processors loop as generate() does with our
samplers, and drops finished rows from the batch and its key/value cache (`Cache.reorder_cache`) once a
quarter of the rows have finished.

What it computes is what generate() computes: the same model calls on the same positions (position ids
as transformers derives them from the attention mask), the same logits processors in the same order,
argmax of their scores, padding after a row's end-of-sequence token. tests/test_compact_decode.py
compares the token ids with generate()'s. Processors see only the rows still in the batch;
`active_rows()` says which rows of the call those are (grpo/sampler_old_logps.py records by it).

CPU only, where it was measured. Used only for the calls it knows: greedy search (our samplers turn sampling into greedy search over a
processor that draws), no beams, no streamer, no stopping criteria or processors of generate()'s own,
a cache of the default kind. Every other call goes to generate() unchanged.
"""

import contextvars
import functools
import logging

import torch
from transformers import DynamicCache, LogitsProcessorList

from grpo.shared_prefill import generate_positions

log = logging.getLogger(__name__)

# generate() keyword arguments this loop understands; any other sends the call to generate()
KNOWN_ARGUMENTS = {"input_ids", "attention_mask", "generation_config", "logits_processor", "past_key_values"}
# drop finished rows once this share of the batch has finished (each drop copies the key/value cache)
DROP_SHARE = 0.25

_active_rows: contextvars.ContextVar[torch.Tensor | None] = contextvars.ContextVar("active_rows", default=None)


def active_rows() -> torch.Tensor | None:
    """The rows of the generate() call that the logits processors are now seeing (None: all of them)."""
    return _active_rows.get()


def why_not_compact(model, args, kwargs, config) -> str | None:
    """None when this loop can run the generate() call; otherwise why not."""
    from grpo.sampler_old_logps import reshaping_processors

    if args or not set(kwargs) <= KNOWN_ARGUMENTS or kwargs.get("input_ids") is None:
        return "arguments of generate() this loop does not know"
    if kwargs["input_ids"].device.type != "cpu":
        return "not on CPU (measured on CPU only; on GPU generate() runs as it is)"
    if config.do_sample or (config.num_beams or 1) > 1 or (config.num_return_sequences or 1) > 1:
        return "sampling, beams or several sequences per prompt inside generate()"
    if config.max_new_tokens is None or config.stop_strings or config.max_time is not None:
        return "no max_new_tokens, or stop strings / a time limit of generate()'s own"
    if config.cache_implementation is not None or config.use_cache is False:
        return "a cache other than the default"
    if config.return_dict_in_generate or config.output_scores or config.output_logits:
        return "outputs beyond the token ids"
    if reshaping_processors(model, config, kwargs["input_ids"]):
        return "logits processors of generate()'s own"
    return None


def decode_dropping_finished_rows(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, config,
                                  logits_processor=None, past_key_values=None) -> torch.Tensor:
    """generate()'s greedy search over `logits_processor` (see the module docstring); returns the prompt
    and generated token ids, padded after each row's end as generate() pads them."""
    rows, prompt_length = input_ids.shape
    processors = logits_processor or LogitsProcessorList()
    eos = config.eos_token_id
    eos = torch.tensor([eos] if isinstance(eos, int) else list(eos or []), device=input_ids.device)
    pad = config.pad_token_id if config.pad_token_id is not None else (int(eos[0]) if len(eos) else 0)
    sequences = torch.full((rows, prompt_length + config.max_new_tokens), pad, dtype=input_ids.dtype,
                           device=input_ids.device)
    sequences[:, :prompt_length] = input_ids
    positions = generate_positions(attention_mask)
    cache = past_key_values
    if cache is None or cache.get_seq_length() != prompt_length - 1:
        cache = DynamicCache(config=model.config.get_text_config(decoder=True))
        if prompt_length > 1:
            model(input_ids=input_ids[:, :-1], attention_mask=attention_mask[:, :-1], position_ids=positions[:, :-1],
                  past_key_values=cache, use_cache=True, logits_to_keep=1)
    batch_rows = torch.arange(rows, device=input_ids.device)  # the call's row of each row in the batch
    alive = torch.ones(rows, dtype=torch.bool, device=input_ids.device)
    next_ids, next_positions, mask = input_ids[:, -1:], positions[:, -1:], attention_mask
    generated = 0
    for step in range(config.max_new_tokens):
        logits = model(input_ids=next_ids, attention_mask=mask, position_ids=next_positions, past_key_values=cache,
                       use_cache=True, logits_to_keep=1).logits[:, -1, :].to(dtype=torch.float32, copy=True)
        token = _active_rows.set(batch_rows)
        try:
            scores = processors(sequences[batch_rows, :prompt_length + step], logits)
        finally:
            _active_rows.reset(token)
        tokens = torch.where(alive, scores.argmax(-1), pad)
        sequences[batch_rows, prompt_length + step] = tokens
        generated = step + 1
        alive &= ~torch.isin(tokens, eos)
        if not bool(alive.any()):
            break
        next_ids, next_positions = tokens[:, None], next_positions + 1
        mask = torch.cat([mask, mask.new_ones(mask.shape[0], 1)], dim=1)
        if (~alive).sum() >= max(1, DROP_SHARE * len(alive)):
            keep = alive.nonzero().squeeze(1)
            cache.reorder_cache(keep)
            batch_rows, alive = batch_rows[keep], alive[keep]
            next_ids, next_positions, mask = next_ids[keep], next_positions[keep], mask[keep]
    return sequences[:, :prompt_length + generated]


def drop_finished_rows(model) -> None:
    """Make `model.generate` run the calls it knows with `decode_dropping_finished_rows` (innermost of the
    rollout speed-ups: grpo/fast_decode.speed_up_generation)."""
    from grpo.fast_decode import as_generate_sees_it

    generate = model.generate

    @functools.wraps(generate)
    def generate_dropping_finished_rows(*args, **kwargs):
        config = as_generate_sees_it(kwargs.get("generation_config") or model.generation_config, model)
        if why_not_compact(model, args, kwargs, config) is not None:
            return generate(*args, **kwargs)
        with torch.no_grad():
            return decode_dropping_finished_rows(model, kwargs["input_ids"], kwargs["attention_mask"]
                                                 if kwargs.get("attention_mask") is not None
                                                 else torch.ones_like(kwargs["input_ids"]), config,
                                                 kwargs.get("logits_processor"), kwargs.get("past_key_values"))

    model.generate = generate_dropping_finished_rows
    log.info("rollout.drop_finished_rows: finished rows leave the decode batch")
