"""Old log-probabilities from the sampler (`rollout.sampler_old_logps`), for rollouts that serve several
optimizer steps.

When one generate() call serves several optimizer steps (`trainer.steps_per_generation` above the
accumulation steps) or one rollout serves several updates (`num_iterations` > 1), the later updates see
samples of an older policy, and TRL 1.16 computes each sampled token's log-probability under that policy
for the PPO ratio in an extra no-grad forward pass over the whole generation batch
(`old_per_token_logps`, `_generate_and_score_completions`). At 32 completions of the CPU default step that
pass took ~21 s, more than generating 8 completions saves (docs/performance.md 8.7).

The inverse-CDF sampler (grpo/fast_decode.py) already holds that distribution, softmax(logits /
temperature) of the policy at generation time, for every token it draws: it records log p(token), the
quantity TRL's pass computes (from merged LoRA weights and a key/value cache instead of one full forward:
the same up to float rounding, tests/test_sampler_old_logps.py). A token that the stop strings force
(grpo/stop_strings.py) is recorded with the policy's own log-probability of it, taken before forcing, as
TRL's pass would.

The trainer (`with_sampler_old_logps`) arms the recorder only when TRL is about to run that pass, and the
pass's call, the first no-grad log-prob call of `_generate_and_score_completions`, takes the recording
instead when the recorded tokens are exactly the completions TRL built. Anything else makes TRL's pass run
as before, with one log line saying why: other logits processors, several generate() calls, tokens that
differ. Completion padding gets log-probability 0 in every pass through the trainer, so that a ratio of
two passes is 1 there whatever each pass computes for a pad.
"""

import logging

import torch

from grpo.compact_decode import active_rows

log = logging.getLogger(__name__)


class SampledLogps:
    """The log-probability of each token the sampler drew, per generate() call, while armed."""

    def __init__(self):
        self.armed = False
        self.recordings: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []  # (tokens, logps, known)
        self.refusal: str | None = None
        self._call = None

    def arm(self) -> None:
        self.armed, self.recordings, self.refusal, self._call = True, [], None, None

    def disarm(self) -> None:
        self.armed, self.recordings, self._call = False, [], None

    # -- generate side (grpo/fast_decode.sample_by_inverse_cdf) ------------------------------------------
    def begin(self, model, args, kwargs, config, processors, temperature: float, top_k: int = 0) -> bool:
        """Start recording one generate() call; False (and why, in `refusal`) when it cannot be recorded."""
        from grpo.stop_strings import EndTurnAfterStopString

        if not self.armed:
            return False
        if top_k:  # TRL scores the tokens under the whole tempered distribution, not the top-k cut
            self.refusal = f"top_k={top_k} truncates the distribution the tokens are drawn from"
            return False
        input_ids = kwargs.get("input_ids", args[0] if args else None)
        others = [type(p).__name__ for p in processors if not isinstance(p, EndTurnAfterStopString)]
        builtin = reshaping_processors(model, config, input_ids)
        if input_ids is None or others or builtin:
            self.refusal = f"logits processors that reshape the distribution ({', '.join(others + builtin)})" \
                if others or builtin else "generate() without input_ids"
            return False
        self._call = {"prompt_length": input_ids.shape[1], "temperature": temperature, "steps": {}, "forced": {}}
        for processor in processors:
            processor.on_force = self.forced
        return True

    def draw(self, length: int, tokens: torch.Tensor, logps: torch.Tensor) -> None:
        self._call["steps"][length] = (active_rows(), tokens.clone(), logps.float())

    def forced(self, length: int, row: int, raw_scores: torch.Tensor, token: int) -> None:
        logp = torch.log_softmax(raw_scores.float() / self._call["temperature"], dim=-1)[token]
        rows = active_rows()  # the processors see the rows still decoding (grpo/compact_decode.py)
        self._call["forced"][(length, row if rows is None else int(rows[row]))] = (token, logp)

    def end(self, sequences) -> None:
        call, self._call = self._call, None
        if not isinstance(sequences, torch.Tensor):
            self.refusal = "generate() returned more than the token ids"
            return
        self.recordings.append(assemble(sequences[:, call["prompt_length"]:], call["prompt_length"], call["steps"],
                                        call["forced"]))

    # -- trainer side -------------------------------------------------------------------------------------
    def take(self, completion_ids: torch.Tensor, completion_mask: torch.Tensor) -> torch.Tensor | None:
        """The recorded log-probabilities of `completion_ids` (rows, width; TRL's right-padded completions),
        0 on padding; None (and why, in `refusal`) when the recording does not cover them exactly. The
        recording is used up either way."""
        recordings, self.recordings = self.recordings, []
        if self.refusal is not None:
            return None
        if len(recordings) != 1:
            self.refusal = f"{len(recordings)} generate() calls recorded for one generation batch (expected 1)"
            return None
        tokens, logps, known = recordings[0]
        rows, width = completion_ids.shape
        if tokens.shape[0] != rows:
            self.refusal = f"{tokens.shape[0]} rows recorded for {rows} completions"
            return None
        if tokens.shape[1] < width:  # TRL's pad_to_multiple_of
            extra = width - tokens.shape[1]
            tokens, logps = (torch.nn.functional.pad(t, (0, extra)) for t in (tokens, logps))
            known = torch.nn.functional.pad(known, (0, extra), value=False)
        tokens, logps, known = tokens[:, :width], logps[:, :width], known[:, :width]
        mask = completion_mask.bool().to(tokens.device)
        if not bool(known[mask].all()) or not torch.equal(tokens[mask], completion_ids.to(tokens.device)[mask]):
            self.refusal = "the recorded tokens differ from the completions TRL built"
            return None
        return logps.masked_fill(~mask, 0.0).to(completion_ids.device)


def assemble(generated: torch.Tensor, prompt_length: int, steps: dict,
             forced: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(tokens, log-probs, known) of a call's generated columns: each column's drawn token and its
    log-probability where generate() kept it, the forced token's where a stop string forced one; `known`
    is False elsewhere (the padding of finished rows, or a step not recorded). Each step's draws are of
    the rows then decoding (all of them, or those grpo/compact_decode.py kept)."""
    rows, columns = generated.shape
    logps = torch.zeros(rows, columns)
    known = torch.zeros(rows, columns, dtype=torch.bool)
    generated = generated.cpu()
    for column in range(columns):
        step = steps.get(prompt_length + column)
        if step is None:
            break
        step_rows, drawn, drawn_logps = step
        step_rows = torch.arange(rows) if step_rows is None else step_rows.cpu()
        kept = generated[step_rows, column] == drawn.cpu()
        logps[step_rows, column] = torch.where(kept, drawn_logps.cpu(), 0.0)
        known[step_rows, column] = kept
    for (length, row), (token, logp) in forced.items():
        column = length - prompt_length
        if column < columns and int(generated[row, column]) == token:
            logps[row, column], known[row, column] = float(logp), True
    return generated, logps, known


def reshaping_processors(model, config, input_ids) -> list[str]:
    """The logits processors generate() itself would add for `config` (repetition penalty, minimum length,
    suppressed tokens, ...): any of them changes the distribution the sampler sees."""
    from transformers import LogitsProcessorList

    try:
        built = model._get_logits_processor(generation_config=config, input_ids_seq_length=input_ids.shape[1],
                                            encoder_input_ids=input_ids, logits_processor=LogitsProcessorList(),
                                            device=input_ids.device, model_kwargs={})
    except Exception as error:  # a private transformers API: if it changes, TRL's pass runs
        return [f"unknown ({type(error).__name__}: {error})"]
    return [type(p).__name__ for p in built]


def needs_old_logps(trainer) -> bool:
    """TRL 1.16's condition for its old-log-prob pass (`_generate_and_score_completions`), vLLM aside."""
    generate_every = trainer.args.steps_per_generation * trainer.num_iterations
    return trainer.args.gradient_accumulation_steps % generate_every != 0


def with_sampler_old_logps(trainer_class: type) -> type:
    """`trainer_class` whose old-log-prob pass takes the sampler's recording (see the module docstring)."""

    class SamplerOldLogps(trainer_class):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.sampled_logps = SampledLogps()
            self._sampler_refusal_logged = False

        def _generate_and_score_completions(self, inputs):
            if self.model.training and not self.use_vllm and needs_old_logps(self):
                self.sampled_logps.arm()
            try:
                return super()._generate_and_score_completions(inputs)
            finally:
                self.sampled_logps.disarm()

        def _get_per_token_logps_and_entropies(self, model, input_ids, attention_mask, logits_to_keep,
                                               batch_size=None, compute_entropy=False, compute_aux_loss=False,
                                               **extra_inputs):
            completion_mask = attention_mask[:, -logits_to_keep:]
            if (self.sampled_logps.armed and not torch.is_grad_enabled() and model is self.model
                    and not compute_entropy and not compute_aux_loss):
                self.sampled_logps.armed = False  # only the first such call is the old pass; the reference's is not
                logps = self.sampled_logps.take(input_ids[:, -logits_to_keep:], completion_mask)
                if logps is not None:
                    self._metrics["train"]["sampler_old_logps/used"].append(1.0)
                    return logps, None, None
                self._metrics["train"]["sampler_old_logps/used"].append(0.0)
                if not self._sampler_refusal_logged:
                    log.info("rollout.sampler_old_logps: TRL's old-log-prob pass runs (%s)", self.sampled_logps.refusal)
                    self._sampler_refusal_logged = True
            logps, entropies, aux = super()._get_per_token_logps_and_entropies(
                model, input_ids, attention_mask, logits_to_keep, batch_size, compute_entropy, compute_aux_loss,
                **extra_inputs)
            return logps.masked_fill(completion_mask == 0, 0.0), entropies, aux

    SamplerOldLogps.__name__ = SamplerOldLogps.__qualname__ = trainer_class.__name__
    return SamplerOldLogps
