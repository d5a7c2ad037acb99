"""Workarounds for TRL behaviour that is correct but needlessly slow on our CPUs.

TRL 1.16 computes per-token log-probabilities through a fused, chunked LM-head kernel. On devices
without Triton (CPU among them) it scores *every* position, prompt included, so that Neuron does not
recompile for each new number of valid tokens (trl/trainer/utils.py, `compact = _use_triton(...)`).
On CPU that multiplies the cost of the 262k-vocabulary projection, forward and backward, by
(prompt + completion) / completion — about 25x for GSM8K prompts with a worked example and 8-token
completions. Scoring only the completion positions on CPU gives the same log-probabilities (the
other positions are masked out either way); see tests/test_trl_patches.py.
"""

import logging

log = logging.getLogger(__name__)

_COMPACT_DEVICE_TYPES = ("cuda", "xpu", "cpu")


def score_only_completion_tokens_on_cpu() -> None:
    import trl.trainer.utils as trl_utils

    original = trl_utils._use_triton
    if getattr(original, "_gemma_grpo_patched", False):
        return

    def use_compact_scoring(device) -> bool:
        return device.type in _COMPACT_DEVICE_TYPES or original(device)

    use_compact_scoring._gemma_grpo_patched = True
    # Only `compact` reads this name in trl.trainer.utils; the kernel picks Triton from its own module.
    trl_utils._use_triton = use_compact_scoring
    log.debug("TRL log-prob scoring: completion positions only on CPU")
