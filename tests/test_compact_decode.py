"""The decode loop that drops finished rows (grpo/compact_decode.py) returns generate()'s token ids."""

import torch
from transformers import AutoModelForCausalLM, GenerationConfig, LogitsProcessor, LogitsProcessorList

from grpo.compact_decode import active_rows, drop_finished_rows


class BanToken(LogitsProcessor):
    """A deterministic processor that also notes which rows it saw at each step."""

    def __init__(self, token: int):
        self.token, self.seen = token, []

    def __call__(self, input_ids, scores):
        rows = active_rows()
        self.seen.append(input_ids.shape[0] if rows is None else len(rows))
        scores[:, self.token] = float("-inf")
        return scores


def tiny(tiny_model_dir):
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()


def ragged_batch():
    """4 left-padded prompts of 3-6 tokens."""
    torch.manual_seed(3)
    ids = torch.randint(10, 200, (4, 6))
    mask = torch.ones_like(ids)
    for row, pad in enumerate([0, 2, 3, 1]):
        ids[row, :pad], mask[row, :pad] = 0, 0
    return ids, mask


def test_the_same_token_ids_as_generate_with_rows_ending_at_different_steps(tiny_model_dir):
    model = tiny(tiny_model_dir)
    ids, mask = ragged_batch()
    free = GenerationConfig(do_sample=False, max_new_tokens=10, pad_token_id=0, eos_token_id=None)
    with torch.no_grad():
        unbounded = model.generate(input_ids=ids, attention_mask=mask, generation_config=free)
    # end-of-sequence: tokens that rows 0 and 2 produce early, so rows end at different steps
    eos = [int(unbounded[0, 6 + 1]), int(unbounded[2, 6 + 3])]
    config = GenerationConfig(do_sample=False, max_new_tokens=10, pad_token_id=0, eos_token_id=eos)
    banned = int(unbounded[1, 6])
    with torch.no_grad():
        expected = model.generate(input_ids=ids, attention_mask=mask, generation_config=config,
                                  logits_processor=LogitsProcessorList([BanToken(banned)]))
    processor = BanToken(banned)
    drop_finished_rows(model)
    with torch.no_grad():
        found = model.generate(input_ids=ids, attention_mask=mask, generation_config=config,
                               logits_processor=LogitsProcessorList([processor]))
    assert torch.equal(found, expected)
    assert processor.seen[0] == 4 and min(processor.seen) < 4  # finished rows left the batch
    assert (found[:, 6:] == banned).sum() == 0


def test_calls_it_does_not_know_go_to_generate(tiny_model_dir, monkeypatch):
    model = tiny(tiny_model_dir)
    ids, mask = ragged_batch()
    drop_finished_rows(model)
    monkeypatch.setattr("grpo.compact_decode.decode_dropping_finished_rows",
                        lambda *a, **k: (_ for _ in ()).throw(AssertionError("the loop ran")))
    with torch.no_grad():
        sampled = GenerationConfig(do_sample=True, top_k=0, max_new_tokens=3, pad_token_id=0)
        model.generate(input_ids=ids, attention_mask=mask, generation_config=sampled)
        penalised = GenerationConfig(do_sample=False, repetition_penalty=1.2, max_new_tokens=3, pad_token_id=0)
        model.generate(input_ids=ids, attention_mask=mask, generation_config=penalised)
