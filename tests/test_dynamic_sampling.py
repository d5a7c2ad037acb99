"""Dynamic sampling (grpo/dynamic_sampling.py): which groups are dropped, the same update with dapo,
a cheap zero-loss skip when nothing is left, and the metrics of a real run on the tiny model."""

import json
import math

import pytest
import torch
from omegaconf import open_dict

from compose import compose_train
from grpo.dynamic_sampling import KEEP_KEY, DynamicSamplingGRPOTrainer, zero_spread_groups
from grpo.validate import ConfigError

NAN = float("nan")


def test_groups_with_equal_rewards_are_the_ones_dropped():
    rewards = torch.tensor([[1.0], [1.0], [0.0], [1.0], [0.3], [0.3], [NAN], [0.5]])
    dropped = zero_spread_groups(rewards, torch.tensor([1.0]), num_generations=2)
    # (1, 1) equal; (0, 1) differ; (0.3, 0.3) equal; (NaN, 0.5): one scored value, no spread
    assert dropped.tolist() == [True, False, True, True]


def test_weighted_sum_decides_and_normalize_then_sum_needs_every_function_constant():
    # two reward functions that trade off exactly: the weighted sum is constant, each function is not
    rewards = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [1.0, 0.0]])
    weights = torch.tensor([1.0, 1.0])
    assert zero_spread_groups(rewards, weights, 2).tolist() == [True, False]
    assert zero_spread_groups(rewards, weights, 2, "normalize_then_sum").tolist() == [False, False]


def test_float_noise_is_not_spread():
    rewards = torch.tensor([[0.1 * 3], [0.3], [0.7], [0.7000001]])
    assert zero_spread_groups(rewards, torch.tensor([1.0]), 2).tolist() == [True, True]


@pytest.fixture(scope="module")
def trainer(tiny_model_dir, tmp_path_factory):
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, attn_implementation="eager")
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    args = GRPOConfig(output_dir=str(tmp_path_factory.mktemp("ds")), per_device_train_batch_size=4,
                      num_generations=2, max_completion_length=4, report_to=[], loss_type="dapo",
                      use_cpu=True, save_strategy="no")
    trainer = DynamicSamplingGRPOTrainer(
        model=model, reward_funcs=[lambda completions, **kw: [0.0] * len(completions)], args=args,
        train_dataset=Dataset.from_list([{"prompt": "hello"}] * 4), processing_class=tokenizer,
    )
    trainer.current_gradient_accumulation_steps = 1
    trainer.model.train()
    return trainer


def _batch(keep=None):
    torch.manual_seed(0)
    completion_mask = torch.ones(4, 5, dtype=torch.long)
    completion_mask[2, 3:] = 0  # a shorter completion among the kept rows
    completion_mask[0, 2:] = 0  # and among the dropped ones: its tokens still count in the denominator
    inputs = {
        "prompt_ids": torch.randint(10, 5000, (4, 6)),
        "prompt_mask": torch.ones(4, 6, dtype=torch.long),
        "completion_ids": torch.randint(10, 5000, (4, 5)),
        "completion_mask": completion_mask,
        "advantages": torch.tensor([0.0, 0.0, 1.3, -0.7]),  # group (0, 1) has no spread
        "num_items_in_batch": completion_mask.sum(),
    }
    if keep is not None:
        inputs[KEEP_KEY] = torch.tensor(keep)
    return inputs


def _loss_and_grads(trainer, loss_fn, inputs):
    trainer.model.zero_grad(set_to_none=True)
    loss = loss_fn(trainer.model, inputs)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.grad is not None}
    return loss.detach(), grads


def test_dapo_update_is_the_same_with_the_dropped_group_left_out(trainer):
    from trl import GRPOTrainer

    full_loss, full = _loss_and_grads(trainer, lambda m, i: GRPOTrainer._compute_loss(trainer, m, i), _batch())
    kept_loss, kept = _loss_and_grads(trainer, trainer._compute_loss, _batch([False, False, True, True]))
    assert full_loss.abs() > 0
    torch.testing.assert_close(kept_loss, full_loss, rtol=1e-5, atol=1e-7)
    assert full.keys() == kept.keys() and len(full) > 0
    for name in full:
        torch.testing.assert_close(kept[name], full[name], rtol=1e-4, atol=1e-7)


def test_micro_batch_with_nothing_kept_skips_the_forward_and_leaves_no_gradient(trainer):
    calls = []
    handle = trainer.model.register_forward_hook(lambda *a: calls.append(1))
    try:
        loss, grads = _loss_and_grads(trainer, trainer._compute_loss, _batch([False] * 4))
    finally:
        handle.remove()
    assert calls == []
    assert loss.item() == 0.0 and math.isfinite(loss.item())
    assert grads == {}  # the optimizer skips parameters without a gradient: no momentum-only step


def test_enabled_must_be_a_boolean():
    from grpo.train import trainer_class

    cfg = compose_train("+task=gsm8k", "model=tiny", "dynamic_sampling.enabled=sometimes")
    with pytest.raises(ConfigError, match="dynamic_sampling.enabled"):
        trainer_class(cfg)
    assert trainer_class(compose_train("+task=gsm8k", "model=tiny")).__name__ == "GRPOTrainer"


def _run(tmp_path, reward: str, steps: int = 3):
    from grpo.train import run_training

    cfg = compose_train(
        "+task=gsm8k", "model=tiny", "profile=cpu", f"output_dir={tmp_path}", "logger=none", "eval.limit=0",
        f"trainer.max_steps={steps}", "trainer.max_completion_length=6", "batch.prompts_per_step=4",
        "+trainer.top_k=4", "trainer.save_strategy=no", "dynamic_sampling.enabled=true",
        "batch.optimizer_steps_per_generation=1",
    )
    with open_dict(cfg):
        cfg.rewards.stack = {"r": {"_target_": f"synthetic_rewards.{reward}"}}
    run_training(cfg)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    return [row for row in rows if "reward" in row]


@pytest.mark.slow
def test_run_logs_dropped_groups_matching_trls_zero_std_share(tmp_path):
    steps = _run(tmp_path, "even_share_on_half_the_prompts")
    assert len(steps) == 3
    for row in steps:
        assert row["dynamic_sampling/dropped_fraction"] == pytest.approx(row["frac_reward_zero_std"])
        assert row["dynamic_sampling/dropped_groups"] == pytest.approx(4 * row["frac_reward_zero_std"])
        assert row["dynamic_sampling/kept_completions"] == pytest.approx(16 - 4 * row["dynamic_sampling/dropped_groups"])
        assert math.isfinite(row["loss"])
    assert any(0 < row["dynamic_sampling/dropped_groups"] < 4 for row in steps), steps


@pytest.mark.slow
def test_run_where_every_group_is_dropped_changes_no_weight(tmp_path):
    from safetensors.torch import load_file

    steps = _run(tmp_path, "constant_zero", steps=2)
    assert [row["dynamic_sampling/dropped_fraction"] for row in steps] == [1.0, 1.0]
    assert all(row["loss"] == 0.0 for row in steps)
    adapter = load_file(tmp_path / "adapter" / "adapter_model.safetensors")
    lora_b = [t for name, t in adapter.items() if "lora_B" in name]
    assert lora_b and all(bool((t == 0).all()) for t in lora_b)  # LoRA B starts at zero and never moved
