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


class RecordedLLM:
    """Stands in for vllm.LLM where TRL 1.16 builds its colocated engine; records the arguments."""

    calls: list = []

    def __init__(self, **kwargs):
        RecordedLLM.calls.append(kwargs)


def colocated_engine_args(monkeypatch, rollout: str, *overrides: str) -> dict:
    """The arguments TRL's colocated `LLM(...)` call receives after prepare_vllm, for this config."""
    from trl.generation import vllm_generation

    from grpo.patches import patched_for_run

    cfg = compose_train("+task=gsm8k", f"rollout={rollout}", "profile=cpu", *overrides)
    monkeypatch.setattr(vllm_generation, "LLM", RecordedLLM, raising=False)
    RecordedLLM.calls = []
    with patched_for_run():
        prepare_vllm(cfg.rollout, cfg.model)
        vllm_generation.LLM(model="m", seed=0)  # as TRL calls it
    (call,) = RecordedLLM.calls
    return call


@pytest.mark.parametrize("model", ["gemma3-4b-it", "gemma4-e2b-it", "gemma4-e4b-it"])
def test_colocated_vllm_builds_only_the_language_model_of_multimodal_gemma(monkeypatch, model):
    assert colocated_engine_args(monkeypatch, "vllm_colocate", f"model={model}") == {
        "model": "m", "seed": 0, "language_model_only": True}
    cpu = colocated_engine_args(monkeypatch, "vllm_colocate_cpu", f"model={model}")
    assert cpu["language_model_only"] is True and cpu["dtype"] == "float32"


def test_colocated_vllm_builds_text_models_and_opted_out_multimodal_ones_as_they_are(monkeypatch):
    assert colocated_engine_args(monkeypatch, "vllm_colocate", "model=gemma3-1b-it") == {"model": "m", "seed": 0}
    opted_out = colocated_engine_args(monkeypatch, "vllm_colocate", "model=gemma3-4b-it",
                                      "rollout.language_model_only=false")
    assert "language_model_only" not in opted_out
    assert "language_model_only" not in colocated_engine_args(monkeypatch, "vllm_colocate_cpu", "model=tiny")
