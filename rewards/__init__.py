"""Rewards for gemma-grpo: a registry of named reward factories, one shared answer extractor,
and a never-raise wrapper around everything handed to TRL.

    from rewards import build_reward_stack
    reward_funcs, reward_weights = build_reward_stack(cfg.rewards.stack)

Modules: ``normalize`` (cheap exact number parsing), ``extract`` (answer extraction and
matching, shared with eval/), ``safe_verify`` (math-verify in a killable worker process),
``registry`` (names and the ``SafeReward`` wrapper), ``builtin`` (the rewards), ``stack``
(Hydra config -> reward functions and weights).
"""

from rewards import builtin as _builtin  # noqa: F401  (registers the built-in rewards)
from rewards.extract import Extraction, answers_match, extract_answer, extract_choice, extract_verdict
from rewards.normalize import completion_text
from rewards.registry import SafeReward, available_rewards, get_reward, register_reward
from rewards.stack import build_reward_stack

__all__ = [
    "Extraction",
    "SafeReward",
    "answers_match",
    "available_rewards",
    "build_reward_stack",
    "completion_text",
    "extract_answer",
    "extract_choice",
    "extract_verdict",
    "get_reward",
    "register_reward",
]
