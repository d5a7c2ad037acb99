"""Dynamic sampling: leave groups whose completions all scored the same out of the update.

A group whose rewards are all equal has zero advantage for every completion, so (with beta=0) it adds
nothing to the policy gradient, yet TRL still runs its forward and backward pass. DAPO (Yu et al., 2025)
filters such groups and samples more prompts until the batch is full; verl calls it `filter_groups`;
TRL has no such option yet (huggingface/trl#3708). This trainer filters without re-sampling: the
update is made from the informative groups that were drawn, and the dropped ones cost no
forward/backward.

How, in TRL 1.16's `GRPOTrainer`:
- `_calculate_rewards` returns every process's rewards (gathered), from which each group's spread is
  known; `_generate_and_score_completions` adds a per-completion `dynamic_sampling_keep` mask, which
  TRL's own shuffle and micro-batch split carry along like any other row tensor.
- `_compute_loss` runs TRL's loss on the kept rows of each micro-batch only. A micro-batch with no kept
  row returns a zero loss attached to the graph without a forward pass (no NaN, no wasted backward).

Loss normalisation (what the update means):
- `loss_type` dapo / cispo / vespo (token-level; dapo is our default) divide by the number of completion
  tokens of the whole generation batch (`num_items_in_batch`), which is left unchanged. Dropped rows
  contributed exactly zero to the numerator, so with beta=0 the update is the *same* as without
  filtering, only cheaper (tests/test_dynamic_sampling.py checks the gradients are equal). We chose
  this over re-normalising by the kept tokens, which would silently raise the step size whenever many
  groups are dropped.
- grpo / bnpo / sapo / dr_grpo / luspo normalise per micro-batch (mean over sequences or tokens), so the
  kept rows are averaged among themselves: the update is rescaled by (rows / kept rows). A warning
  says so at start-up.
- beta > 0: a dropped completion still carries a KL gradient, which filtering removes. A warning too.

Metrics (per optimizer step, in metrics.jsonl and W&B): `dynamic_sampling/dropped_groups`,
`dynamic_sampling/dropped_fraction` (of the groups), `dynamic_sampling/kept_completions`.
"""

import logging

import torch
from trl import GRPOTrainer

log = logging.getLogger(__name__)

KEEP_KEY = "dynamic_sampling_keep"
# token-normalised losses whose denominator spans the whole generation batch (TRL `_compute_loss`)
BATCH_NORMALISED_LOSSES = ("dapo", "cispo", "vespo")


def zero_spread_groups(rewards_per_func: torch.Tensor, weights: torch.Tensor, num_generations: int,
                       aggregation: str = "sum_then_normalize") -> torch.Tensor:
    """(num_groups,) bool: groups whose rewards carry no signal, as TRL's advantages see them.

    sum_then_normalize (TRL's default): the weighted sum has zero std in the group (TRL's own
    `frac_reward_zero_std` test). normalize_then_sum: every reward function is constant in the group.
    NaN (a function that did not score a row) is ignored, as TRL does.
    """
    grouped = rewards_per_func.view(-1, num_generations, rewards_per_func.shape[1])
    if aggregation == "sum_then_normalize":
        summed = (grouped * weights.to(grouped.device)).nansum(dim=2)
        summed[torch.isnan(grouped).all(dim=2)] = torch.nan
        return _constant(summed)
    return torch.stack([_constant(grouped[:, :, k]) for k in range(grouped.shape[2])], dim=1).all(dim=1)


def _constant(values: torch.Tensor) -> torch.Tensor:
    """(groups, G) -> (groups,) bool: all non-NaN values equal (up to float noise); all-NaN counts too."""
    low = torch.where(torch.isnan(values), torch.inf, values).min(dim=1).values
    high = torch.where(torch.isnan(values), -torch.inf, values).max(dim=1).values
    empty = torch.isinf(low)
    return empty | torch.isclose(high, low)


class DynamicSamplingGRPOTrainer(GRPOTrainer):
    """GRPOTrainer that leaves zero-spread groups out of the loss's forward and backward passes."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.loss_type not in BATCH_NORMALISED_LOSSES:
            log.warning(
                "dynamic sampling with loss_type=%s: each micro-batch averages over its kept completions only, "
                "so the update grows when groups are dropped (loss_type=dapo keeps it unchanged)", self.loss_type
            )
        if self.beta != 0.0:
            log.warning("dynamic sampling with beta=%s: dropped completions lose their KL term", self.beta)
        self._last_rewards_per_func: torch.Tensor | None = None

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        self._last_rewards_per_func = rewards_per_func
        return rewards_per_func

    def _generate_and_score_completions(self, inputs):
        output = super()._generate_and_score_completions(inputs)
        if not self.model.training:
            return output
        dropped = zero_spread_groups(self._last_rewards_per_func, self.reward_weights, self.num_generations,
                                     self.multi_objective_aggregation)
        keep_all = (~dropped).repeat_interleave(self.num_generations)
        local = len(output["advantages"])
        start = self.accelerator.process_index * local
        keep = keep_all[start : start + local].to(output["advantages"].device)
        output[KEEP_KEY] = keep
        metrics = self._metrics["train"]
        metrics["dynamic_sampling/dropped_groups"].append(float(dropped.sum().item()))
        metrics["dynamic_sampling/dropped_fraction"].append(float(dropped.float().mean().item()))
        metrics["dynamic_sampling/kept_completions"].append(float(keep_all.sum().item()))
        return output

    def _compute_loss(self, model, inputs):
        keep = inputs.get(KEEP_KEY)
        if keep is None or bool(keep.all()):
            return super()._compute_loss(model, _without_keep(inputs))
        if not bool(keep.any()):
            return self._skipped_loss(model)
        return super()._compute_loss(model, _kept_rows(inputs, keep))

    def _skipped_loss(self, model) -> torch.Tensor:
        """A zero loss for a micro-batch with nothing to learn from, without a forward pass.

        One process: a bare leaf, so backward() leaves every gradient as it was (None when no other
        micro-batch of the step had one) and the optimizer skips the step instead of coasting on its
        momentum. Several processes: zero times every trainable weight, so DDP's gradient all-reduce
        still sees each parameter (a missing one would hang the other ranks).
        """
        if self.accelerator.num_processes == 1:
            return torch.zeros((), device=self.accelerator.device, requires_grad=True)
        return sum(p.sum() * 0.0 for p in model.parameters() if p.requires_grad)


def _without_keep(inputs: dict) -> dict:
    return {k: v for k, v in inputs.items() if k != KEEP_KEY}


def _kept_rows(inputs: dict, keep: torch.Tensor) -> dict:
    """The micro-batch restricted to kept rows: every per-row tensor or list is indexed; scalars
    (num_items_in_batch) stay as they are."""
    rows = keep.shape[0]
    index = keep.nonzero(as_tuple=True)[0]
    kept = {}
    for key, value in _without_keep(inputs).items():
        if isinstance(value, torch.Tensor) and value.ndim > 0 and value.shape[0] == rows:
            kept[key] = value.index_select(0, index.to(value.device))
        elif isinstance(value, list) and len(value) == rows:
            kept[key] = [value[i] for i in index.tolist()]
        else:
            kept[key] = value
    return kept
