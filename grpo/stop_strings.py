"""Training rollouts end at the task's stop strings, as evaluation does (transformers generate only).

Base models rarely emit end-of-turn after the closing answer tag (the embedded 270M writes unrelated
text until the token limit), so without this every completion runs to `max_completion_length`: the
tokens after the answer cost generation and backward time, and every completion counts as truncated.

Why end-of-turn is forced rather than generation simply stopped: transformers pads a sequence that a
stopping criterion finished with the pad token, and TRL masks a completion only after an EOS token
(trl/trainer/grpo_trainer.py, `_generate_single_turn`), so the pads would be trained on as completion
tokens. Forcing `<end_of_turn>` right after the stop string ends the completion the way TRL expects:
it is masked after the EOS, counts as terminated (not clipped), and, being part of the completion,
the policy gradient teaches the model to end its turn there by itself.

The wrapper is set on this run's policy object only (its `generate` attribute), never on a class, so
nothing leaks into other trainers or sweep trials in the same process. vLLM rollouts are not affected.
"""

import logging

from transformers import LogitsProcessor, LogitsProcessorList

from eval.generate import reached_stop

log = logging.getLogger(__name__)


class EndTurnAfterStopString(LogitsProcessor):
    """Once a sequence's generated text holds a stop string, its next token is `end_id`."""

    def __init__(self, tokenizer, stops: list[str], prompt_length: int, end_id: int):
        self.tokenizer = tokenizer
        self.stops = stops
        self.prompt_length = prompt_length
        self.end_id = end_id
        # on_force(length, row, scores of the row before forcing, end_id): set by grpo/sampler_old_logps.py
        # to keep the policy's own log-probability of the forced token
        self.on_force = None

    def __call__(self, input_ids, scores):
        if input_ids.shape[1] <= self.prompt_length:
            return scores
        for row, stopped in enumerate(reached_stop(self.tokenizer, self.stops, input_ids, self.prompt_length)):
            if stopped:
                if self.on_force is not None:
                    self.on_force(input_ids.shape[1], row, scores[row], self.end_id)
                scores[row, :] = float("-inf")
                scores[row, self.end_id] = 0.0
        return scores


def end_rollouts_at_stop_strings(model, tokenizer, stops: list[str], end_id: int) -> None:
    """Make `model.generate` (what TRL's transformers rollouts call) end each completion at a stop string."""
    if not stops:
        return
    generate = model.generate

    def generate_ending_at_stops(*args, **kwargs):
        prompt_length = kwargs["input_ids"].shape[1] if "input_ids" in kwargs else args[0].shape[1]
        processors = LogitsProcessorList(kwargs.pop("logits_processor", None) or [])
        processors.append(EndTurnAfterStopString(tokenizer, stops, prompt_length, end_id))
        return generate(*args, logits_processor=processors, **kwargs)

    model.generate = generate_ending_at_stops
    log.info("Rollouts end at %s (then %s)", stops, tokenizer.convert_ids_to_tokens(end_id))
