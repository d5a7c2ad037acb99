"""profile=gpu composes with every model preset into a config that validates on a CUDA machine, with the
preset's own memory settings, SDPA attention, and a vLLM context sized to the prompts."""

import types

import pytest
from omegaconf import open_dict

from compose import compose_train
from conftest import REPO
from grpo import validate, vllm_env
from grpo.validate import validate_training_config
from grpo.vllm_env import fit_vllm_context, longest_prompt_tokens

MODELS = sorted(p.stem for p in (REPO / "conf" / "model").glob("*.yaml"))


@pytest.fixture
def gpu_machine_packages(monkeypatch):
    """vLLM (its CUDA wheels require torchvision) and bitsandbytes 'installed' (validation only asks whether
    they can be imported)."""
    real = validate.find_spec
    monkeypatch.setattr(validate, "find_spec", lambda name: object() if name in ("vllm", "bitsandbytes") else real(name))
    monkeypatch.setattr(vllm_env, "find_spec", lambda name: object() if name == "torchvision" else real(name))


def gpu_config(tmp_path, *overrides):
    cfg = compose_train("+task=gsm8k", "profile=gpu", *overrides)
    with open_dict(cfg):
        cfg.output_dir = str(tmp_path)
    return cfg


@pytest.mark.parametrize("model", MODELS)
def test_gpu_profile_validates_with_every_model(tmp_path, gpu_machine_packages, model):
    cfg = gpu_config(tmp_path, f"model={model}")
    plan, _, _ = validate_training_config(cfg, cuda=True)
    gpu = cfg.model.gpu
    assert cfg.rollout.name == "vllm_colocate" and cfg.model.attn_implementation == "sdpa"
    assert cfg.trainer.gradient_checkpointing == gpu.gradient_checkpointing
    assert cfg.rollout.trainer_overrides.vllm_gpu_memory_utilization == gpu.vllm_gpu_memory_utilization
    assert plan.per_device_train_batch_size <= gpu.max_micro_batch
    assert cfg.rollout.trainer_overrides.vllm_max_model_length is None  # measured at start-up


def test_the_larger_models_checkpoint_activations_on_gpu(tmp_path):
    for model in ("gemma3-4b-it", "gemma4-e2b-it", "gemma4-e4b-it"):
        assert gpu_config(tmp_path, f"model={model}").trainer.gradient_checkpointing is True
    assert gpu_config(tmp_path).trainer.gradient_checkpointing is False  # 1B: fits without


def test_command_line_still_wins_over_the_presets_gpu_settings(tmp_path):
    cfg = gpu_config(tmp_path, "model=gemma3-4b-it", "trainer.gradient_checkpointing=false",
                     "batch.max_micro_batch=2", "model.attn_implementation=eager")
    assert (cfg.trainer.gradient_checkpointing, cfg.batch.max_micro_batch, cfg.model.attn_implementation) == (False, 2, "eager")


def test_vllm_context_is_the_longest_prompt_plus_the_completion_budget(tiny_model_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    prompts = [[{"role": "user", "content": "Hi"}], [{"role": "user", "content": "What is 12 times 12? " * 20}]]
    longest = longest_prompt_tokens(prompts, tokenizer)
    assert longest == len(tokenizer.apply_chat_template(prompts[1], add_generation_prompt=True)["input_ids"]) > 100
    args = types.SimpleNamespace(use_vllm=True, vllm_mode="colocate", vllm_max_model_length=None, max_completion_length=512)
    assert fit_vllm_context(args, {"prompt": prompts}, tokenizer) == args.vllm_max_model_length
    assert longest + 512 <= args.vllm_max_model_length < longest + 512 + 256
    assert args.vllm_max_model_length % 256 == 0


@pytest.mark.parametrize("args", [
    dict(use_vllm=False, vllm_mode="colocate", vllm_max_model_length=None),
    dict(use_vllm=True, vllm_mode="server", vllm_max_model_length=None),
    dict(use_vllm=True, vllm_mode="colocate", vllm_max_model_length=1024),
])
def test_vllm_context_is_left_alone_when_not_ours_to_set(args):
    args = types.SimpleNamespace(max_completion_length=512, **args)
    before = args.vllm_max_model_length
    assert fit_vllm_context(args, {"prompt": []}, tokenizer=None) is None
    assert args.vllm_max_model_length == before


@pytest.mark.parametrize("experiment", ["gemma3-4b-thinking", "gpu-gsm8k-1b"])
def test_gpu_profile_validates_with_every_grpo_recipe(tmp_path, gpu_machine_packages, experiment):
    cfg = compose_train(f"+experiment={experiment}", "profile=gpu")
    with open_dict(cfg):
        cfg.output_dir = str(tmp_path)
    validate_training_config(cfg, cuda=True)
    assert cfg.trainer.gradient_checkpointing == cfg.model.gpu.gradient_checkpointing
