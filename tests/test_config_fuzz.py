"""Config fuzzing: any override set drawn from the config's own keys either validates, or is refused with the
project's ConfigError. Any other exception (a TypeError from deep inside, a KeyError) fails the test.

The number of sets that ran is printed at the end of the test session (tests/conftest.py).
"""

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hydra.errors import ConfigCompositionException

from compose import compose_train
from conftest import FUZZ_COUNTS
from grpo.validate import ConfigError, validate_training_config

RAN = {"override sets": 0, "valid": 0, "refused": 0}

# Keys a user sets (their group blocks in conf/), with values of every wrong kind.
KEYS = [
    "seed", "trainer.learning_rate", "trainer.max_steps", "trainer.num_generations", "trainer.max_completion_length",
    "trainer.temperature", "trainer.top_p", "trainer.beta", "trainer.num_iterations", "trainer.epsilon",
    "trainer.per_device_train_batch_size", "trainer.gradient_accumulation_steps", "trainer.fp16", "trainer.bf16",
    "trainer.loss_type", "trainer.scale_rewards", "batch.prompts_per_step", "batch.max_micro_batch",
    "eval.limit", "eval.every_n_steps", "eval.max_new_tokens", "eval.batch_size", "eval.num_samples",
    "eval.temperature", "eval.ks", "eval.domains", "guard.max_consecutive_nonfinite", "guard.zero_std_threshold",
    "guard.zero_std_window", "peft.r", "peft.lora_alpha", "model.dtype", "task.answer_tag", "task.reasoning_tag",
    "task.stop", "task.system_prompt", "task.data_files", "rewards.stack.correctness.weight",
    "rewards.stack.structure.params.answer_tag",
]
UNKNOWN_KEYS = ["+trainer.lerning_rate", "+batch.prompt_per_step", "+eval.every_n_step", "+task.answer_tagg",
                "+guard.zero_std", "+rewards.stack.mine.weight"]
VALUES = st.one_of(
    st.integers(min_value=-3, max_value=20),
    st.sampled_from([0, -1, 10**12, 2**63]),
    st.floats(allow_nan=True, allow_infinity=True, width=32),
    st.sampled_from(["''", "abc", "true", "false", "null", "[]", "[1,2]", "{}", "'  '", "1e-5", "x" * 50,
                     "answer", "reasoning", "nf4", "[pubmedqa]", "[nope]", "{train: /nope.jsonl}"]),
)
CHOICES = st.fixed_dictionaries({}, optional={
    "model": st.sampled_from(["tiny", "gemma3-270m", "gemma3-1b-it", "gemma3-4b-it", "gemma4-e2b-it", "gemma4-e4b-it"]),
    "peft": st.sampled_from(["lora", "qlora", "full"]),
    "rollout": st.sampled_from(["hf", "vllm_colocate", "vllm_server", "vllm_colocate_cpu"]),
    "profile": st.sampled_from(["cpu", "gpu"]),
    "+task": st.sampled_from(["gsm8k", "pubmedqa", "reasoning_gym", "math", "custom"]),
    "sft": st.sampled_from(["none", "gsm8k_cot", "task"]),
})


def _render(value) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
    return str(value)


@st.composite
def override_sets(draw):
    choices = draw(CHOICES)
    overrides = [f"{group}={choice}" for group, choice in choices.items()]
    if "+task" not in choices:
        overrides.append("+task=gsm8k")
    for key in draw(st.lists(st.sampled_from(KEYS), max_size=4, unique=True)):
        overrides.append(f"{key}={_render(draw(VALUES))}")
    if draw(st.booleans()):
        overrides.append(f"{draw(st.sampled_from(UNKNOWN_KEYS))}={_render(draw(VALUES))}")
    return overrides


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(overrides=override_sets())
def test_any_override_set_validates_or_is_a_config_error(overrides, tmp_path):
    try:
        cfg = compose_train(*overrides, f"output_dir={tmp_path}")
    except ConfigCompositionException:
        return  # Hydra itself refuses the command line, with its own one-line message
    RAN["override sets"] += 1
    try:
        validate_training_config(cfg, cuda=False)
        RAN["valid"] += 1
    except ConfigError:
        RAN["refused"] += 1


@pytest.fixture(scope="module", autouse=True)
def report_count(request):
    """Hand the counts to the session summary (tests/conftest.py, pytest_terminal_summary)."""
    yield
    request.config.stash[FUZZ_COUNTS] = dict(RAN)
