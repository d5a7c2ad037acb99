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


def tiny_multimodal(kind, directory, dtype="bfloat16"):
    """Tiny random Gemma 3 (vision) and Gemma 4 (vision + audio) checkpoints saved to `directory`, loaded
    as training loads them. Shared by tests/test_weight_sync.py and tests/test_vllm_multimodal_sync.py.
    head_dim=32: vLLM's CPU attention has no kernel for 16."""
    import torch
    from transformers import (AutoModelForCausalLM, Gemma3Config, Gemma3ForConditionalGeneration, Gemma4Config,
                              Gemma4ForConditionalGeneration)

    text = dict(vocab_size=1000, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                num_key_value_heads=1, head_dim=32)
    if kind == "gemma3":
        config = Gemma3Config(text_config=text, mm_tokens_per_image=4, vision_config=dict(
            hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, image_size=28, patch_size=14))
        Gemma3ForConditionalGeneration(config).save_pretrained(directory)
    else:
        config = Gemma4Config(
            text_config=dict(text, vocab_size_per_layer_input=1000, hidden_size_per_layer_input=8, sliding_window=16,
                             layer_types=["sliding_attention", "full_attention"]),
            vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                               num_key_value_heads=2, head_dim=16, patch_size=4, position_embedding_size=64),
            audio_config=dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                              subsampling_conv_channels=[8, 4], output_proj_dims=32),
            boi_token_id=990, eoi_token_id=991, image_token_id=992, video_token_id=993, boa_token_id=994,
            eoa_token_index=995, audio_token_id=996,
        )
        Gemma4ForConditionalGeneration(config).save_pretrained(directory)
    return AutoModelForCausalLM.from_pretrained(directory, dtype=getattr(torch, dtype))


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
