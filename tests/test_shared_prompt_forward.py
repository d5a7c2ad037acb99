"""The training pass encodes each distinct prompt once (grpo/shared_prompt_forward.py), with TRL's own
log-probabilities, entropies and gradients."""

from contextlib import nullcontext
from types import SimpleNamespace

import pytest
import torch
from compose import compose_train
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM
from trl import GRPOTrainer
from trl.trainer.utils import add_fused_lm_head

from grpo.dynamic_sampling import DynamicSamplingGRPOTrainer
from grpo.patches import trl_log_prob_pass
from grpo.shared_prompt_forward import shared_prompt_logps, why_not_shared, with_shared_prompt_forward
from grpo.train import trainer_class
from grpo.validate import ConfigError

PAD = 0
TRL_PASS = trl_log_prob_pass()
FAKE_TRAINER = SimpleNamespace(accelerator=SimpleNamespace(autocast=nullcontext))


def tiny_policy(tiny_model_dir):
    """The tiny Gemma 3 with TRL's fused head and a LoRA adapter, and a sliding window (4) shorter than
    prompt + completion, so a sliding layer's copied cache has dropped its oldest tokens."""
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32, sliding_window=4,
                                                 layer_types=["sliding_attention", "full_attention"])
    add_fused_lm_head(model, temperature=0.9, outputs=("log_probs", "entropy"))
    policy = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj", "down_proj"]))
    with torch.no_grad():
        for name, param in policy.named_parameters():
            if "lora_B" in name:
                param.normal_(std=0.05)
    return policy.train()


def grpo_batch():
    """Two prompts, left-padded and interleaved (TRL shuffles a generation batch), each with 3
    right-padded completions of different lengths: (input_ids, attention_mask, logits_to_keep)."""
    prompts = {0: [11, 42, 7, 99, 23, 5, 61], 1: [77, 12, 9, 50]}
    rows = [(0, [3, 8, 15, 2]), (1, [4, 4]), (1, [19, 6, 21, 30]), (0, [13]), (0, [7, 7, 7]), (1, [25, 26, 27])]
    prompt_width, completion_width = 7, 4
    ids, mask = [], []
    for prompt, completion in rows:
        tokens = prompts[prompt]
        pad_left, pad_right = prompt_width - len(tokens), completion_width - len(completion)
        ids.append([PAD] * pad_left + tokens + completion + [PAD] * pad_right)
        mask.append([0] * pad_left + [1] * (len(tokens) + len(completion)) + [0] * pad_right)
    return torch.tensor(ids), torch.tensor(mask), completion_width


def lora_gradients(policy, logps):
    policy.zero_grad()
    advantages = torch.linspace(-1.0, 1.0, logps.numel()).view_as(logps)
    (logps * advantages).sum().backward()
    return {name: param.grad.clone() for name, param in policy.named_parameters() if param.requires_grad}


def test_log_probs_entropies_and_gradients_equal_trls_pass(tiny_model_dir):
    ids, mask, completion_width = grpo_batch()
    policy = tiny_policy(tiny_model_dir)
    plain_logps, plain_entropies, _ = TRL_PASS(FAKE_TRAINER, policy, ids, mask, completion_width, compute_entropy=True)
    plain_grads = lora_gradients(policy, plain_logps)

    rows_seen = []
    policy.get_input_embeddings().register_forward_hook(lambda module, args, out: rows_seen.append(tuple(args[0].shape)))
    shared_logps, shared_entropies = shared_prompt_logps(policy, ids, mask, completion_width, compute_entropy=True)
    shared_grads = lora_gradients(policy, shared_logps)

    # two prompts of 7 columns less their last, then 6 rows of that last token + 4 completion columns
    assert rows_seen == [(2, 6), (6, 5)]
    torch.testing.assert_close(shared_logps, plain_logps, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(shared_entropies, plain_entropies, atol=1e-5, rtol=1e-5)
    assert (shared_logps[mask[:, -completion_width:] == 0] == 0).all()  # padding scores 0, as in TRL
    assert set(shared_grads) == set(plain_grads) and len(shared_grads) > 0
    for name, grad in plain_grads.items():
        assert grad.abs().sum() > 0, name
        torch.testing.assert_close(shared_grads[name], grad, atol=1e-5, rtol=1e-4, msg=name)


def test_completion_columns_that_are_padding_in_every_row_are_not_encoded(tiny_model_dir):
    # a micro-batch of a generation batch whose longest completion is in another micro-batch
    ids, mask, completion_width = grpo_batch()
    wide_ids = torch.nn.functional.pad(ids, (0, 3), value=PAD)
    wide_mask = torch.nn.functional.pad(mask, (0, 3))
    policy = tiny_policy(tiny_model_dir)
    logps, _ = shared_prompt_logps(policy, ids, mask, completion_width)
    grads = lora_gradients(policy, logps)
    rows_seen = []
    policy.get_input_embeddings().register_forward_hook(lambda module, args, out: rows_seen.append(tuple(args[0].shape)))
    wide_logps, _ = shared_prompt_logps(policy, wide_ids, wide_mask, completion_width + 3)
    wide_grads = lora_gradients(policy, wide_logps[:, :completion_width])
    assert rows_seen == [(2, 6), (6, 5)]  # the 3 empty columns never reach the model
    assert wide_logps.shape == (6, completion_width + 3) and (wide_logps[:, completion_width:] == 0).all()
    torch.testing.assert_close(wide_logps[:, :completion_width], logps)
    for name, grad in grads.items():
        torch.testing.assert_close(wide_grads[name], grad, msg=name)


def test_a_batch_without_repeated_prompts_is_left_to_trl(tiny_model_dir):
    ids, mask, completion_width = grpo_batch()
    policy = tiny_policy(tiny_model_dir)
    first_of_each = torch.tensor([0, 1])
    assert shared_prompt_logps(policy, ids[first_of_each], mask[first_of_each], completion_width) is None


def test_it_steps_aside_where_it_is_not_known_to_be_exact(tiny_model_dir):
    policy = tiny_policy(tiny_model_dir)
    assert why_not_shared(policy, 1, {"pixel_values": None}, False) is None
    assert "processes" in why_not_shared(policy, 2, {}, False)
    assert "pixel_values" in why_not_shared(policy, 1, {"pixel_values": torch.zeros(1)}, False)
    assert "auxiliary" in why_not_shared(policy, 1, {}, True)
    policy.gradient_checkpointing_enable()
    assert "checkpointing" in why_not_shared(policy, 1, {}, False)
    gemma4 = SimpleNamespace(config=SimpleNamespace(model_type="gemma4_text"))
    assert "gemma4_text" in why_not_shared(gemma4, 1, {}, False)


def test_the_trainer_class_shares_per_chunk_and_leaves_a_chunk_without_repeats_to_trl(tiny_model_dir):
    ids, mask, completion_width = grpo_batch()
    rows = torch.tensor([1, 2, 0, 5])  # prompts 1, 1 | 0, 1: chunks of 2 share, then do not
    ids, mask = ids[rows], mask[rows]
    policy = tiny_policy(tiny_model_dir)
    trainer = object.__new__(with_shared_prompt_forward(GRPOTrainer))
    trainer.accelerator = SimpleNamespace(autocast=nullcontext, num_processes=1, unwrap_model=lambda model: model,
                                          is_main_process=True)
    trainer.args = SimpleNamespace(report_to=[])  # what TRL's profiling timer reads
    trainer.state = SimpleNamespace(global_step=0)
    rows_seen = []
    policy.get_input_embeddings().register_forward_hook(lambda module, args, out: rows_seen.append(tuple(args[0].shape)))
    with torch.no_grad():
        logps, entropies, aux = trainer._get_per_token_logps_and_entropies(policy, ids, mask, completion_width,
                                                                            batch_size=2)
        plain, _, _ = TRL_PASS(FAKE_TRAINER, policy, ids, mask, completion_width)
    assert type(trainer).__name__ == "GRPOTrainer" and entropies is None and aux is None
    assert rows_seen[:3] == [(1, 6), (2, 5), (2, 11)]  # one prompt once, its 2 rows; then TRL's whole rows
    torch.testing.assert_close(logps, plain, atol=1e-5, rtol=1e-5)


def test_the_switch_is_checked_and_composes_with_dynamic_sampling():
    with pytest.raises(ConfigError, match="batch.share_prompt_forward"):
        trainer_class(compose_train("+task=gsm8k", "model=tiny", "batch.share_prompt_forward=sometimes"))
    plain = trainer_class(compose_train("+task=gsm8k", "model=tiny", "batch.share_prompt_forward=false",
                                        "batch.shuffle_whole_groups=false"))
    assert plain is GRPOTrainer
    shared = trainer_class(compose_train("+task=gsm8k", "model=tiny", "dynamic_sampling.enabled=true",
                                         "batch.shuffle_whole_groups=false"))
    assert issubclass(shared, DynamicSamplingGRPOTrainer) and shared is not DynamicSamplingGRPOTrainer
    assert "_get_per_token_logps_and_entropies" in vars(shared)
