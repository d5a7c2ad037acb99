"""The SFT stage's CLI, alone and chained before GRPO, in subprocesses on the tiny model."""

import json

import pytest

from conftest import run_cli


def _lora_tensors(adapter_dir, part):
    from safetensors.torch import load_file

    tensors = load_file(str(adapter_dir / "adapter_model.safetensors"))
    return {k: v for k, v in tensors.items() if f".{part}." in k}


def test_offline_hub_dataset_exits_2_with_the_fix_before_loading_a_model(tmp_path):
    result = run_cli("grpo.sft", "sft=instruction", "model=tiny", "logger=none", f"hydra.run.dir={tmp_path}")
    assert result.returncode == 2, result.output[-3000:]
    assert "databricks/databricks-dolly-15k" in result.output and "sft.data_files" in result.output
    assert "instruction, context, response" in result.output
    assert "Loading weights" not in result.output


@pytest.mark.slow
def test_sft_then_grpo_continues_the_sft_adapter(pipeline_run):
    tmp_path, output = pipeline_run
    sft, grpo = tmp_path / "sft", tmp_path / "grpo"
    for stage in (sft, grpo):
        assert (stage / "adapter" / "adapter_config.json").exists()
        assert (stage / "metrics.jsonl").exists() and (stage / "resolved_config.yaml").exists()
    sft_steps = [json.loads(line) for line in (sft / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in sft_steps if "loss" in row] == [1, 2]
    assert f"Starting from adapter {sft / 'adapter'}" in output

    # GRPO starts from the adapter the SFT stage has just evaluated: that evaluation is its "before" row
    sft_after = [row for row in sft_steps if row.get("eval/phase") == "after"]
    grpo_evals = [json.loads(line) for line in (grpo / "metrics.jsonl").read_text().splitlines() if "eval/phase" in line]
    assert [row["eval/phase"] for row in grpo_evals] == ["before", "after"]
    assert grpo_evals[0]["eval/reused_from"] == str(sft) and len(sft_after) == 1
    assert grpo_evals[0]["eval/gsm8k/correct_strict"] == sft_after[0]["eval/gsm8k/correct_strict"]
    assert (grpo / "samples_step-0.jsonl").exists()

    from peft import PeftModel

    from grpo.models import load_model_and_tokenizer
    from omegaconf import OmegaConf

    # LoRA B starts at zero in a fresh adapter; SFT moved it by ~lr (2e-2 here, conftest.pipeline_run) per Adam step. GRPO (lr 5e-6,
    # 2 steps) moves it by at most ~1e-5: if GRPO had ignored init_adapter, its B would be ~0, far from SFT's.
    sft_b, grpo_b = _lora_tensors(sft / "adapter", "lora_B"), _lora_tensors(grpo / "adapter", "lora_B")
    assert sft_b and sft_b.keys() == grpo_b.keys()
    assert max(t.abs().max().item() for t in sft_b.values()) > 1e-4
    for key in sft_b:
        assert (grpo_b[key] - sft_b[key]).abs().max().item() < 3e-5, key

    # and the SFT adapter loads with PeftModel.from_pretrained on the base model
    model_cfg = OmegaConf.load(tmp_path / "sft" / "resolved_config.yaml").model
    base, _ = load_model_and_tokenizer(model_cfg)
    assert isinstance(PeftModel.from_pretrained(base, str(sft / "adapter")), PeftModel)


@pytest.mark.slow
def test_sft_resumes_past_a_checkpoint_a_kill_cut_short(tmp_path, tiny_model_dir):
    """The SFT stage follows GRPO's resume rule: a checkpoint whose save a kill interrupted is skipped,
    and `resume=<run dir>` continues the run in its own dir."""
    sft = ("grpo.sft", "+task=gsm8k", "model=tiny", "sft=gsm8k_cot", "sft.trainer.per_device_train_batch_size=1",
           "sft.trainer.save_steps=1", "sft.trainer.save_total_limit=3", "task.example=null", "logger=none",
           "eval.limit=0")
    first = run_cli(*sft, "sft.trainer.max_steps=2", f"hydra.run.dir={tmp_path}")
    assert first.returncode == 0, first.output[-3000:]
    (tmp_path / "checkpoint-2" / "gemma-grpo-manifest.json").unlink()  # killed while saving step 2
    again = run_cli(*sft, "sft.trainer.max_steps=3", f"resume={tmp_path}", f"hydra.run.dir={tmp_path / 'new'}")
    assert again.returncode == 0, again.output[-3000:]
    assert f"Resuming from {tmp_path / 'checkpoint-1'}" in again.output
    assert "Skipping" in again.output and (tmp_path / "checkpoint-3").exists()
    steps = [json.loads(line)["step"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()
             if "loss" in json.loads(line)]
    assert steps[-2:] == [2, 3]  # step 2 redone from checkpoint-1, then step 3
