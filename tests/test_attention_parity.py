"""SDPA attention gives eager's numbers on left-padded batches: finite logits and gradients, same values.

The CPU profile runs the 270M with SDPA (faster decoding, no attention matrices kept for the backward);
Users reported NaN losses under SDPA with padding in older transformers (#32390). This test is the
guard: GRPO batches are left-padded prompts, and a padding row fully masked in SDPA must not turn into
NaN in the real positions or in the gradients. The GPU profile uses SDPA for every model preset, so
Gemma 4 (NaN reports in NeMo Automodel #1883) is checked too, and the `gpu` tests repeat both families
in bf16 on CUDA.
"""

import pytest


@pytest.fixture(scope="module")
def padded_batch(tiny_model_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    texts = ["Natalia sold clips to 48 of her friends in April.", "Hi", "What is 2 + 2? Think step by step first."]
    return tokenizer(texts, padding=True, padding_side="left", return_tensors="pt")


def logits_and_grads(tiny_model_dir, attention: str, batch):
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32, attn_implementation=attention)
    logits = model(**batch).logits
    real = batch["attention_mask"].bool()
    # next-token targets whose input is a real token too (a padding row's output is undefined in both)
    scored = real[:, :-1] & real[:, 1:]
    loss = torch.nn.functional.cross_entropy(logits[:, :-1][scored], batch["input_ids"][:, 1:][scored])
    loss.backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    return logits.detach()[real], grads


def test_sdpa_matches_eager_on_left_padded_batches(tiny_model_dir, padded_batch):
    import torch

    assert (padded_batch["attention_mask"] == 0).any(), "the batch must contain padding for this test to mean anything"
    eager_logits, eager_grads = logits_and_grads(tiny_model_dir, "eager", padded_batch)
    sdpa_logits, sdpa_grads = logits_and_grads(tiny_model_dir, "sdpa", padded_batch)

    assert torch.isfinite(sdpa_logits).all()
    torch.testing.assert_close(sdpa_logits, eager_logits, atol=1e-4, rtol=1e-4)
    assert sdpa_grads.keys() == eager_grads.keys()
    for name, grad in sdpa_grads.items():
        assert torch.isfinite(grad).all(), name
        torch.testing.assert_close(grad, eager_grads[name], atol=1e-4, rtol=1e-3, msg=name)


@pytest.fixture(scope="module")
def gemma4_text(tmp_path_factory):
    """A tiny random Gemma 4 text model and a left-padded batch whose padding (12 tokens) outruns the
    sliding window (8), so some query rows see no key at all (PITFALLS: NaN reports with SDPA on Gemma 4)."""
    import torch
    from transformers import Gemma4ForCausalLM, Gemma4TextConfig

    directory = tmp_path_factory.mktemp("gemma4-text")
    config = Gemma4TextConfig(
        vocab_size=1000, hidden_size=64, intermediate_size=128, num_hidden_layers=4, num_attention_heads=2,
        num_key_value_heads=1, head_dim=32, vocab_size_per_layer_input=1000, hidden_size_per_layer_input=8,
        sliding_window=8, layer_types=["sliding_attention"] * 3 + ["full_attention"], pad_token_id=0,
    )
    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    Gemma4ForCausalLM(config).save_pretrained(directory)
    ids = torch.randint(5, 1000, (3, 20), generator=generator)
    mask = torch.ones_like(ids)
    for row, padding in ((1, 12), (2, 5)):
        ids[row, :padding], mask[row, :padding] = 0, 0
    return directory, {"input_ids": ids, "attention_mask": mask}


def test_gemma4_sdpa_matches_eager_on_left_padded_batches(gemma4_text):
    import torch

    directory, batch = gemma4_text
    eager_logits, eager_grads = logits_and_grads(directory, "eager", batch)
    sdpa_logits, sdpa_grads = logits_and_grads(directory, "sdpa", batch)
    assert torch.isfinite(sdpa_logits).all()
    torch.testing.assert_close(sdpa_logits, eager_logits, atol=1e-4, rtol=1e-4)
    for name, grad in sdpa_grads.items():
        assert torch.isfinite(grad).all(), name
        torch.testing.assert_close(grad, eager_grads[name], atol=1e-4, rtol=1e-3, msg=name)


@pytest.mark.gpu
@pytest.mark.parametrize("family", ["gemma3", "gemma4"])
def test_sdpa_in_bf16_on_cuda_is_as_close_to_fp32_as_eager(request, family):
    """The GPU profile trains with SDPA in bf16. Against an fp32 eager reference on the same GPU, SDPA's
    logits and gradients must be finite and no further off than eager's own bf16 rounding."""
    import torch
    from transformers import AutoModelForCausalLM

    if family == "gemma3":
        directory, batch = request.getfixturevalue("tiny_model_dir"), request.getfixturevalue("padded_batch")
    else:
        directory, batch = request.getfixturevalue("gemma4_text")
    batch = {k: v.cuda() for k, v in batch.items()}
    real = batch["attention_mask"].bool()
    scored = real[:, :-1] & real[:, 1:]

    def run(attention, dtype):
        model = AutoModelForCausalLM.from_pretrained(directory, dtype=dtype, attn_implementation=attention).cuda()
        logits = model(**batch).logits.float()
        loss = torch.nn.functional.cross_entropy(logits[:, :-1][scored], batch["input_ids"][:, 1:][scored])
        loss.backward()
        grad = next(p.grad for n, p in model.named_parameters() if "layers.0.self_attn.q_proj" in n).float()
        return logits.detach()[real], grad

    ref_logits, ref_grad = run("eager", torch.float32)
    eager_logits, eager_grad = run("eager", torch.bfloat16)
    sdpa_logits, sdpa_grad = run("sdpa", torch.bfloat16)
    assert torch.isfinite(sdpa_logits).all() and torch.isfinite(sdpa_grad).all()
    for got, eager, ref in ((sdpa_logits, eager_logits, ref_logits), (sdpa_grad, eager_grad, ref_grad)):
        sdpa_error = (got - ref).abs().max().item()
        eager_error = (eager - ref).abs().max().item()
        assert sdpa_error <= 2 * eager_error + 1e-3 * ref.abs().max().item(), (sdpa_error, eager_error)
