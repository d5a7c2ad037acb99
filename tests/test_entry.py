"""Importing the package changes nothing; the commands set up the process, and one function composes the
config the way they do."""

import os
import subprocess
import sys

from conftest import REPO


def test_importing_the_package_sets_no_environment_variable():
    env = {k: v for k, v in os.environ.items() if k != "THP_MEM_ALLOC_ENABLE"}
    code = "import os, grpo.batching, grpo.train, eval.run, tasks; print('THP_MEM_ALLOC_ENABLE' in os.environ)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_command_sets_its_process_settings_first(monkeypatch):
    from grpo import entry

    monkeypatch.delenv("THP_MEM_ALLOC_ENABLE", raising=False)
    monkeypatch.setattr(sys, "argv", ["grpo.train", "+task=gsm8k", "profile=cpu"])
    assert entry.prepare_process() == "cpu"
    assert os.environ["THP_MEM_ALLOC_ENABLE"] == "1"


def test_compose_config_resolves_profile_auto_like_the_commands(monkeypatch):
    from grpo import entry, profile

    monkeypatch.setattr(profile, "cuda_available", lambda: False)
    monkeypatch.setattr(profile, "nvidia_gpu_evidence", lambda: [])
    cfg = entry.compose_config(["+task=gsm8k"])
    assert cfg.model.name == "gemma3-270m" and cfg.trainer.max_steps == 12  # conf/profile/cpu.yaml
