"""Property tests of the batch derivation: every plan it makes, and every fix it suggests, is one TRL accepts."""

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from grpo.batching import BatchConfigError, plan_batches

GROUP_SIZES = st.integers(min_value=2, max_value=32)
PROMPTS = st.integers(min_value=1, max_value=16)
MICRO = st.integers(min_value=1, max_value=64)
WORLD = st.integers(min_value=1, max_value=8)
# constructing GRPOConfig takes a few ms; enough examples to cover the grid's odd corners
TRL_SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def trl_accepts(tmp_path, per_device_train_batch_size: int, gradient_accumulation_steps: int, num_generations: int):
    """Build the real GRPOConfig (one process here); it raises ValueError on a batch TRL would reject."""
    from trl import GRPOConfig

    GRPOConfig(
        output_dir=str(tmp_path),
        per_device_train_batch_size=per_device_train_batch_size,
        gradient_accumulation_steps=gradient_accumulation_steps,
        num_generations=num_generations,
        report_to=[],
        bf16=False,  # TRL defaults to bf16=True, which needs a GPU
    )


@TRL_SETTINGS
@given(group=GROUP_SIZES, prompts=PROMPTS, max_micro=MICRO)
def test_derived_plan_is_accepted_by_trl(tmp_path, group, prompts, max_micro):
    plan = plan_batches(group, prompts, max_micro)
    trl_accepts(tmp_path, plan.per_device_train_batch_size, plan.gradient_accumulation_steps, group)
    assert plan.derived


@settings(max_examples=1000, deadline=None)
@given(group=GROUP_SIZES, prompts=PROMPTS, max_micro=MICRO, world=WORLD)
def test_derived_plan_holds_whole_groups_and_the_prompts_asked_for(group, prompts, max_micro, world):
    plan = plan_batches(group, prompts, max_micro, world_size=world)
    assert plan.completions_per_step % group == 0  # TRL's rule, on any number of processes
    assert plan.prompts_per_step >= prompts
    assert plan.per_device_train_batch_size <= max_micro
    assert plan.per_device_train_batch_size >= 1 and plan.gradient_accumulation_steps >= 1


@settings(max_examples=1000, deadline=None)
@given(group=GROUP_SIZES, prompts=PROMPTS, max_micro=MICRO, world=WORLD)
def test_derived_plan_is_the_smallest_valid_step(group, prompts, max_micro, world):
    """No smaller step holds whole groups, splits evenly over the processes and has the prompts asked for."""
    plan = plan_batches(group, prompts, max_micro, world_size=world)
    smaller = plan.completions_per_step - 1
    candidates = range(prompts * group, smaller + 1)
    assert not [c for c in candidates if c % group == 0 and c % world == 0]


def _suggestions(message: str) -> tuple[int, int]:
    accumulation = int(re.search(r"trainer\.gradient_accumulation_steps=(\d+)", message).group(1))
    micro = int(re.search(r"trainer\.per_device_train_batch_size=(\d+);", message).group(1))
    return accumulation, micro


@TRL_SETTINGS
@given(group=GROUP_SIZES, micro=st.integers(1, 48), accumulation=st.integers(1, 16))
def test_explicit_sizes_are_accepted_or_refused_with_valid_suggestions(tmp_path, group, micro, accumulation):
    try:
        plan = plan_batches(group, 2, 8, per_device_train_batch_size=micro, gradient_accumulation_steps=accumulation)
    except BatchConfigError as error:
        with pytest.raises(ValueError, match="divisible"):
            trl_accepts(tmp_path, micro, accumulation, group)  # refused only what TRL refuses
        nearest_accumulation, nearest_micro = _suggestions(str(error))
        trl_accepts(tmp_path, micro, nearest_accumulation, group)
        trl_accepts(tmp_path, nearest_micro, accumulation, group)
        # and our own check agrees
        plan_batches(group, 2, 8, per_device_train_batch_size=micro, gradient_accumulation_steps=nearest_accumulation)
        plan_batches(group, 2, 8, per_device_train_batch_size=nearest_micro, gradient_accumulation_steps=accumulation)
    else:
        trl_accepts(tmp_path, plan.per_device_train_batch_size, plan.gradient_accumulation_steps, group)


@settings(max_examples=1000, deadline=None)
@given(group=GROUP_SIZES, micro=st.integers(1, 48), accumulation=st.integers(1, 16), world=WORLD)
def test_suggestions_are_valid_on_many_processes(group, micro, accumulation, world):
    try:
        plan_batches(group, 2, 8, micro, accumulation, world_size=world)
    except BatchConfigError as error:
        nearest_accumulation, nearest_micro = _suggestions(str(error))
        assert (micro * nearest_accumulation * world) % group == 0
        assert (nearest_micro * accumulation * world) % group == 0


@settings(max_examples=500, deadline=None)
@given(group=GROUP_SIZES, given_size=st.integers(1, 48), given_is_micro=st.booleans(), world=WORLD)
def test_one_explicit_size_completes_the_other(group, given_size, given_is_micro, world):
    micro, accumulation = (given_size, None) if given_is_micro else (None, given_size)
    plan = plan_batches(group, 2, 8, micro, accumulation, world_size=world)
    assert plan.completions_per_step % group == 0
    assert given_size == (plan.per_device_train_batch_size if given_is_micro else plan.gradient_accumulation_steps)


def test_group_size_below_two_is_refused():
    with pytest.raises(BatchConfigError, match="at least 2"):
        plan_batches(1, 2, 8)


def test_uneven_process_count_rounds_up_to_the_smallest_valid_step():
    # 2 prompts x 2 generations on 3 processes: 6 completions (3 prompts) is the smallest valid step
    plan = plan_batches(2, 2, 8, world_size=3)
    assert (plan.completions_per_step, plan.prompts_per_step) == (6, 3)
