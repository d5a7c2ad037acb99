"""Scoring only completion positions on CPU gives TRL's log-probabilities, gradients included."""

import torch
from transformers import AutoModelForCausalLM

import trl.trainer.utils as trl_utils
from grpo.patches import score_only_completion_tokens_on_cpu


def _logps_and_grad(model_dir, input_ids, labels):
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation="eager")
    trl_utils.add_fused_lm_head(model, outputs=("log_probs", "entropy"))
    out = model(input_ids=input_ids, labels=labels, fused_lm_head=True)
    (out.log_probs.sum() + out.entropy.sum()).backward()
    grad = model.model.layers[0].self_attn.q_proj.weight.grad.clone()
    return out.log_probs.detach(), out.entropy.detach(), grad


def test_compact_scoring_matches_full_scoring(tiny_model_dir, monkeypatch):
    input_ids = torch.randint(10, 5000, (3, 40))
    labels = input_ids.clone()
    labels[:, :32] = -100  # a 32-token prompt, 8 completion tokens
    labels[1, -3:] = -100  # padding inside one completion
    full = _logps_and_grad(tiny_model_dir, input_ids, labels)
    monkeypatch.setattr(trl_utils, "_use_triton", trl_utils._use_triton)
    score_only_completion_tokens_on_cpu()
    assert trl_utils._use_triton(torch.device("cpu")) is True
    compact = _logps_and_grad(tiny_model_dir, input_ids, labels)
    for a, b in zip(full, compact):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
