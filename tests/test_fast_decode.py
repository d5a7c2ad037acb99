"""generate() speed-ups of rollout=hf (grpo/fast_decode.py) change the work, not the result."""

import pytest
import torch
from peft import LoraConfig, get_peft_model
from peft.tuners.tuners_utils import BaseTunerLayer
from transformers import AutoModelForCausalLM, GenerationConfig

from grpo.fast_decode import (
    TRANSPOSED_HEAD_ROWS,
    InverseCdfSampler,
    can_merge_for_generation,
    lora_merged_out_of_place,
    merge_lora_for_generation,
    sample_by_inverse_cdf,
    transposed_head,
)

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def tiny_lora(tiny_model_dir, **lora):
    """The tiny fp32 Gemma 3 with a LoRA adapter whose lora_B is no longer zero (as after training)."""
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    peft_model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=TARGETS, **lora))
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.normal_(std=0.05)
    return peft_model


def lora_layers(model):
    return [m for m in model.modules() if isinstance(m, BaseTunerLayer)]


def greedy(model, ids, new_tokens=12):
    with torch.no_grad():
        return model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=new_tokens,
                              do_sample=False, pad_token_id=0)


def test_merged_generation_gives_the_adapters_tokens(tiny_model_dir):
    model = tiny_lora(tiny_model_dir)
    ids = torch.randint(10, 200, (3, 9))
    expected = greedy(model, ids)
    assert merge_lora_for_generation(model)
    assert torch.equal(greedy(model, ids), expected)


def test_merged_forward_equals_base_plus_adapter(tiny_model_dir):
    model = tiny_lora(tiny_model_dir)
    ids = torch.randint(10, 200, (2, 7))
    with torch.no_grad():
        expected = model(input_ids=ids).logits
        with lora_merged_out_of_place(model):
            merged = model(input_ids=ids).logits
            assert all(layer.disable_adapters for layer in lora_layers(model))  # the LoRA branch would add B @ A twice
    torch.testing.assert_close(merged, expected, atol=1e-5, rtol=1e-5)
    assert not torch.equal(merged, model.base_model.model(input_ids=ids).logits)  # the adapter counted


def test_base_weights_come_back_bit_identical_after_many_generations(tiny_model_dir):
    model = tiny_lora(tiny_model_dir)
    before = {name: p.detach().clone() for name, p in model.named_parameters() if "base_layer" in name}
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    for _ in range(50):
        with lora_merged_out_of_place(model):
            pass
    after = dict(model.named_parameters())
    assert all(torch.equal(after[name], weight) for name, weight in before.items())
    assert {name for name, p in model.named_parameters() if p.requires_grad} == trainable
    assert not any(layer.disable_adapters for layer in lora_layers(model))


def test_a_frozen_adapter_stays_frozen(tiny_model_dir):
    model = tiny_lora(tiny_model_dir)
    model.requires_grad_(False)  # as the standalone evaluator loads an adapter
    with lora_merged_out_of_place(model):
        pass
    assert not any(p.requires_grad for p in model.parameters())


def test_weights_are_restored_when_generation_fails(tiny_model_dir):
    model = tiny_lora(tiny_model_dir)
    weight = model.base_model.model.model.layers[0].self_attn.q_proj.base_layer.weight
    storage, values = weight.data_ptr(), weight.detach().clone()
    with pytest.raises(RuntimeError, match="stopped"), lora_merged_out_of_place(model):
        assert weight.data_ptr() != storage
        raise RuntimeError("stopped")
    assert weight.data_ptr() == storage and torch.equal(weight, values)


@pytest.mark.parametrize("lora, reason", [({"use_dora": True}, "DoRA"), ({"lora_dropout": 0.1}, "lora_dropout")])
def test_adapters_that_cannot_merge_generate_as_before(tiny_model_dir, lora, reason):
    model = tiny_lora(tiny_model_dir, **lora)
    assert reason in can_merge_for_generation(model)
    generate = model.generate
    assert not merge_lora_for_generation(model)
    assert model.generate == generate


def test_transposed_head_gives_the_same_logits_and_gradients(tiny_model_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    ids = torch.randint(10, 200, (4, 6))
    with torch.no_grad():
        expected = model(input_ids=ids).logits
    grads_expected = torch.autograd.grad(model(input_ids=ids).logits.logsumexp(-1).mean(), model.model.norm.weight)
    assert transposed_head(model)
    with torch.no_grad():
        torch.testing.assert_close(model(input_ids=ids).logits, expected, atol=1e-5, rtol=1e-5)
    grads = torch.autograd.grad(model(input_ids=ids).logits.logsumexp(-1).mean(), model.model.norm.weight)
    torch.testing.assert_close(grads[0], grads_expected[0])


def test_transposed_head_is_used_only_for_small_batches_without_autograd(tiny_model_dir, monkeypatch):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    transposed_head(model)
    calls = []
    mm = torch.mm
    monkeypatch.setattr(torch, "mm", lambda *args: calls.append(args[0].shape) or mm(*args))
    vocabulary, hidden = model.lm_head.weight.shape
    with torch.no_grad():
        logits = model(input_ids=torch.randint(10, 200, (2, 3))).logits
        # one product per slice of the vocabulary, written into a row-major result
        assert sum(shape[0] for shape in calls) == vocabulary and {shape[1] for shape in calls} == {hidden}
        assert logits.is_contiguous()
        slices = len(calls)
        model(input_ids=torch.randint(10, 200, (1, TRANSPOSED_HEAD_ROWS.stop)))  # torch's own linear
        model(input_ids=torch.randint(10, 200, (1, 1)))  # one row: torch's own too
    model(input_ids=torch.randint(10, 200, (2, 3)))  # training: torch's own linear
    assert len(calls) == slices


def test_inverse_cdf_sampler_draws_from_the_tempered_softmax():
    torch.manual_seed(0)
    scores = torch.tensor([[2.0, 1.0, 0.0, -1.0, float("-inf")]]).repeat(100_000, 1)
    drawn = InverseCdfSampler(temperature=0.7)(None, scores.clone()).argmax(-1)
    frequencies = torch.bincount(drawn, minlength=5).double() / len(drawn)
    expected = torch.softmax(scores[0].double() / 0.7, -1)
    assert frequencies[4] == 0  # a masked token is never drawn
    # binomial standard error at p <= 0.8 and n = 1e5 is <= 0.0013: 5 of them
    torch.testing.assert_close(frequencies, expected, atol=0.0065, rtol=0)


def test_two_level_search_draws_from_the_whole_vocabulary_and_records_log_probabilities():
    from grpo.fast_decode import SAMPLING_BLOCK

    torch.manual_seed(0)
    vocabulary = 3 * SAMPLING_BLOCK + 7  # a partial last block
    scores = torch.full((vocabulary,), float("-inf"))
    favoured = torch.tensor([0, SAMPLING_BLOCK - 1, SAMPLING_BLOCK, 2 * SAMPLING_BLOCK + 5, vocabulary - 1])
    scores[favoured] = torch.tensor([1.0, 0.0, 2.0, -1.0, 0.5])
    rows = scores.repeat(50_000, 1)
    recorded = []
    sampler = InverseCdfSampler(temperature=1.3, record=lambda length, tokens, logps: recorded.append((tokens, logps)))
    drawn = sampler(torch.zeros(50_000, 4, dtype=torch.long), rows.clone()).argmax(-1)
    expected = torch.softmax(scores.double() / 1.3, -1)
    frequencies = torch.bincount(drawn, minlength=vocabulary).double() / len(drawn)
    assert frequencies[expected == 0].sum() == 0  # zero-probability tokens, padding included, never drawn
    torch.testing.assert_close(frequencies[favoured], expected[favoured], atol=0.01, rtol=0)
    tokens, logps = recorded[0]
    assert torch.equal(tokens, drawn)
    torch.testing.assert_close(logps.double(), expected.log()[drawn], atol=1e-5, rtol=0)


@pytest.mark.parametrize("top_k, scores", [
    (2, [2.0, 1.0, 0.0, -1.0, 0.5]),
    (2, [1.0, 1.0, 1.0, 0.0, -2.0]),  # ties with the k-th token are kept, as transformers keeps them
    (7, [0.3, -0.2, 1.0]),  # k above the vocabulary: no cut
])
def test_top_k_draws_from_transformers_top_k_distribution(top_k, scores):
    from transformers import TopKLogitsWarper

    torch.manual_seed(0)
    rows = torch.tensor([scores]).repeat(100_000, 1)
    recorded = []
    sampler = InverseCdfSampler(temperature=0.7, top_k=top_k, record=lambda length, *drawn: recorded.append(drawn))
    drawn = sampler(torch.zeros(100_000, 1), rows.clone()).argmax(-1)
    frequencies = torch.bincount(drawn, minlength=len(scores)).double() / len(drawn)
    expected = torch.softmax(TopKLogitsWarper(top_k)(None, torch.tensor([scores]) / 0.7).double(), -1)[0]
    assert frequencies[expected == 0].sum() == 0
    torch.testing.assert_close(frequencies, expected, atol=0.0065, rtol=0)
    tokens, logps = recorded[0]
    assert torch.equal(tokens, drawn)
    torch.testing.assert_close(logps.double(), expected.log()[drawn], atol=1e-5, rtol=0)


def test_plain_sampling_runs_through_the_sampler_and_other_settings_do_not(tiny_model_dir, monkeypatch):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    sample_by_inverse_cdf(model)
    draws, multinomial = [], torch.multinomial
    monkeypatch.setattr(torch, "multinomial", lambda *a, **k: draws.append("torch") or multinomial(*a, **k))
    monkeypatch.setattr(InverseCdfSampler, "__call__",
                        lambda self, ids, scores: draws.append(("cdf", self.top_k)) or torch.zeros_like(scores))
    ids = torch.randint(10, 200, (2, 5))
    plain = GenerationConfig(do_sample=True, temperature=0.7, top_k=0, top_p=1.0, max_new_tokens=3, pad_token_id=0)
    with torch.no_grad():
        model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), generation_config=plain)
        assert draws == [("cdf", 0)] * 3 and plain.do_sample and plain.temperature == 0.7
        draws.clear()
        for top_k in (5, None):  # None: the model's default, else transformers' 50
            config = GenerationConfig(do_sample=True, max_new_tokens=1, pad_token_id=0, top_k=top_k, top_p=1.0)
            model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), generation_config=config)
        assert draws == [("cdf", 5), ("cdf", model.generation_config.top_k or 50)]
        draws.clear()
        for other in (dict(top_k=5, top_p=0.9), dict(top_k=0, top_p=1.0, min_p=0.1)):
            config = GenerationConfig(do_sample=True, max_new_tokens=3, pad_token_id=0, **other)
            model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), generation_config=config)
    assert draws == ["torch"] * 6
    draws.clear()
    model.generation_config.min_p = 0.2  # the model's own default reaches generate() when min_p is unset
    with torch.no_grad():
        model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), generation_config=plain)
    assert draws == ["torch"] * 3


def test_sharded_weights_generate_through_the_lora_branches(tiny_model_dir, monkeypatch):
    model = tiny_lora(tiny_model_dir)
    merge_lora_for_generation(model)
    next(model.parameters()).ds_id = 0  # as DeepSpeed ZeRO-3 marks its partitioned parameters
    merges = []
    monkeypatch.setattr("grpo.fast_decode.lora_deltas", lambda m: merges.append(m) or {})
    greedy(model, torch.randint(10, 200, (1, 4)), new_tokens=2)
    assert merges == []


def test_the_rollout_config_switches_each_speed_up(tiny_model_dir):
    from omegaconf import OmegaConf

    from grpo.fast_decode import speed_up_generation

    model = tiny_lora(tiny_model_dir)
    generate, head_forward = model.generate, model.get_output_embeddings().forward
    off = dict(share_prompt_prefill=False, merge_lora=False, cpu_transposed_head=False, inverse_cdf_sampling=False)
    speed_up_generation(OmegaConf.create({"name": "hf", **off}), model)
    assert model.generate == generate and model.get_output_embeddings().forward == head_forward
    speed_up_generation(OmegaConf.create({"name": "vllm_colocate"}), model)  # vLLM configs carry no keys
    assert model.generate == generate
    speed_up_generation(OmegaConf.create({"name": "hf", **{key: True for key in off}}), model)
    # sampling wraps merging, which wraps the shared prefill: the merged weights encode the prompts too
    assert model.generate.__wrapped__.__wrapped__.__wrapped__ == generate
    assert model.get_output_embeddings().forward != head_forward
