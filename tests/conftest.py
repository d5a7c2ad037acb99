"""Test-wide settings: offline hub, one shared model cache, CPU only, and the gpu marker."""

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["WANDB_MODE"] = "disabled"
os.environ.setdefault("GEMMA_GRPO_CACHE", str(Path.home() / ".cache" / "gemma-grpo"))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


FUZZ_COUNTS = pytest.StashKey[dict]()


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    counts = config.stash.get(FUZZ_COUNTS, None)
    if counts:
        terminalreporter.write_line(
            "config fuzz: " + ", ".join(f"{n} {what}" for what, n in counts.items())
        )


def pytest_collection_modifyitems(config, items):
    import torch

    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture(scope="session")
def tiny_model_dir():
    """The cached tiny Gemma 3 (converts the real tokenizer once, ~35 s on a fresh machine)."""
    from omegaconf import OmegaConf

    from grpo.models import resolve_model_path

    cfg = OmegaConf.load(REPO / "conf" / "model" / "tiny.yaml")
    return Path(resolve_model_path(cfg))


def run_cli(module: str, *overrides: str, timeout: int = 600, env: dict | None = None):
    """Run `python -m <module> <overrides>` from the repo root; return the CompletedProcess, with
    `.output` holding stdout and stderr together (Hydra logs to stdout, errors go to stderr)."""
    import subprocess

    full_env = {**os.environ, **(env or {})}
    result = subprocess.run(
        [sys.executable, "-m", module, *overrides],
        cwd=REPO,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    result.output = result.stdout + result.stderr
    return result


@pytest.fixture(scope="session")
def pipeline_run(tmp_path_factory, tiny_model_dir):
    """A trained run: SFT then GRPO on the tiny model, 2 steps each, as `python -m grpo.train ... sft=gsm8k_cot`
    runs it; (run dir, output). Shared by tests/test_sft_cli.py and tests/test_export.py (its exports). The SFT
    learning rate is high so that 2 steps change the tiny model's greedy tokens: an export compared with an
    adapter that changes nothing would pass by being the base."""
    run = tmp_path_factory.mktemp("pipeline")
    result = run_cli(
        "grpo.train",
        "+task=gsm8k",
        "model=tiny",
        "sft=gsm8k_cot",
        "sft.trainer.max_steps=2",
        "sft.trainer.learning_rate=2e-2",
        "sft.trainer.per_device_train_batch_size=1",
        "sft.trainer.max_length=1024",
        "task.example=null",  # shorter prompts in both stages: the test's time goes into 262k-vocab logits
        "trainer.max_steps=2",
        "trainer.max_completion_length=8",
        "logger=none",
        "eval.limit=2",  # GRPO's before evaluation reuses the SFT stage's final one (tests/test_sft_cli.py)
        "eval.max_new_tokens=4",
        f"hydra.run.dir={run}",
    )
    assert result.returncode == 0, result.output[-3000:]
    return run, result.output
