"""GRPO through our layer really learns: a tiny model raises a reward it can improve, on prompts it
never trained on, and the same run with the update disabled (a learning rate of 1e-12) does not."""

import json

import pytest
import torch
from omegaconf import open_dict

from compose import compose_train
from grpo.train import run_training
from synthetic_rewards import even_token_share

pytestmark = pytest.mark.slow

STEPS = 12
TOP_K = 4  # sampling among the 4 likeliest tokens: completions differ in their share of even ids


def _train(tmp_path, learning_rate: float):
    cfg = compose_train(
        "+task=gsm8k", "model=tiny", "profile=cpu", f"output_dir={tmp_path}", "logger=none", "eval.limit=0",
        f"trainer.max_steps={STEPS}", "trainer.max_completion_length=8", f"trainer.learning_rate={learning_rate}",
        "batch.prompts_per_step=4", f"+trainer.top_k={TOP_K}", "trainer.save_strategy=no",
        "trainer.lr_scheduler_type=constant", "batch.optimizer_steps_per_generation=1", "dynamic_sampling.enabled=false",
    )
    with open_dict(cfg):
        cfg.rewards.stack = {"even": {"_target_": "synthetic_rewards.even_token_share"}}
    run_training(cfg)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    return [row["reward"] for row in rows if "reward" in row], cfg


def _held_out_reward(cfg, adapter_dir) -> float:
    """Mean reward of sampled completions for 8 test-split questions (never seen in training)."""
    from tasks import build_task
    from grpo.models import load_model_and_tokenizer

    test_rows, _ = build_task(cfg.task).hf_dataset("test")
    model, tokenizer = load_model_and_tokenizer(cfg.model, adapter=str(adapter_dir) if adapter_dir else None)
    prompts = [tokenizer.apply_chat_template(row["prompt"], tokenize=False, add_generation_prompt=True)
               for row in test_rows.select(range(8))]
    batch = tokenizer(prompts, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=False)
    torch.manual_seed(1)
    with torch.no_grad():
        out = model.generate(**batch, max_new_tokens=8, min_new_tokens=8, do_sample=True, top_k=TOP_K, top_p=1.0)
    completion_ids = out[:, batch["input_ids"].shape[1]:].tolist()
    return sum(even_token_share(None, [""] * 8, completion_ids)) / 8


def test_reward_rises_with_learning_and_not_without(tmp_path):
    learned, cfg = _train(tmp_path / "lr", 1e-2)
    frozen, _ = _train(tmp_path / "zero", 1e-12)  # lr 0 is refused by validation; 1e-12 moves nothing
    assert len(learned) == len(frozen) == STEPS
    early, late = sum(learned[:3]) / 3, sum(learned[-3:]) / 3
    assert late > early + 0.2, learned
    assert abs(sum(frozen[-3:]) / 3 - sum(frozen[:3]) / 3) < 0.2, frozen
    assert sum(learned[-3:]) / 3 > sum(frozen[-3:]) / 3 + 0.2

    trained = _held_out_reward(cfg, tmp_path / "lr" / "adapter")
    base = _held_out_reward(cfg, None)
    assert trained > base + 0.2, (trained, base)
