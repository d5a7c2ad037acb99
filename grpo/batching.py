"""Batch sizes derived from the group size, so TRL's divisibility rules hold for any group size >= 2.

TRL's rules (GRPOConfig.__post_init__): `per_device_train_batch_size` counts completions, not prompts;
one optimizer step consumes per_device_train_batch_size * gradient_accumulation_steps * world_size
completions (the generation batch), and that number must be a multiple of num_generations so that
every prompt's group is complete. Users state prompts per step instead; we derive the rest.
"""

import math
from dataclasses import dataclass


class BatchConfigError(ValueError):
    """An explicit batch setting that TRL would reject, with the nearest valid one."""


@dataclass(frozen=True)
class BatchPlan:
    num_generations: int
    per_device_train_batch_size: int
    gradient_accumulation_steps: int
    world_size: int
    derived: bool

    @property
    def completions_per_step(self) -> int:
        return self.per_device_train_batch_size * self.gradient_accumulation_steps * self.world_size

    @property
    def prompts_per_step(self) -> int:
        return self.completions_per_step // self.num_generations

    def explain(self) -> str:
        how = "derived" if self.derived else "given"
        return (
            f"batch ({how}): {self.prompts_per_step} prompts x {self.num_generations} generations = "
            f"{self.completions_per_step} completions per step = {self.per_device_train_batch_size} per micro-batch "
            f"x {self.gradient_accumulation_steps} accumulation steps x {self.world_size} process(es)"
        )


def plan_batches(
    num_generations: int,
    prompts_per_step: int,
    max_micro_batch: int,
    per_device_train_batch_size: int | None = None,
    gradient_accumulation_steps: int | None = None,
    world_size: int = 1,
) -> BatchPlan:
    """Derive micro-batch and accumulation from prompts per step, or check explicit values."""
    if num_generations < 2:
        raise BatchConfigError(
            f"trainer.num_generations={num_generations}: GRPO compares completions within a group, "
            "so the group size must be at least 2"
        )
    if per_device_train_batch_size is None and gradient_accumulation_steps is None:
        # the smallest multiple of both the group size and the process count that holds the prompts asked for
        step = math.lcm(num_generations, world_size)
        completions = math.ceil(prompts_per_step * num_generations / step) * step
        per_process = completions // world_size
        micro = max(d for d in range(1, min(per_process, max_micro_batch) + 1) if per_process % d == 0)
        return BatchPlan(num_generations, micro, per_process // micro, world_size, derived=True)

    micro = per_device_train_batch_size or _smallest_micro_batch(num_generations, world_size)
    accumulation = gradient_accumulation_steps or _smallest_accumulation(micro, num_generations, world_size)
    plan = BatchPlan(num_generations, micro, accumulation, world_size, derived=False)
    if plan.completions_per_step % num_generations:
        raise BatchConfigError(_explain_invalid(plan))
    return plan


def _smallest_micro_batch(num_generations: int, world_size: int) -> int:
    return num_generations // math.gcd(num_generations, world_size)


def _smallest_accumulation(micro: int, num_generations: int, world_size: int) -> int:
    per_step = micro * world_size
    return math.lcm(per_step, num_generations) // per_step


def _explain_invalid(plan: BatchPlan) -> str:
    group = plan.num_generations
    valid_accumulation = _smallest_accumulation(plan.per_device_train_batch_size, group, plan.world_size)
    nearest_accumulation = valid_accumulation * max(1, round(plan.gradient_accumulation_steps / valid_accumulation))
    divisors = [m for m in range(1, 4 * group + 1) if (m * plan.world_size * plan.gradient_accumulation_steps) % group == 0]
    nearest_micro = min(divisors, key=lambda m: (abs(m - plan.per_device_train_batch_size), m))
    return (
        f"trainer.num_generations={group} does not divide the completions per step "
        f"(per_device_train_batch_size={plan.per_device_train_batch_size} x gradient_accumulation_steps="
        f"{plan.gradient_accumulation_steps} x {plan.world_size} process(es) = {plan.completions_per_step}). "
        f"Every prompt's {group} completions must fall in the same step (per_device_train_batch_size counts "
        f"completions, not prompts). Nearest valid: trainer.gradient_accumulation_steps={nearest_accumulation}, "
        f"or trainer.per_device_train_batch_size={nearest_micro}; or leave both null and set "
        f"batch.prompts_per_step to have them derived."
    )
