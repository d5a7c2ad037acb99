"""Bad input is refused before any model loads, with a message naming the field and the fix."""

import pytest

from compose import compose_train
from conftest import run_cli
from grpo.validate import ConfigError, validate_training_config


def _validate(tmp_path, *overrides, cuda=False):
    cfg = compose_train("+task=gsm8k", "model=tiny", "profile=cpu", f"output_dir={tmp_path}", *overrides)
    return validate_training_config(cfg, cuda=cuda)


def test_valid_config_passes(tmp_path):
    plan, funcs, weights = _validate(tmp_path)
    assert plan.completions_per_step % plan.num_generations == 0
    assert len(funcs) == len(weights) == 4


@pytest.mark.parametrize(
    "override, fragments",
    [
        ("trainer.learning_rate=0", ["trainer.learning_rate", "> 0"]),
        ("trainer.learning_rate=-1e-5", ["trainer.learning_rate"]),
        ("trainer.learning_rate=fast", ["trainer.learning_rate", "number"]),
        ("trainer.num_generations=1", ["trainer.num_generations", "2"]),
        ("trainer.max_completion_length=0", ["trainer.max_completion_length"]),
        ("trainer.max_steps=0", ["trainer.max_steps"]),
        ("trainer.max_steps=2.5", ["trainer.max_steps", "integer"]),
        ("trainer.temperature=0", ["trainer.temperature", "identical"]),
        ("trainer.beta=-0.1", ["trainer.beta"]),
        ("trainer.top_p=1.5", ["trainer.top_p"]),
        ("trainer.fp16=true", ["trainer.fp16", "bfloat16"]),
        ("trainer.bf16=true", ["trainer.bf16", "CPU"]),
        ("+trainer.lerning_rate=1e-5", ["trainer.lerning_rate", "did you mean trainer.learning_rate"]),
        ("+trainer.output_dir=/tmp/x", ["trainer.output_dir", "top-level"]),
        ("trainer.per_device_train_batch_size=3 trainer.gradient_accumulation_steps=1", ["num_generations", "Nearest valid"]),
        ("trainer.generation_batch_size=12", ["trainer.generation_batch_size", "derived"]),
        ("batch.prompts_per_step=0", ["batch.prompts_per_step"]),
        ("model.dtype=float16", ["model.dtype", "float16"]),
        ("peft=qlora", ["peft=qlora", "CUDA"]),
        ("peft.r=0", ["peft.r"]),
        ("model=gemma3-4b-it peft.target_modules=[q_proj,v_proj]", ["vision tower", "language_model"]),
        ("rollout=vllm_colocate", ["rollout=vllm_colocate", "rollout=hf"]),
        ("eval.every_n_steps=-1", ["eval.every_n_steps"]),
        ("+rewards.stack.bogus.weight=1", ["rewards.stack.bogus"]),
        ("batch.prompts_per_step=two", ["batch.prompts_per_step", "integer"]),
        ("batch.max_micro_batch=0", ["batch.max_micro_batch"]),
        ("+batch.prompt_per_step=4", ["batch.prompt_per_step", "did you mean batch.prompts_per_step"]),
        ("eval.limit=-1", ["eval.limit"]),
        ("eval.limit=all", ["eval.limit", "integer"]),
        ("eval.batch_size=0", ["eval.batch_size"]),
        ("eval.max_new_tokens=0", ["eval.max_new_tokens"]),
        ("+eval.every_n_step=5", ["eval.every_n_step", "did you mean eval.every_n_steps"]),
        ("eval.num_samples=4", ["eval.num_samples=4", "eval.temperature"]),
        ("eval.num_samples=2 eval.temperature=0.8 eval.ks=[4]", ["eval.ks", "at most eval.num_samples=2"]),
        ("seed=1.5", ["seed", "integer"]),
        ("seed=abc", ["seed", "integer"]),
        ("+task.answer_tagg=x", ["task.answer_tagg", "did you mean task.answer_tag"]),
        ("task.data_files={train:/nope.jsonl}", ["task.data_files.train", "no such file"]),
        ("trainer.temperature=hot", ["trainer.temperature", "number"]),
        ("trainer.num_iterations=0", ["trainer.num_iterations"]),
        ("peft.lora_alpha=0", ["peft.lora_alpha"]),
        ("guard.max_consecutive_nonfinite=0", ["guard.max_consecutive_nonfinite", ">= 1"]),
        ("+guard.max_consecutive_nonfinit=3", ["guard.max_consecutive_nonfinit", "did you mean guard.max_consecutive_nonfinite"]),
        ("guard.zero_std_window=1.5", ["guard.zero_std_window", "integer"]),
    ],
)
def test_bad_setting_names_the_field(tmp_path, override, fragments):
    with pytest.raises(ConfigError) as caught:
        _validate(tmp_path, *override.split())
    for fragment in fragments:
        assert fragment in str(caught.value), str(caught.value)


def test_unwritable_output_dir_is_refused(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(ConfigError, match="output_dir"):
        _validate(tmp_path / "file" / "run")


def test_missing_task_says_how_to_pick_one(tmp_path):
    result = run_cli("grpo.train", "model=tiny", "logger=none", f"hydra.run.dir={tmp_path}")
    assert result.returncode == 2
    assert "+task=gsm8k" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize(
    "override, fragment",
    [("model=gemma9", "gemma3-270m"), ("rollout=sglang", "vllm_colocate"), ("+task=gsm9k", "gsm8k")],
)
def test_unknown_choice_lists_the_valid_ones(override, fragment):
    args = [override] if override.startswith("+task") else ["+task=gsm8k", override]
    result = run_cli("grpo.train", *args, "logger=none")
    assert result.returncode != 0
    assert fragment in result.output and "Traceback" not in result.output


def test_misspelled_top_level_key_is_refused_by_name():
    result = run_cli("grpo.train", "+task=gsm8k", "trainer.lerning_rate=1e-5", "logger=none")
    assert result.returncode != 0
    assert "lerning_rate" in result.output and "Traceback" not in result.output


def test_too_little_disk_for_checkpoints_is_refused(tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10 * 1024**3, 10 * 1024**3 - 5 * 1024**2, 5 * 1024**2))
    with pytest.raises(ConfigError, match=r"output_dir=.* has only 5 MiB free"):
        _validate(tmp_path / "run")


def test_read_only_output_dir_is_refused(tmp_path):
    import os

    read_only = tmp_path / "ro"
    read_only.mkdir()
    read_only.chmod(0o500)
    try:
        if os.access(read_only, os.W_OK):
            pytest.skip("running as a user who can write anywhere (root)")
        with pytest.raises(ConfigError, match="not writable"):
            _validate(read_only / "run")
    finally:
        read_only.chmod(0o700)


def test_ranks_checking_one_output_dir_at_once_do_not_trip_each_other(tmp_path):
    """Both ranks of a launch check the run dir at the same moment; a shared probe file name let one
    delete the other's (a flaky 'not writable (No such file or directory)' in tests/test_multiprocess.py)."""
    import threading

    from grpo.validate import check_output_dir

    errors = []

    def check_often():
        for _ in range(300):
            try:
                check_output_dir(str(tmp_path / "run"))
            except ConfigError as error:
                errors.append(error)

    threads = [threading.Thread(target=check_often) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert list((tmp_path / "run").iterdir()) == []  # no probe left behind
