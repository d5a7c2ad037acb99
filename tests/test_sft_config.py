"""SFT settings are checked before anything loads; messages name the field and the fix."""

import pytest
from omegaconf import open_dict

from compose import compose_train
from grpo.sft import validate_sft_config
from grpo.validate import ConfigError


def _validate(tmp_path, *overrides, cuda=False, then_grpo=True):
    cfg = compose_train("+task=gsm8k", "model=tiny", "profile=cpu", "sft=gsm8k_cot", *overrides)
    with open_dict(cfg):
        cfg.output_dir = str(tmp_path)
    validate_sft_config(cfg, cuda=cuda, then_grpo=then_grpo)


def test_valid_sft_config_passes(tmp_path):
    _validate(tmp_path)


@pytest.mark.parametrize(
    "override, fragments",
    [
        ("+sft.trainer.max_seq_length=384", ["sft.trainer.max_seq_length", "did you mean sft.trainer.max_length"]),
        ("+sft.trainer.lerning_rate=1e-4", ["did you mean sft.trainer.learning_rate"]),
        ("+sft.trainer.output_dir=/tmp/x", ["sft.trainer.output_dir", "set by gemma-grpo"]),
        ("+sft.trainer.bf16=true", ["sft.trainer.bf16", "model.dtype"]),
        ("sft.trainer.learning_rate=0", ["sft.trainer.learning_rate"]),
        ("sft.trainer.max_steps=0", ["sft.trainer.max_steps"]),
        ("sft.trainer.per_device_train_batch_size=0", ["sft.trainer.per_device_train_batch_size"]),
        ("+sft.trainer.fp16=true", ["fp16"]),
        ("+sft.trainer.optim=adamw_8bit", ["adamw_8bit", "CUDA"]),
        ("peft=qlora", ["peft=qlora", "CUDA"]),
        ("sft.format=nope", ["sft.format", "medical_cot"]),
        ("init_adapter=/tmp/a", ["init_adapter", "drop one"]),
        ("peft=full", ["peft=full", "python -m grpo.sft"]),
        ("sft.only=true", ["SFT-only", "python -m grpo.sft"]),
    ],
)
def test_bad_sft_setting_names_the_field(tmp_path, override, fragments):
    with pytest.raises(ConfigError) as caught:
        _validate(tmp_path, override)
    for fragment in fragments:
        assert fragment in str(caught.value), str(caught.value)


def test_sft_alone_may_be_full_or_sft_only(tmp_path):
    _validate(tmp_path, "peft=full", "sft.only=true", then_grpo=False)


def test_sft_config_passes_trainer_fields_one_to_one(tmp_path):
    from grpo.sft import sft_config

    cfg = compose_train("model=tiny", "sft=gsm8k_cot", "sft.trainer.max_steps=7", "sft.trainer.learning_rate=3e-4")
    args = sft_config(cfg, tmp_path, [])
    assert (args.max_steps, args.learning_rate, args.completion_only_loss, args.max_length) == (7, 3e-4, True, 512)
    assert args.bf16 is False and args.output_dir == str(tmp_path)
