"""Every recipe preset in conf/experiment composes and passes validation (the public recipes we learned from)."""

import pytest
from omegaconf import open_dict

from compose import compose_train
from conftest import REPO
from grpo.sft import validate_sft_config
from grpo.validate import ConfigError, validate_training_config

PRESETS = sorted(p.stem for p in (REPO / "conf" / "experiment").glob("*.yaml"))
SFT_ONLY = {"gemma4-4b-sci", "medical-qlora", "scientific-reviewer", "dolly-full"}


def _compose(tmp_path, name, *overrides):
    cfg = compose_train(f"+experiment={name}", *overrides)
    with open_dict(cfg):
        cfg.output_dir = str(tmp_path)
    return cfg


def _pretend_bitsandbytes(monkeypatch):
    import grpo.validate

    real = grpo.validate.find_spec
    monkeypatch.setattr(grpo.validate, "find_spec", lambda name: object() if name == "bitsandbytes" else real(name))


def test_every_preset_is_listed():
    assert set(PRESETS) == SFT_ONLY | {"cpu-gsm8k", "cpu-learning", "gemma3-4b-thinking", "gpu-gsm8k-1b"}
    for name in PRESETS:
        assert (REPO / "conf" / "experiment" / f"{name}.yaml").read_text().startswith("# @package _global_")


@pytest.mark.parametrize("name", PRESETS)
def test_preset_composes_and_validates_on_a_gpu_machine(tmp_path, monkeypatch, name):
    _pretend_bitsandbytes(monkeypatch)
    cfg = _compose(tmp_path, name)
    if name in SFT_ONLY:
        assert cfg.sft.only is True
        validate_sft_config(cfg, cuda=True, then_grpo=False)
        with pytest.raises(ConfigError, match="python -m grpo.sft"):
            validate_sft_config(cfg, cuda=True, then_grpo=True)
    else:
        validate_training_config(cfg, cuda=True)


def test_gemma3_4b_thinking_matches_its_recipe(tmp_path):
    cfg = _compose(tmp_path, "gemma3-4b-thinking")
    plan, funcs, _ = validate_training_config(cfg, cuda=False)
    assert (cfg.model.name, cfg.task.name, cfg.peft.method, cfg.peft.r, cfg.peft.lora_alpha) == ("gemma3-4b-it", "gsm8k", "lora", 16, 32)
    assert (cfg.trainer.learning_rate, cfg.trainer.max_steps, cfg.batch.prompts_per_step) == (5e-6, 100, 2)
    assert [f.__name__ for f in funcs] == ["correctness", "numeric_format", "reasoning_steps", "structure"]


def test_medical_qlora_matches_its_recipe(tmp_path):
    cfg = _compose(tmp_path, "medical-qlora")
    trainer = cfg.sft.trainer
    assert (cfg.model.name, cfg.peft.method, cfg.peft.r, cfg.peft.lora_alpha, cfg.peft.lora_dropout) == ("gemma4-e2b-it", "qlora", 16, 16, 0.05)
    assert trainer.per_device_train_batch_size * trainer.gradient_accumulation_steps == 16
    assert (trainer.learning_rate, trainer.lr_scheduler_type, trainer.max_length, trainer.num_train_epochs) == (2e-4, "cosine", 2048, 1)
    for module in ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"):
        assert module in cfg.model.lora_target_modules and "language_model" in cfg.model.lora_target_modules


def test_scientific_reviewer_matches_its_recipe(tmp_path):
    cfg = _compose(tmp_path, "scientific-reviewer")
    trainer = cfg.sft.trainer
    assert (cfg.peft.r, cfg.peft.lora_alpha, trainer.num_train_epochs, trainer.learning_rate) == (32, 64, 5, 2e-5)
    assert trainer.per_device_train_batch_size * trainer.gradient_accumulation_steps == 8
    assert (trainer.max_length, trainer.optim, cfg.model.dtype) == (8192, "adamw_8bit", "bfloat16")
    assert cfg.eval.verdict.pattern == cfg.sft.verdict_pattern == "I recommend this paper for (ACCEPTANCE|REJECTION)"


def test_qlora_presets_are_refused_on_cpu(tmp_path):
    for name in ("gemma4-4b-sci", "medical-qlora"):
        with pytest.raises(ConfigError, match="CUDA"):
            validate_sft_config(_compose(tmp_path, name), cuda=False, then_grpo=False)


def test_dolly_full_runs_the_forgetting_eval(tmp_path):
    cfg = _compose(tmp_path, "dolly-full")
    validate_sft_config(cfg, cuda=False, then_grpo=False)
    assert (cfg.model.name, cfg.peft.method, cfg.sft.name) == ("gemma3-270m", "full", "instruction")
    assert list(cfg.eval.domains) == ["pubmedqa", "mmlu"] and cfg.eval.limit > 0 and cfg.eval.task is False


def test_gpu_recipe_is_the_one_gpu_hour_gsm8k_run(tmp_path, monkeypatch):
    """docs/gpu.md: Gemma 3 1B IT, group 8, 512-token completions, LoRA at 10x TRL's full fine-tuning rate."""
    from trl import GRPOConfig

    import grpo.validate

    real = grpo.validate.find_spec
    monkeypatch.setattr(grpo.validate, "find_spec", lambda name: object() if name == "vllm" else real(name))
    cfg = _compose(tmp_path, "gpu-gsm8k-1b", "profile=gpu")
    plan, _, _ = validate_training_config(cfg, cuda=True)
    assert (cfg.model.name, cfg.peft.method, cfg.rollout.name) == ("gemma3-1b-it", "lora", "vllm_colocate")
    assert (cfg.trainer.num_generations, cfg.trainer.max_completion_length) == (8, 512)
    assert cfg.trainer.learning_rate == pytest.approx(10 * GRPOConfig.__dataclass_fields__["learning_rate"].default)
    assert plan.completions_per_step == 64 and cfg.eval.final_full is True
