"""Faster transformers generate() for rollout=hf (rollouts and evaluations): the same distribution of
tokens, less work per token. Measured on CPU; the head change applies on CPU only.

Three changes, each measured in docs/performance.md section 8 and each switchable in the config:

- `merge_lora_for_generation` (rollout.merge_lora): generate() runs on W + scale * B @ A, computed out of
  place into a fresh tensor per adapted weight, with the LoRA branches switched off. A decode step then
  does one matmul per projection instead of three plus an add (126 LoRA layers in the 270M). When
  generation ends each weight gets its own original tensor back, so the base is never written and never
  drifts (no merge/unmerge round trip; trl #6688 measured that drift for TRL's in-place merge).
- `transposed_head` (rollout.cpu_transposed_head): on CPU, with no autograd and 2-64 rows (decode
  batches), the output layer computes (W @ h^T)^T instead of h @ W^T. For Gemma's 262,144 x 640 head at
  batch 8 this ran 1.6-2.4x faster on our 2-core CPUs: oneDNN treats a skinny h @ W^T poorly. The
  logits are the same up to float rounding (tests/test_fast_decode.py).
- `sample_by_inverse_cdf` (rollout.inverse_cdf_sampling): TRL's plain sampling (temperature only: top_k 0,
  top_p 1, no min_p) draws each token as transformers does, from softmax(logits / temperature), but by
  one uniform number per row against the cumulative distribution (float64) instead of
  `torch.multinomial`, which took 48 ms per decode step at batch 8 over the 262k vocabulary on our CPUs
  (a quarter of the step). Same distribution, different random stream: the tokens drawn differ from
  torch's for the same seed.

A fourth, `rollout.share_prompt_prefill` (grpo/shared_prefill.py), encodes each prompt of a GRPO group
once instead of once per completion; `speed_up_generation` installs it innermost, so that the merged
weights encode the prompts too.
"""

import copy
import functools
import logging
from contextlib import contextmanager

import torch
from transformers import GenerationConfig, LogitsProcessor, LogitsProcessorList

log = logging.getLogger(__name__)

# At 2-64 rows (decode batches) the transposed product measured faster (8: 52 vs 126 ms, 64: 237 vs 398);
# a single row, and larger batches, keep torch's own (1 row: 46 vs 58 ms). docs/performance.md 8.1.
TRANSPOSED_HEAD_ROWS = range(2, 65)
# vocabulary rows per slice of `transposed_product`: 2,048 x 640 fp32 weights (5 MB) and their logits
HEAD_SLICE = 2048
# tokens per block of the two-level inverse-CDF search (`draw_by_inverse_cdf`): 512 x 512 for Gemma's 262,144
SAMPLING_BLOCK = 512


def speed_up_generation(rollout_cfg, model, sampled_logps=None) -> None:
    """The rollout config's generate() speed-ups (rollout=hf: conf/rollout/hf.yaml) on `model`; its
    rollouts and evaluations share them. Other rollout configs carry none of the keys. `sampled_logps`:
    where the sampler records each drawn token's log-probability (grpo/sampler_old_logps.py)."""
    if rollout_cfg.get("drop_finished_rows"):
        from grpo.compact_decode import drop_finished_rows

        drop_finished_rows(model)
    if rollout_cfg.get("share_prompt_prefill"):
        from grpo.shared_prefill import prefill_each_prompt_once

        prefill_each_prompt_once(model)
    if rollout_cfg.get("merge_lora"):
        merge_lora_for_generation(model)
    if rollout_cfg.get("cpu_transposed_head"):
        transposed_head(model)
    if rollout_cfg.get("inverse_cdf_sampling"):
        sample_by_inverse_cdf(model, sampled_logps)


def lora_deltas(peft_model) -> dict[int, tuple[torch.nn.Parameter, torch.Tensor]]:
    """{id(base weight): (base weight, summed float32 delta of its active LoRA adapters)}."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    deltas: dict[int, tuple[torch.nn.Parameter, torch.Tensor]] = {}
    for module in peft_model.modules():
        if not isinstance(module, BaseTunerLayer) or module.merged:
            continue
        weight = module.get_base_layer().weight
        for adapter in module.active_adapters:
            if adapter in getattr(module, "lora_A", {}) or adapter in getattr(module, "lora_embedding_A", {}):
                delta = module.get_delta_weight(adapter).float()
                if id(weight) in deltas:
                    delta = deltas[id(weight)][1] + delta
                deltas[id(weight)] = (weight, delta)
    return deltas


def can_merge_for_generation(model) -> str | None:
    """None when generate() may run on merged weights; otherwise why not."""
    from peft import PeftModel

    if not isinstance(model, PeftModel):
        return "not a LoRA model"
    for config in model.peft_config.values():
        if getattr(config, "use_dora", False):
            return "DoRA adapter"  # its delta depends on the input norm, not a fixed W + BA
        if getattr(config, "lora_dropout", 0.0):
            return "lora_dropout > 0 (the LoRA branch is random in training mode)"
    if any(getattr(p, "quant_state", None) is not None for p in model.parameters()):
        return "quantized base weights (QLoRA)"
    return None


def sharded(model) -> bool:
    """Are the weights sharded across processes (FSDP2 DTensors, DeepSpeed ZeRO-3)? Each process then
    holds a slice, and W + B @ A cannot be formed locally."""
    from torch.distributed.tensor import DTensor

    return any(isinstance(p, DTensor) or hasattr(p, "ds_id") for p in model.parameters())


@contextmanager
def lora_merged_out_of_place(peft_model):
    """Inside: the base weights hold W + delta (new tensors) and the LoRA branches are off."""
    originals = []
    # peft's disable_adapter() makes the active adapter trainable again on exit; an inference model stays frozen
    trainable = {name: p.requires_grad for name, p in peft_model.named_parameters()}
    try:
        with torch.no_grad():
            for weight, delta in lora_deltas(peft_model).values():
                originals.append((weight, weight.data))
                weight.data = (weight.data.float() + delta).to(weight.dtype)
        with peft_model.disable_adapter():
            yield
    finally:
        for weight, original in originals:
            weight.data = original
        for name, p in peft_model.named_parameters():
            p.requires_grad_(trainable[name])


def merge_lora_for_generation(model) -> bool:
    """Make `model.generate` run on out-of-place merged weights. Returns whether it does."""
    reason = can_merge_for_generation(model)
    if reason:
        log.info("rollout.merge_lora: generating through the LoRA branches (%s)", reason)
        return False
    generate = model.generate

    @functools.wraps(generate)
    def generate_merged(*args, **kwargs):
        if sharded(model):  # checked per call: FSDP / ZeRO-3 shard the weights when training starts
            return generate(*args, **kwargs)
        with lora_merged_out_of_place(model):
            return generate(*args, **kwargs)

    model.generate = generate_merged
    log.info("rollout.merge_lora: generate() runs on LoRA merged out of place (base weights untouched)")
    return True


def transposed_product(weight: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """rows @ weight^T, computed as (weight @ rows^T)^T one slice of the vocabulary at a time and written
    into a row-major result. A single (W @ h^T)^T is a column-major view, and generate()'s argmax, the
    sampler's softmax and cumulative sum over such a view took 46, 38 and 75 ms at 32 rows instead of 6,
    15 and 56 (docs/performance.md 8.7); the slices' transposes stay in cache."""
    out = torch.empty(rows.shape[0], weight.shape[0], dtype=rows.dtype, device=rows.device)
    columns = rows.t()
    for start in range(0, weight.shape[0], HEAD_SLICE):
        out[:, start:start + HEAD_SLICE].copy_(torch.mm(weight[start:start + HEAD_SLICE], columns).t())
    return out


def transposed_head(model) -> bool:
    """Give a CPU model's output layer the transposed product for small no-grad batches. Returns
    whether it was installed."""
    head = model.get_output_embeddings()
    if type(head) is not torch.nn.Linear or head.bias is not None or head.weight.device.type != "cpu":
        return False
    linear = head.forward

    def forward(hidden: torch.Tensor) -> torch.Tensor:
        rows = hidden.reshape(-1, hidden.shape[-1])
        if torch.is_grad_enabled() or rows.shape[0] not in TRANSPOSED_HEAD_ROWS:
            return linear(hidden)
        return transposed_product(head.weight, rows).reshape(*hidden.shape[:-1], head.out_features)

    head.forward = forward
    log.info("rollout.cpu_transposed_head: decode logits as (W @ h^T)^T")
    return True


class InverseCdfSampler(LogitsProcessor):
    """Draws each row's next token from softmax(scores / temperature) and marks it +inf, so that greedy
    search (the last step of generate()) picks it. Zero-probability tokens are never drawn: the search
    finds the first cumulative sum strictly above the draw. `top_k` > 0 first keeps the k likeliest tokens
    as transformers' TopKLogitsWarper does (ties with the k-th kept too).

    `record(length, tokens, logps)`, when given, receives each step's drawn tokens and their
    log-probabilities under that distribution (grpo/sampler_old_logps.py)."""

    def __init__(self, temperature: float, record=None, top_k: int = 0):
        self.temperature = temperature
        self.record = record
        self.top_k = top_k

    def __call__(self, input_ids, scores):
        scaled = scores if self.temperature == 1.0 else scores / self.temperature
        if 0 < self.top_k < scaled.shape[-1]:
            tokens, logps = self._draw_top_k(scaled)
        else:
            tokens, logps = draw_from_softmax(scaled)
        if self.record is not None:
            self.record(input_ids.shape[1], tokens.squeeze(1), logps.squeeze(1))
        return scores.scatter_(1, tokens, float("inf"))

    def _draw_top_k(self, scaled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Drawn among the k likeliest alone (a 64-wide draw instead of a 262k-wide softmax: 25 ms a decode
        step at 32 rows against transformers' 267, scripts/bench_sampling.py), unless the (k+1)-th score ties
        the k-th: transformers keeps every tied token, and so does the masked whole-vocabulary draw then."""
        k = self.top_k
        values, indices = torch.topk(scaled, k + 1, dim=-1)
        if bool((values[:, k] == values[:, k - 1]).any()):
            return draw_from_softmax(scaled.masked_fill(scaled < values[:, k - 1:k], float("-inf")))
        choice, logps = draw_from_softmax(values[:, :k])
        return indices.gather(1, choice), logps


def draw_from_softmax(scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(rows, 1) column indices drawn from softmax(scores) by `draw_by_inverse_cdf`, and their log-probabilities."""
    probabilities = torch.softmax(scores, dim=-1)
    tokens = draw_by_inverse_cdf(probabilities)
    return tokens, probabilities.gather(1, tokens).log()


def draw_by_inverse_cdf(probabilities: torch.Tensor) -> torch.Tensor:
    """(rows, 1) token ids, one per row of `probabilities` (rows, vocabulary), each drawn by one uniform
    number against the row's cumulative distribution (float64 across blocks and inside the chosen one).
    The cumulative sum is taken over blocks of SAMPLING_BLOCK tokens first and then inside the one block
    the draw falls in, instead of over the whole 262k vocabulary, which took 37 ms of a 32-row decode
    step (docs/performance.md 8.7)."""
    rows, vocabulary = probabilities.shape
    blocks = -(-vocabulary // SAMPLING_BLOCK)
    padded = probabilities.contiguous()
    if blocks * SAMPLING_BLOCK != vocabulary:
        padded = torch.nn.functional.pad(padded, (0, blocks * SAMPLING_BLOCK - vocabulary))
    by_block = padded.view(rows, blocks, SAMPLING_BLOCK)
    # float32 block sums (a float64 reduction took 10 ms at 32 rows), accumulated across blocks in float64
    cumulative_mass = by_block.sum(-1).double().cumsum(-1)
    draws = torch.rand((rows, 1), dtype=torch.float64, device=probabilities.device) * cumulative_mass[:, -1:]
    block = torch.searchsorted(cumulative_mass, draws, right=True).clamp_(max=blocks - 1)
    mass_before = torch.where(block > 0, cumulative_mass.gather(1, (block - 1).clamp_(min=0)), 0.0)
    inside = by_block[torch.arange(rows, device=block.device), block.squeeze(1)]
    cumulative = inside.cumsum(-1, dtype=torch.float64) + mass_before
    offset = torch.searchsorted(cumulative, draws, right=True)
    # the block's own sum and its running sum round differently; a draw past the running sum's end
    # takes the block's last token of positive probability
    last_positive = SAMPLING_BLOCK - 1 - (inside > 0).flip(-1).int().argmax(-1, keepdim=True)
    offset = torch.where(offset >= SAMPLING_BLOCK, last_positive, offset)
    return (block * SAMPLING_BLOCK + offset).clamp_(max=vocabulary - 1)


def as_generate_sees_it(config: GenerationConfig, model) -> GenerationConfig:
    """`config` with its unset (None) fields filled from the model's generation config, as generate()
    fills them (transformers' `_prepare_generation_config`): the hub Gemmas' top_k 64 and top_p 0.95, say.
    A field still unset then takes transformers' global default (top_k 50), as there."""
    effective = copy.deepcopy(config)
    effective.update(**model.generation_config.to_dict(), defaults_only=True)
    global_defaults = getattr(GenerationConfig, "_get_default_generation_params", None)  # transformers 5
    if global_defaults is not None:
        effective.update(**global_defaults(), defaults_only=True)
    return effective


def inverse_cdf_top_k(config: GenerationConfig) -> int | None:
    """The top_k (0: none) of sampling with a temperature and at most a top-k cut (TRL's defaults; the
    hub Gemmas' top_k 64 once top_p is 1), judged on the config as generate() sees it
    (`as_generate_sees_it`); None for anything else (top_p, min_p, beams, ...): that samples as
    transformers does."""
    plain = (
        bool(config.do_sample)
        and (config.num_beams or 1) == 1
        and config.top_p == 1.0
        and config.min_p is None
        and config.typical_p in (None, 1.0)
        and config.epsilon_cutoff in (None, 0.0)
        and config.eta_cutoff in (None, 0.0)
        and (config.temperature or 1.0) > 0
    )
    return config.top_k if plain and config.top_k is not None else None


def sample_by_inverse_cdf(model, sampled_logps=None) -> None:
    """Make `model.generate`, called with a `generation_config` that samples with a temperature and at
    most a top-k cut (TRL's rollouts), draw tokens with InverseCdfSampler; every other call (greedy
    evaluation, top_p, ...) is left alone. `sampled_logps` (grpo/sampler_old_logps.SampledLogps), when
    given and armed, records the log-probability of every drawn token."""
    generate = model.generate

    @functools.wraps(generate)
    def generate_sampling_by_cdf(*args, **kwargs):
        config = kwargs.get("generation_config")
        top_k = None if config is None else inverse_cdf_top_k(as_generate_sees_it(config, model))
        if top_k is None:
            return generate(*args, **kwargs)
        greedy = copy.deepcopy(config)
        greedy.do_sample, greedy.temperature, greedy.top_k, greedy.top_p = False, 1.0, 50, 1.0
        processors = LogitsProcessorList(kwargs.pop("logits_processor", None) or [])
        temperature = config.temperature or 1.0
        recording = sampled_logps is not None and sampled_logps.begin(model, args, kwargs, greedy, processors,
                                                                      temperature, top_k)
        processors.append(InverseCdfSampler(temperature, sampled_logps.draw if recording else None, top_k))
        output = generate(*args, **{**kwargs, "generation_config": greedy, "logits_processor": processors})
        if recording:
            sampled_logps.end(output)
        return output

    model.generate = generate_sampling_by_cdf
    log.info("rollout.inverse_cdf_sampling: tokens drawn by inverse CDF instead of torch.multinomial")
