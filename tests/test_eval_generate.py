"""HFGenerator on the tiny model: left padding gives the same greedy text as one prompt at a time."""

import pytest

from eval.generate import HFGenerator
from fixtures.eval_stand_ins import compose_eval

CONVERSATIONS = [
    [{"role": "user", "content": "Hi"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is two plus two, and why?"}],
    [{"role": "user", "content": "A much longer question " * 6}],
]


@pytest.fixture(scope="module")
def tiny():
    from grpo.models import load_model_and_tokenizer

    return load_model_and_tokenizer(compose_eval().model)


def test_batched_greedy_equals_one_at_a_time(tiny):
    model, tokenizer = tiny
    batched = HFGenerator(model, tokenizer, batch_size=3).generate(CONVERSATIONS, 6)
    single = HFGenerator(model, tokenizer, batch_size=1).generate(CONVERSATIONS, 6)
    assert batched == single
    assert [len(samples) for samples in batched] == [1, 1, 1]


def test_generation_leaves_model_mode_and_tokenizer_padding_alone(tiny):
    model, tokenizer = tiny
    model.train()
    tokenizer.padding_side = "right"
    HFGenerator(model, tokenizer, batch_size=2).generate(CONVERSATIONS, 2, num_samples=2, temperature=1.0)
    assert model.training
    assert tokenizer.padding_side == "right"
