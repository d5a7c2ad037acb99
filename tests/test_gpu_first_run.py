"""First contact with a GPU machine: the profile chosen, a missing vLLM, a GPU torch cannot use.

CUDA and the NVIDIA driver are faked (a patched CUDA check, a fake `nvidia-smi` on PATH), so these run
on any CPU machine.
"""

import logging
import os
import stat

import pytest

from conftest import run_cli
from grpo import profile
from grpo.profile import BrokenCudaSetup, resolve_profile_argv


@pytest.fixture
def no_nvidia(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    monkeypatch.setattr(profile, "NVIDIA_DEVICE", tmp_path / "no-nvidia0")


def fake_nvidia_smi(folder, output="NVIDIA A100-SXM4-80GB, 535.104.05", code=0):
    folder.mkdir(exist_ok=True)
    smi = folder / "nvidia-smi"
    smi.write_text(f"#!/bin/sh\necho '{output}'\nexit {code}\n")
    smi.chmod(smi.stat().st_mode | stat.S_IEXEC)
    return smi


def machine(monkeypatch, *, cuda: bool, vllm: bool):
    monkeypatch.setattr(profile, "cuda_available", lambda: cuda)
    monkeypatch.setattr(profile, "vllm_installed", lambda: vllm)


# -- item 1: vLLM missing on a CUDA machine ---------------------------------------------------------

def test_gpu_without_vllm_falls_back_to_hf_with_one_warning(monkeypatch, caplog, no_nvidia):
    machine(monkeypatch, cuda=True, vllm=False)
    with caplog.at_level(logging.WARNING, logger="grpo.profile"):
        argv, choice = resolve_profile_argv(["+task=gsm8k"])
    assert choice == "gpu" and argv == ["+task=gsm8k", "profile=gpu", "rollout=hf"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and 'pip install -e ".[vllm]"' in warnings[0]


def test_explicit_gpu_profile_without_vllm_also_falls_back(monkeypatch, no_nvidia):
    machine(monkeypatch, cuda=True, vllm=False)
    argv, _ = resolve_profile_argv(["+task=gsm8k", "profile=gpu"])
    assert argv[-1] == "rollout=hf"


@pytest.mark.parametrize("asked", ["rollout=vllm_colocate", "+rollout=vllm_server", "rollout=vllm_colocate,hf"])
def test_a_vllm_rollout_asked_for_by_name_is_kept(monkeypatch, no_nvidia, asked):
    machine(monkeypatch, cuda=True, vllm=False)
    argv, _ = resolve_profile_argv(["+task=gsm8k", asked])
    assert "rollout=hf" not in argv  # validation then refuses it with the install step (test_vllm_config.py)


def test_gpu_with_vllm_keeps_the_vllm_rollout(monkeypatch, no_nvidia):
    machine(monkeypatch, cuda=True, vllm=True)
    argv, _ = resolve_profile_argv(["+task=gsm8k"])
    assert argv == ["+task=gsm8k", "profile=gpu"]


def test_fallback_composes_to_an_hf_rollout_that_validates(monkeypatch, tmp_path, no_nvidia):
    from compose import compose_train
    from grpo.validate import validate_training_config

    machine(monkeypatch, cuda=True, vllm=False)
    argv, _ = resolve_profile_argv(["+task=gsm8k", f"output_dir={tmp_path}"])
    cfg = compose_train(*argv)
    assert cfg.rollout.name == "hf" and cfg.model.name == "gemma3-1b-it"
    validate_training_config(cfg, cuda=True)


# -- item 3: an NVIDIA GPU that torch cannot use ---------------------------------------------------

def test_nvidia_smi_without_cuda_stops_auto_naming_what_was_found(monkeypatch, tmp_path):
    fake_nvidia_smi(tmp_path / "bin")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    monkeypatch.setattr(profile, "NVIDIA_DEVICE", tmp_path / "no-nvidia0")
    machine(monkeypatch, cuda=False, vllm=False)
    with pytest.raises(BrokenCudaSetup) as caught:
        resolve_profile_argv(["+task=gsm8k"])
    message = str(caught.value)
    assert "nvidia-smi at" in message and "NVIDIA A100-SXM4-80GB, 535.104.05" in message
    assert "torch sees no CUDA" in message and "profile=cpu" in message


def test_device_node_without_cuda_stops_auto(monkeypatch, tmp_path, no_nvidia):
    node = tmp_path / "nvidia0"
    node.write_text("")
    monkeypatch.setattr(profile, "NVIDIA_DEVICE", node)
    machine(monkeypatch, cuda=False, vllm=False)
    with pytest.raises(BrokenCudaSetup, match="nvidia0"):
        resolve_profile_argv(["+task=gsm8k", "profile=auto"])


def test_profile_cpu_trains_on_cpu_despite_the_gpu(monkeypatch, tmp_path):
    fake_nvidia_smi(tmp_path / "bin")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    machine(monkeypatch, cuda=False, vllm=False)
    assert resolve_profile_argv(["+task=gsm8k", "profile=cpu"]) == (["+task=gsm8k", "profile=cpu"], "cpu")


def test_cpu_machine_without_nvidia_picks_cpu_quietly(monkeypatch, no_nvidia):
    machine(monkeypatch, cuda=False, vllm=False)
    assert resolve_profile_argv(["+task=gsm8k"]) == (["+task=gsm8k", "profile=cpu"], "cpu")


def test_cli_stops_with_exit_2_on_a_broken_cuda_setup(tmp_path):
    fake_nvidia_smi(tmp_path / "bin", output="Failed to initialize NVML: Driver/library version mismatch", code=9)
    env = {"PATH": f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    result = run_cli("grpo.train", "+task=gsm8k", "logger=none", f"hydra.run.dir={tmp_path}/run", env=env, timeout=120)
    assert result.returncode == 2, result.output
    assert "nvidia-smi" in result.output and "Driver/library version mismatch" in result.output
    assert "profile=cpu" in result.output and "Traceback" not in result.output


def test_qlora_on_gpu_rolls_out_with_hf_even_with_vllm(monkeypatch, tmp_path, no_nvidia):
    from compose import compose_train
    from grpo import validate
    from grpo.validate import validate_training_config

    machine(monkeypatch, cuda=True, vllm=True)
    argv, _ = resolve_profile_argv(["+task=gsm8k", "peft=qlora", f"output_dir={tmp_path}"])
    assert argv[-1] == "rollout=hf"
    monkeypatch.setattr(validate, "find_spec", lambda name: object())  # bitsandbytes, vllm "installed"
    validate_training_config(compose_train(*argv), cuda=True)  # without the fallback: the QLoRA+vLLM refusal
    argv, _ = resolve_profile_argv(["+task=gsm8k", "peft=qlora", "rollout=vllm_colocate"])
    assert "rollout=hf" not in argv
