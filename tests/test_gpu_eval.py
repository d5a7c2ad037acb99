"""Evaluation through vLLM on GPU: the vLLM path is taken, its LoRA rank is one vLLM accepts, its context
is sized to the prompts, and a QLoRA adapter on vLLM's bf16 base is reported. vLLM is faked (a module
that records how it was called), so these run without it."""

import json
import logging
import sys
import types

import pytest
from omegaconf import OmegaConf

from compose import compose_train
from eval.generate import VLLMGenerator, vllm_lora_rank
from grpo import generators
from grpo.generators import build_generator


@pytest.mark.parametrize("rank, served", [(1, 8), (8, 8), (12, 16), (16, 16), (24, 32), (300, 320), (512, 512)])
def test_lora_rank_rounds_up_to_one_vllm_accepts(rank, served):
    assert vllm_lora_rank(rank) == served


def test_lora_rank_above_vllms_largest_is_refused():
    with pytest.raises(ValueError, match="rollout=hf"):
        vllm_lora_rank(600)


class FakeLLM:
    started: list = []

    def __init__(self, **kwargs):
        FakeLLM.started.append(kwargs)

    def generate(self, prompts, params, lora_request=None, use_tqdm=False):
        output = types.SimpleNamespace(outputs=[types.SimpleNamespace(text="<answer>4</answer>")] * params.n)
        return [output for _ in prompts]


@pytest.fixture
def fake_vllm(monkeypatch):
    vllm = types.ModuleType("vllm")
    vllm.LLM = FakeLLM
    vllm.SamplingParams = lambda **kwargs: types.SimpleNamespace(**kwargs)
    lora = types.ModuleType("vllm.lora")
    request = types.ModuleType("vllm.lora.request")
    request.LoRARequest = lambda name, idx, path: (name, idx, path)
    for name, module in {"vllm": vllm, "vllm.lora": lora, "vllm.lora.request": request}.items():
        monkeypatch.setitem(sys.modules, name, module)
    FakeLLM.started = []
    return FakeLLM


def adapter_dir(tmp_path, rank, method="lora"):
    adapter = tmp_path / "run" / "adapter"
    adapter.mkdir(parents=True)
    (adapter / "adapter_config.json").write_text(json.dumps({"r": rank}))
    (tmp_path / "run" / "resolved_config.yaml").write_text(OmegaConf.to_yaml({"peft": {"method": method}}))
    return adapter


def test_vllm_engine_serves_the_adapter_at_an_accepted_rank_and_a_prompt_sized_context(fake_vllm, tmp_path, tiny_model_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    generator = VLLMGenerator(str(tiny_model_dir), tokenizer, [1, 106], adapter=str(adapter_dir(tmp_path, 24)))
    assert fake_vllm.started == []  # started at the first generate(), when the prompts are known
    chats = [[{"role": "user", "content": "What is 2 + 2?"}], [{"role": "user", "content": "Hi"}]]
    assert generator.generate(chats, max_new_tokens=512) == [["<answer>4</answer>"]] * 2
    (engine,) = fake_vllm.started
    assert engine["enable_lora"] and engine["max_lora_rank"] == 32
    assert engine["max_model_len"] == 2048  # (longest prompt + 512) doubled, rounded up to 1024: not 32k
    generator.generate(chats, max_new_tokens=512)
    assert len(fake_vllm.started) == 1
    with pytest.raises(ValueError, match="vllm_max_model_length"):
        generator.generate(chats, max_new_tokens=4096)


def test_gpu_eval_with_a_vllm_rollout_generates_with_vllm(fake_vllm, monkeypatch, tmp_path, tiny_model_dir):
    monkeypatch.setattr(generators, "vllm_available", lambda: True)
    cfg = compose_train("+task=gsm8k", "profile=gpu", "model=tiny", "rollout=vllm_colocate", config_name="eval")
    generator = build_generator(cfg, None)
    assert isinstance(generator, VLLMGenerator)
    generator.generate([[{"role": "user", "content": "Hi"}]], max_new_tokens=8)
    assert fake_vllm.started[0]["gpu_memory_utilization"] == cfg.model.gpu.vllm_gpu_memory_utilization


def test_qlora_adapter_on_vllms_bf16_base_is_reported(fake_vllm, monkeypatch, tmp_path, caplog):
    monkeypatch.setattr(generators, "vllm_available", lambda: True)
    monkeypatch.setattr(generators, "vllm_generator", lambda cfg, adapter, seed: "vllm")
    cfg = compose_train("+task=gsm8k", "profile=gpu", "model=tiny", "rollout=vllm_colocate", config_name="eval")
    with caplog.at_level(logging.WARNING, logger="grpo.generators"):
        build_generator(cfg, str(adapter_dir(tmp_path / "q", 16, method="qlora")))
    assert any("QLoRA" in r.getMessage() and "rollout=hf" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="grpo.generators"):
        build_generator(cfg, str(adapter_dir(tmp_path / "l", 16, method="lora")))
    assert not any("QLoRA" in r.getMessage() for r in caplog.records)


def test_gpu_profile_evaluates_in_batches_of_64_and_the_full_test_set_at_the_end():
    cfg = compose_train("+task=gsm8k", "profile=gpu")
    assert cfg.eval.batch_size >= 64 and cfg.eval.final_full is True and cfg.eval.limit > 0


def test_multimodal_gemma_without_torchvision_is_evaluated_with_transformers(monkeypatch, caplog):
    # vLLM 0.31 cannot load gemma3_mm / gemma4_mm without torchvision (grpo/vllm_env.py why_vllm_cannot_load)
    from grpo import models, vllm_env

    class LoadedWithTransformers(Exception):
        pass

    def load_model_and_tokenizer(*args, **kwargs):
        raise LoadedWithTransformers

    monkeypatch.setattr(generators, "vllm_available", lambda: True)
    monkeypatch.setattr(generators, "vllm_generator", lambda *args: pytest.fail("vLLM cannot load it here"))
    monkeypatch.setattr(vllm_env, "find_spec", lambda name: None)
    monkeypatch.setattr(models, "load_model_and_tokenizer", load_model_and_tokenizer)
    cfg = compose_train("+task=gsm8k", "profile=gpu", "model=gemma3-4b-it", "rollout=vllm_colocate", config_name="eval")
    with caplog.at_level(logging.WARNING, logger="grpo.generators"), pytest.raises(LoadedWithTransformers):
        build_generator(cfg, None)
    assert "model=gemma3-4b-it" in caplog.text and "torchvision" in caplog.text


def test_standalone_vllm_evaluation_of_multimodal_gemma_starts_the_language_model_only(fake_vllm, monkeypatch):
    from grpo import vllm_env

    monkeypatch.setattr(generators, "vllm_available", lambda: True)
    monkeypatch.setattr(vllm_env, "find_spec", lambda name: object())  # torchvision, as vLLM's CUDA install has
    chat = [[{"role": "user", "content": "Hi"}]]
    for multimodal, text_only, expected in ((True, True, True), (True, False, None), (False, True, None)):
        cfg = compose_train("+task=gsm8k", "profile=gpu", "model=tiny", "rollout=vllm_colocate", config_name="eval")
        cfg.model.multimodal = multimodal  # the tiny text model's own files; the fake engine only records
        cfg.rollout.language_model_only = text_only
        fake_vllm.started = []
        build_generator(cfg, None).generate(chat, max_new_tokens=8)
        assert fake_vllm.started[0].get("language_model_only") is expected, (multimodal, text_only)
