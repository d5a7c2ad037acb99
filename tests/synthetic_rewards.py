"""A synthetic reward a tiny random model can learn: the share of completion tokens with an even id.

With near-uniform logits over 262k tokens nothing short of this gives a learning signal: sampling
is restricted to the top few tokens (trainer.top_k) so completions differ in how many even ids they
hold, and the policy can learn to rank even ids first.
"""


def even_token_share(prompts, completions, completion_ids, **kwargs):
    return [sum(1 for t in ids if t % 2 == 0) / max(len(ids), 1) for ids in completion_ids]


def even_share_on_half_the_prompts(prompts, completions, completion_ids, **kwargs):
    """even_token_share for prompts whose last message has an even length, else a constant 0: the
    constant half are groups with no reward spread (what dynamic sampling drops)."""
    shares = even_token_share(prompts, completions, completion_ids)
    return [share if len(_last_text(p)) % 2 == 0 else 0.0 for p, share in zip(prompts, shares, strict=True)]


def constant_zero(prompts, completions, **kwargs):
    return [0.0] * len(completions)


def _last_text(prompt) -> str:
    return prompt[-1]["content"] if isinstance(prompt, list) else prompt
