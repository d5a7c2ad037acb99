"""A synthetic reward a tiny random model can learn: the share of completion tokens with an even id.

With near-uniform logits over 262k tokens nothing short of this gives a learning signal: sampling
is restricted to the top few tokens (trainer.top_k) so completions differ in how many even ids they
hold, and the policy can learn to rank even ids first.
"""


def even_token_share(prompts, completions, completion_ids, **kwargs):
    return [sum(1 for t in ids if t % 2 == 0) / max(len(ids), 1) for ids in completion_ids]
