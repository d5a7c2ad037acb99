"""TRL's fused log-prob head with its CPU tiles folded in place (grpo/lean_logprob_tiles.py) gives TRL's
log-probabilities, entropies and gradients."""

import pytest
import torch
from trl.kernels import chunked_logprob
from trl.kernels.chunked_logprob import ChunkedLogProbFunction

from grpo.patches import lean_logprob_head_on_cpu, lean_logprob_head_patched, patched_for_run

VOCAB, HIDDEN, TOKENS, CHUNK = 1000, 16, 37, 128  # 8 vocabulary tiles, the last one narrower


def head_pass(hidden, weight, targets, temperature, logit_scale, outputs, softcap=None):
    """log-probs, entropy (or None), and the gradients of hidden and weight for a fixed mixture of both."""
    hidden = hidden.clone().requires_grad_(True)
    weight = weight.clone().requires_grad_(True)
    logprobs, entropy, *_ = ChunkedLogProbFunction.apply(hidden, weight, None, targets, temperature, CHUNK, softcap,
                                                         logit_scale, outputs)
    mix = torch.linspace(-1.0, 2.0, TOKENS)
    (logprobs * mix).sum().backward()
    return logprobs.detach(), None if entropy is None else entropy.detach(), hidden.grad, weight.grad


@pytest.mark.parametrize("temperature, logit_scale, outputs", [
    (1.0, 1.0, ("log_probs", "entropy")),  # GRPO's training pass
    (0.7, 0.5, ("log_probs", "entropy")),
    (1.0, 1.0, ("log_probs",)),  # TRL's reference-model head
])
def test_in_place_tiles_give_trls_log_probs_entropies_and_gradients(temperature, logit_scale, outputs):
    torch.manual_seed(0)
    hidden, weight = torch.randn(TOKENS, HIDDEN), torch.randn(VOCAB, HIDDEN) * 0.5
    targets = torch.randint(0, VOCAB, (TOKENS,))
    targets[:4] = torch.tensor([0, CHUNK - 1, CHUNK, VOCAB - 1])  # the edges of the tiles
    trl = head_pass(hidden, weight, targets, temperature, logit_scale, outputs)
    with patched_for_run():
        assert lean_logprob_head_on_cpu() and lean_logprob_head_patched()
        lean = head_pass(hidden, weight, targets, temperature, logit_scale, outputs)
    assert not lean_logprob_head_patched()
    for name, ours, theirs in zip(("log-probs", "entropy", "hidden grad", "weight grad"), lean, trl):
        if theirs is None:
            assert ours is None, name
        else:
            torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5, msg=name)


def test_cases_outside_the_lean_tiles_are_left_to_trls(monkeypatch):
    calls = []
    original = chunked_logprob._forward_tile
    monkeypatch.setattr(chunked_logprob, "_forward_tile", lambda *a, **k: calls.append(k) or original(*a, **k))
    torch.manual_seed(0)
    hidden, weight = torch.randn(TOKENS, HIDDEN), torch.randn(VOCAB, HIDDEN)
    targets = torch.randint(0, VOCAB, (TOKENS,))
    trl = head_pass(hidden, weight, targets, 1.0, 1.0, ("log_probs", "entropy"), softcap=30.0)
    with patched_for_run():
        lean_logprob_head_on_cpu()
        lean = head_pass(hidden, weight, targets, 1.0, 1.0, ("log_probs", "entropy"), softcap=30.0)
    assert len(calls) == 2 * (VOCAB // CHUNK + 1)  # softcapping: TRL's tile for every tile, both times
    for ours, theirs in zip(lean, trl):
        torch.testing.assert_close(ours, theirs)
