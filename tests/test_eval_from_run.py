"""`python -m eval.run run=<run dir>` evaluates a run as it was trained, and an adapter is never loaded on
another base: the refusal names both models, before any model loads."""

import json

import pytest
from omegaconf import OmegaConf, open_dict

from compose import compose_train
from conftest import run_cli
from grpo.validate import ConfigError


@pytest.fixture
def run_dir(tmp_path, tiny_model_dir):
    """A run's resolved config (tiny model, gsm8k, its own eval settings) and an adapter made by peft."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from grpo.run_dir import record_base_model

    cfg = compose_train("+task=gsm8k", "model=tiny", "logger=none", "eval.limit=7", "eval.max_new_tokens=5", "seed=3")
    with open_dict(cfg):
        cfg.output_dir = str(tmp_path)
    OmegaConf.save(cfg, tmp_path / "resolved_config.yaml", resolve=True)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj"])).save_pretrained(tmp_path / "adapter")
    record_base_model(tmp_path / "adapter", cfg.model)
    return tmp_path


def test_run_supplies_model_task_settings_and_adapter(run_dir):
    from grpo.eval_from_run import config_from_run

    cfg = compose_train(f"run={run_dir}", "eval.limit=3", config_name="eval")
    assert cfg.model.name == "gemma3-270m"  # the default, before the run's settings apply
    cfg = config_from_run(cfg, [f"run={run_dir}", "eval.limit=3", "profile=cpu"])
    assert cfg.model.name == "tiny" and cfg.task.name == "gsm8k" and cfg.seed == 3
    assert cfg.adapter == str(run_dir / "adapter")
    assert cfg.eval.max_new_tokens == 5  # the run's
    assert cfg.eval.limit == 3  # the command line wins over the run's 7


def test_a_rollout_setting_on_the_command_line_wins_over_the_runs(run_dir):
    from grpo.eval_from_run import config_from_run

    cfg = compose_train(f"run={run_dir}", "rollout.merge_lora=false", config_name="eval")
    cfg = config_from_run(cfg, [f"run={run_dir}", "rollout.merge_lora=false"])
    assert cfg.rollout.name == "hf" and cfg.rollout.merge_lora is False


def test_run_with_another_model_is_refused_naming_both(run_dir):
    from grpo.eval_from_run import config_from_run

    cfg = compose_train(f"run={run_dir}", config_name="eval")
    with pytest.raises(ConfigError, match=r"trained tiny .* cannot be evaluated on model=gemma3-270m"):
        config_from_run(cfg, [f"run={run_dir}", "model=gemma3-270m"])


def test_adapter_on_another_base_is_refused_naming_both(tmp_path):
    from grpo.run_dir import check_adapter_base

    (tmp_path / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "google/gemma-3-1b-it"}))
    model = compose_train("+task=gsm8k").model
    with pytest.raises(ConfigError, match=r"trained on google/gemma-3-1b-it, but the model here is gemma3-270m "
                                          r"\(google/gemma-3-270m\)"):
        check_adapter_base(tmp_path, model)


def test_adapters_from_before_the_hub_id_was_recorded_still_load(tmp_path, tiny_model_dir):
    from grpo.cache import cache_dir
    from grpo.run_dir import check_adapter_base

    config = tmp_path / "adapter_config.json"
    config.write_text(json.dumps({"base_model_name_or_path": str(cache_dir() / "gemma3-270m-embedded-v2")}))
    check_adapter_base(tmp_path, compose_train("+task=gsm8k").model)  # an older cache of the same model
    config.write_text(json.dumps({"base_model_name_or_path": str(tiny_model_dir)}))
    check_adapter_base(tmp_path, compose_train("+task=gsm8k", "model=tiny").model)
    with pytest.raises(ConfigError, match="trained on .*tiny-gemma3"):
        check_adapter_base(tmp_path, compose_train("+task=gsm8k").model)


def test_cli_refuses_a_mismatched_adapter_before_loading_a_model(tmp_path):
    (tmp_path / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "google/gemma-3-4b-it"}))
    result = run_cli("eval.run", "+task=gsm8k", "model=tiny", f"adapter={tmp_path}", "logger=none",
                     f"hydra.run.dir={tmp_path / 'out'}")
    assert result.returncode == 2
    assert "trained on google/gemma-3-4b-it, but the model here is tiny" in result.output
    assert "Traceback" not in result.output and "size mismatch" not in result.output


@pytest.mark.slow
def test_cli_evaluates_a_run(run_dir, tmp_path):
    out = tmp_path / "eval"
    result = run_cli("eval.run", f"run={run_dir}", "eval.limit=2", f"hydra.run.dir={out}")
    assert result.returncode == 0, result.output[-3000:]
    results = json.loads((out / "eval_results.json").read_text())
    assert results["model"] == "tiny" and results["adapter"] == str(run_dir / "adapter")
    assert results["gsm8k/n"] == 2 and results["limit"] == 2
