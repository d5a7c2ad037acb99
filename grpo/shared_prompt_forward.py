"""The training pass encodes each prompt of a GRPO group once (`batch.share_prompt_forward`).

A GRPO micro-batch holds each prompt once per completion of its group, and TRL 1.16 runs the policy's
forward and backward over prompt + completion for every row. In the CPU default step the prompts are
~2/3 of the positions (8 rows of ~190 prompt tokens + at most 96 completion tokens, 2 distinct prompts).
As in Prefix Grouper (Liu et al., 2025, arXiv:2506.05433), the prompt is encoded once per distinct prompt
with gradients on, its key/value cache is copied to the rows that repeat it (`Cache.reorder_cache`, an
`index_select` that autograd follows), and every row's completion is encoded on top of its copy. The
gradient of each completion's loss flows back through its copy into the one prompt encoding, where the
copies' gradients add up: the same gradient as encoding the prompt per row, up to float rounding
(tests/test_shared_prompt_forward.py compares log-probabilities, entropies and LoRA gradients with
TRL's own pass).

Positions are TRL's: its training forward gives no position ids, so the model counts positions from the
first column, padding included; a cache of length n makes the next forward start at n, the same count.

It steps aside (TRL's own pass runs) where it is not known to be exact or could not work: no repeated
prompt in the micro-batch, images or other model inputs, MoE auxiliary losses, gradient checkpointing
(transformers drops a cache passed to a checkpointed layer), several processes (DDP expects one forward
per backward), and model types other than Gemma 3's text model (Gemma 3n/4 share key/value layers in
the cache, untested here).
"""

import logging
from contextlib import nullcontext

import torch
from transformers import DynamicCache

from grpo.shared_prefill import distinct_rows

log = logging.getLogger(__name__)

# model types whose forward with a cache of ours is tested against TRL's pass (tests/test_shared_prompt_forward.py)
TESTED_MODEL_TYPES = ("gemma3_text",)


def why_not_shared(model, num_processes: int, extra_inputs: dict, compute_aux_loss: bool) -> str | None:
    """None when the micro-batch may share its prompts' encoding; otherwise why not."""
    config = model.config
    if num_processes > 1:
        return "several processes (DDP expects one forward per backward)"
    if getattr(config, "model_type", None) not in TESTED_MODEL_TYPES:
        return f"model type {getattr(config, 'model_type', None)!r} (tested: {', '.join(TESTED_MODEL_TYPES)})"
    if getattr(model, "is_gradient_checkpointing", False):
        return "gradient checkpointing (a checkpointed layer drops the cache)"
    if compute_aux_loss:
        return "an MoE auxiliary loss"
    present = sorted(name for name, value in extra_inputs.items() if value is not None)
    if present:
        return f"model inputs besides the tokens ({', '.join(present)})"
    return None


def shared_prompt_logps(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, logits_to_keep: int,
                        compute_entropy: bool = False, autocast=nullcontext):
    """(log-probs, entropies or None) of the last `logits_to_keep` tokens of each row, as TRL's
    `_get_per_token_logps_and_entropies` computes them for one chunk, with each distinct prompt (the
    columns before them) encoded once. None when no prompt repeats: the caller runs TRL's pass.

    `model` is the policy with TRL's fused LM head (`add_fused_lm_head`), PEFT-wrapped or not. Completion
    columns that are padding in every row are not encoded (their log-probs are 0): TRL pads completions to
    the longest of the generation batch, which spans several micro-batches with `steps_per_generation` > 1.
    """
    in_use = attention_mask[:, -logits_to_keep:].any(0).nonzero()
    unused = logits_to_keep - (int(in_use.max()) + 1 if len(in_use) else 1)
    if unused > 0:
        result = shared_prompt_logps(model, input_ids[:, :-unused], attention_mask[:, :-unused],
                                     logits_to_keep - unused, compute_entropy, autocast)
        if result is None:
            return None
        return tuple(None if t is None else torch.nn.functional.pad(t, (0, unused)) for t in result)
    prompt_length = input_ids.shape[1] - logits_to_keep
    if prompt_length < 2:
        return None
    prompt_ids, prompt_mask = input_ids[:, :prompt_length], attention_mask[:, :prompt_length]
    representative, row_to_distinct = distinct_rows(prompt_ids, prompt_mask)
    if len(representative) == input_ids.shape[0]:
        return None
    # all but the last prompt token: its hidden state scores the first completion token, so it is
    # encoded with the completions
    cache = DynamicCache(config=model.config.get_text_config(decoder=True))
    with autocast():
        model(input_ids=prompt_ids[representative, :-1], attention_mask=prompt_mask[representative, :-1],
              past_key_values=cache, use_cache=True, logits_to_keep=1)
    cache.reorder_cache(row_to_distinct)
    rest_ids = input_ids[:, prompt_length - 1:]
    labels = rest_ids.masked_fill(attention_mask[:, prompt_length - 1:] == 0, -100)
    with autocast():
        outputs = model(input_ids=rest_ids, attention_mask=attention_mask, past_key_values=cache, labels=labels,
                        fused_lm_head=True)
    entropies = outputs.entropy[:, -logits_to_keep:] if compute_entropy else None
    return outputs.log_probs[:, -logits_to_keep:], entropies


def with_shared_prompt_forward(trainer_class: type) -> type:
    """`trainer_class` (TRL's GRPOTrainer or a subclass) whose log-prob passes share each prompt's encoding."""
    from trl.extras.profiling import profiling_decorator

    from grpo.patches import supported, trl_log_prob_pass

    if not supported("trl", "share_prompt_forward"):  # the method below mirrors TRL 1.16's signature
        return trainer_class
    trl_pass = trl_log_prob_pass(trainer_class)  # undecorated: one profiling timer per call, ours

    class SharedPromptForward(trainer_class):
        @profiling_decorator
        def _get_per_token_logps_and_entropies(self, model, input_ids, attention_mask, logits_to_keep,
                                               batch_size=None, compute_entropy=False, compute_aux_loss=False,
                                               **extra_inputs):
            unwrapped = self.accelerator.unwrap_model(model)
            reason = why_not_shared(unwrapped, self.accelerator.num_processes, extra_inputs, compute_aux_loss)
            if reason is not None:
                if not getattr(self, "_shared_prompt_refusal_logged", False):
                    log.info("batch.share_prompt_forward steps aside: %s", reason)
                    self._shared_prompt_refusal_logged = True
                return trl_pass(self, model, input_ids, attention_mask, logits_to_keep, batch_size,
                                compute_entropy, compute_aux_loss, **extra_inputs)
            batch_size = batch_size or input_ids.size(0)
            logps, entropies = [], []
            for start in range(0, input_ids.size(0), batch_size):
                chunk = slice(start, start + batch_size)
                result = shared_prompt_logps(model, input_ids[chunk], attention_mask[chunk], logits_to_keep,
                                             compute_entropy, self.accelerator.autocast)
                if result is None:
                    result = trl_pass(self, model, input_ids[chunk], attention_mask[chunk], logits_to_keep,
                                      compute_entropy=compute_entropy)[:2]
                logps.append(result[0])
                entropies.append(result[1])
            return torch.cat(logps), torch.cat(entropies) if compute_entropy else None, None

    SharedPromptForward.__name__ = SharedPromptForward.__qualname__ = trainer_class.__name__
    return SharedPromptForward
