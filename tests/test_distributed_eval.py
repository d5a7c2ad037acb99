"""ShardedGenerator: each rank generates an equal share, every rank gets every answer in input order.

Two ranks are played in one process: the gather of each rank's share is replaced by the shares the two
ranks produce (tests/test_multiprocess.py runs the real thing with two processes).
"""

import pytest

from grpo import distributed_eval
from grpo.distributed_eval import ShardedGenerator


class EchoGenerator:
    """Answers each conversation with its own text (and the sample index), recording what it was asked."""

    def __init__(self):
        self.asked = []

    def generate(self, conversations, max_new_tokens, num_samples=1, temperature=0.0, stop=None):
        self.asked.append(list(conversations))
        return [[f"{c}#{k}" for k in range(num_samples)] for c in conversations]


def _two_ranks(monkeypatch, conversations, num_samples=1):
    shares = {}
    for rank in (0, 1):  # pass 1: what each rank contributes
        monkeypatch.setattr(distributed_eval.ranks, "gather_from_all", lambda value, r=rank: shares.setdefault(r, value) and [])
        ShardedGenerator(EchoGenerator(), rank, 2).generate(conversations, 8, num_samples=num_samples)
    monkeypatch.setattr(distributed_eval.ranks, "gather_from_all", lambda value: [shares[0], shares[1]])
    inners = [EchoGenerator(), EchoGenerator()]
    results = [ShardedGenerator(inners[r], r, 2).generate(conversations, 8, num_samples=num_samples) for r in (0, 1)]
    return results, inners


@pytest.mark.parametrize("count", [1, 2, 5, 6])
def test_every_rank_gets_every_answer_in_order_from_equal_shares(monkeypatch, count):
    conversations = [f"q{i}" for i in range(count)]
    results, inners = _two_ranks(monkeypatch, conversations, num_samples=2)
    expected = EchoGenerator().generate(conversations, 8, num_samples=2)
    assert results[0] == results[1] == expected
    asked = [inner.asked[0] for inner in inners]
    assert len(asked[0]) == len(asked[1]) == -(-count // 2)  # the same number of generate calls on each rank
    assert set(asked[0]) | set(asked[1]) == set(conversations)


def test_no_conversations_asks_nothing(monkeypatch):
    results, inners = _two_ranks(monkeypatch, [])
    assert results == [[], []] and inners[0].asked == inners[1].asked == []
