"""LoRA weight sync to vLLM leaves the bf16 base weights bit-identical (trl #6688).

TRL 1.16 merges the adapter into the base weights in place, reads them, and unmerges: in bf16 each round
trip rounds twice, and the policy drifts away from base + adapter. grpo/vllm_env.py computes the merged
weights out of place instead. The sync iterator is driven directly (no vLLM needed): what it yields is
exactly what TRL hands to vLLM's load_weights (colocate) or the server (server mode).
"""

import functools
import types
from contextlib import nullcontext

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM
from trl.generation.vllm_generation import VLLMGeneration

from conftest import REPO, tiny_multimodal
from grpo.patches import sync_merged_copy

TRL_ITER = getattr(VLLMGeneration._iter_named_params, "trl_original", VLLMGeneration._iter_named_params)
SYNCS = 100


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def lora_model(request, tiny_model_dir):
    """A tiny bf16 Gemma 3 with a LoRA adapter that has trained a little (lora_B is no longer zero), on
    the CPU and, where there is one, on a GPU (peft merges in bf16 there, in fp32 on CPU)."""
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.bfloat16).to(request.param)
    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    peft_model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=targets))
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=generator).to(param.device) * 0.02)
    return peft_model


def generation_for(model):
    """The parts of a VLLMGeneration that _iter_named_params reads, on one process without FSDP."""
    return types.SimpleNamespace(
        model=model,
        _dist=types.SimpleNamespace(is_fsdp=False, gather_params=lambda params: nullcontext()),
        _fix_param_name_to_vllm=functools.partial(VLLMGeneration._fix_param_name_to_vllm, None),
    )


def base_weights(model):
    return {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" not in n}


def changed_fraction(before, model):
    """Share of the adapted layers' base weights (the ones a merge writes to) that differ from `before`."""
    after = base_weights(model)
    adapted = [n for n in before if ".base_layer." in n]
    changed = sum((before[n] != after[n]).sum().item() for n in adapted)
    return changed / sum(before[n].numel() for n in adapted)


def sync(iterate, generation, times):
    for _ in range(times):
        synced = [(name, tensor.clone()) for name, tensor in iterate(generation)]  # as load_weights copies
    return dict(synced)


def test_trls_merge_unmerge_round_trip_is_not_bit_identical_in_bf16(lora_model):
    """The problem being fixed: TRL's own sync path changes the base weights."""
    before = base_weights(lora_model)
    sync(TRL_ITER, generation_for(lora_model), SYNCS)
    fraction = changed_fraction(before, lora_model)
    print(f"TRL merge/unmerge, {SYNCS} syncs: {fraction:.1%} of adapted base weights changed")
    assert fraction > 0.01


def test_out_of_place_sync_keeps_the_base_bit_identical_over_100_syncs(lora_model):
    assert sync_merged_copy()
    before = base_weights(lora_model)
    sync(VLLMGeneration._iter_named_params, generation_for(lora_model), SYNCS)
    assert changed_fraction(before, lora_model) == 0.0
    for name, weight in base_weights(lora_model).items():
        assert torch.equal(weight, before[name]), name


ADAPTED = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def test_synced_weights_are_base_plus_adapter_under_trls_names(lora_model):
    assert sync_merged_copy()
    ours = sync(VLLMGeneration._iter_named_params, generation_for(lora_model), 1)
    # only what LoRA changes: the 7 adapted projections of both layers, under the base model's names
    assert sorted(ours) == sorted(f"model.layers.{i}.{part}.{proj}.weight" for i in range(2)
                                  for part, projs in (("self_attn", ADAPTED[:4]), ("mlp", ADAPTED[4:]))
                                  for proj in projs)
    module = lora_model.base_model.model.model.layers[0].self_attn.q_proj
    expected = (module.base_layer.weight.float() + module.get_delta_weight("default").float()).to(torch.bfloat16)
    assert torch.equal(ours["model.layers.0.self_attn.q_proj.weight"], expected)
    assert not torch.equal(expected, module.base_layer.weight)
    # the same weights TRL's in-place merge sends, up to one bf16 rounding step
    theirs = sync(TRL_ITER, generation_for(lora_model), 1)
    assert set(ours) < set(theirs)
    for name in ours:
        torch.testing.assert_close(ours[name], theirs[name], atol=2e-2, rtol=1e-2, msg=name)


def test_all_weights_on_request_for_vllms_reload_path(lora_model, tiny_model_dir):
    assert sync_merged_copy()
    everything = dict(VLLMGeneration._iter_named_params(generation_for(lora_model), all_weights=True))
    plain = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.bfloat16)
    assert set(everything) == {name for name, _ in plain.named_parameters()}  # the names vLLM loads


@pytest.mark.parametrize("kind, preset", [("gemma3", "gemma3-4b-it"), ("gemma4", "gemma4-e4b-it")])
def test_multimodal_sync_sends_only_the_language_layers_lora_changes(tmp_path, kind, preset):
    """Gemma 3 4B and Gemma 4 E2B/E4B: no frozen vision or audio weights (trl #5269), no embeddings."""
    from omegaconf import OmegaConf

    targets = OmegaConf.load(REPO / "conf" / "model" / f"{preset}.yaml").lora_target_modules
    model = get_peft_model(tiny_multimodal(kind, tmp_path), LoraConfig(r=4, target_modules=targets))
    assert sync_merged_copy()
    ours = [name for name, _ in VLLMGeneration._iter_named_params(generation_for(model))]
    theirs = [name for name, _ in TRL_ITER(generation_for(model))]
    assert any("vision_tower" in n for n in theirs)  # what TRL 1.16 sends
    assert len(ours) == 2 * 7 and all(n.startswith("model.language_model.layers.") for n in ours), ours
    assert all(n.endswith(tuple(f"{p}.weight" for p in ADAPTED)) for n in ours)


def test_patch_steps_aside_on_another_trl_version(monkeypatch, caplog):
    import trl

    monkeypatch.setattr(trl, "__version__", "1.17.0")
    monkeypatch.setattr(VLLMGeneration, "_iter_named_params", TRL_ITER)
    assert sync_merged_copy() is False
    assert VLLMGeneration._iter_named_params is TRL_ITER
    assert "1.17.0" in caplog.text and "==1.16.0" in caplog.text
