"""`python -m eval.run` gives the same answers with vLLM (CPU build) as with transformers generate.

Skipped where vLLM is not installed (`make test-vllm` runs it). Both runs load the same tiny model and
the same random LoRA adapter, greedy and in float32, so every completion, and therefore every metric,
must agree; the adapter is random so that it visibly changes the output (a generator that ignored it
would fail).
"""

import json
from importlib.util import find_spec

import pytest

from conftest import run_cli

pytestmark = [
    pytest.mark.vllm,
    pytest.mark.slow,
    pytest.mark.skipif(find_spec("vllm") is None, reason="needs vLLM (make test-vllm)"),
]

QUESTIONS = 6
NEW_TOKENS = 12


@pytest.fixture
def random_adapter(tiny_model_dir, tmp_path):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj", "down_proj"]))
    from grpo.export_check import randomize_lora_b

    randomize_lora_b(model, 0.5)
    model.save_pretrained(tmp_path / "adapter")
    return tmp_path / "adapter"


def evaluate(run_dir, *overrides):
    result = run_cli(
        "eval.run", "+task=gsm8k", "model=tiny", f"eval.limit={QUESTIONS}", f"eval.max_new_tokens={NEW_TOKENS}",
        "logger=none", f"hydra.run.dir={run_dir}", *overrides, timeout=900,
    )
    assert result.returncode == 0, result.output[-3000:]
    results = json.loads((run_dir / "eval_results.json").read_text())
    samples = [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]
    return result.output, results, samples


def test_eval_numbers_match_between_transformers_and_vllm(tmp_path, random_adapter):
    _, base_results, base_samples = evaluate(tmp_path / "base")
    hf_log, hf_results, hf_samples = evaluate(tmp_path / "hf", f"adapter={random_adapter}")
    vllm_log, vllm_results, vllm_samples = evaluate(
        tmp_path / "vllm", f"adapter={random_adapter}", "rollout=vllm_colocate_cpu"
    )
    assert "Generating with vLLM" in vllm_log and "Generating with vLLM" not in hf_log

    assert [s["completion"] for s in hf_samples] != [s["completion"] for s in base_samples], "adapter had no effect"
    assert [s["completion"] for s in vllm_samples] == [s["completion"] for s in hf_samples]
    for key in ("gsm8k/n", "gsm8k/accuracy_strict", "gsm8k/accuracy_flexible", "gsm8k/format_rate"):
        assert vllm_results[key] == hf_results[key], key
