"""Each distinct prompt of a generate() call is encoded once (grpo/shared_prefill.py), with the tokens and
probabilities of the plain call."""

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, GenerationConfig

from grpo.shared_prefill import distinct_rows, prefill_each_prompt_once

PAD = 0


def tiny_lora_with_short_window(tiny_model_dir):
    """The tiny Gemma 3 with a sliding window shorter than the prompts (one sliding, one full layer), so
    the copied cache of a sliding layer is the one that has dropped its oldest tokens."""
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32, sliding_window=4,
                                                 layer_types=["sliding_attention", "full_attention"])
    peft_model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.normal_(std=0.05)
    return peft_model.eval()


def left_padded(prompts: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(map(len, prompts))
    ids = torch.tensor([[PAD] * (width - len(p)) + p for p in prompts])
    return ids, (ids != PAD).long()


def rows_encoded(model) -> list[tuple[int, int]]:
    """(rows, tokens) of each forward, recorded at the embedding layer."""
    shapes = []
    model.get_input_embeddings().register_forward_hook(lambda module, args, out: shapes.append(tuple(args[0].shape)))
    return shapes


def generate(model, ids, mask, **config):
    config = GenerationConfig(max_new_tokens=10, pad_token_id=PAD, output_scores=True, return_dict_in_generate=True,
                              **config)
    with torch.no_grad():
        return model.generate(input_ids=ids, attention_mask=mask, generation_config=config)


def test_distinct_rows_map_every_row_to_its_prompt():
    ids, mask = left_padded([[5, 6, 7], [8, 9], [5, 6, 7], [8, 9], [8, 9]])
    representative, row_to_distinct = distinct_rows(ids, mask)
    assert len(representative) == 2
    assert torch.equal(ids[representative][row_to_distinct], ids)
    # the same tokens under another padding are another prompt
    assert len(distinct_rows(ids, torch.ones_like(mask))[0]) == 2


def test_repeated_prompts_are_encoded_once_with_the_same_tokens_and_scores(tiny_model_dir):
    first, second = [11, 42, 7, 99, 23, 5, 61, 18, 30], [77, 12, 9, 50, 4, 88]
    ids, mask = left_padded([first, second, first, second, first, second])  # interleaved, left-padded
    model = tiny_lora_with_short_window(tiny_model_dir)
    plain = generate(model, ids, mask)
    shapes = rows_encoded(model)
    prefill_each_prompt_once(model)
    shared = generate(model, ids, mask)
    assert shapes[0] == (2, ids.shape[1] - 1)  # the two prompts, all but their last token
    assert shapes[1] == (6, 1)  # then every row carries on from its copy of the cache
    assert torch.equal(shared.sequences, plain.sequences)
    torch.testing.assert_close(torch.stack(shared.scores), torch.stack(plain.scores), atol=1e-4, rtol=1e-4)


def test_sampled_rows_of_one_prompt_still_differ(tiny_model_dir):
    ids, mask = left_padded([[11, 42, 7, 99]] * 8)
    model = tiny_lora_with_short_window(tiny_model_dir)
    prefill_each_prompt_once(model)
    torch.manual_seed(1)
    sequences = generate(model, ids, mask, do_sample=True, temperature=1.0, top_k=0, top_p=1.0).sequences
    assert len({tuple(row.tolist()) for row in sequences}) > 1  # each row samples on its own copy


def test_distinct_prompts_and_unknown_inputs_generate_as_before(tiny_model_dir):
    model = tiny_lora_with_short_window(tiny_model_dir)
    shapes = rows_encoded(model)
    prefill_each_prompt_once(model)
    ids, mask = left_padded([[11, 42, 7], [77, 12, 9, 50]])
    generate(model, ids, mask)
    assert shapes[0] == (2, ids.shape[1])  # generate()'s own prefill: no repeats, nothing to share
    shapes.clear()
    ids, mask = left_padded([[11, 42, 7]] * 2)
    with torch.no_grad():
        model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=2, pad_token_id=PAD, use_cache=True)
    assert shapes[0] == (2, ids.shape[1])  # an argument it does not know: the plain call
    shapes.clear()
    generate(model, ids, mask, do_sample=True, num_return_sequences=2)
    assert shapes[0] == (4, ids.shape[1])  # generate() expands the rows itself, not a cache passed in
