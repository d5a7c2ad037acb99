"""conf/accelerate/*.yaml as `accelerate launch --config_file` reads them: accelerate's own loader and
launcher turn each into the processes and environment the docs promise (docs/distributed.md).
Nothing is launched here; tests/test_deepspeed_cpu.py launches zero2_cpu.yaml for real."""

import pytest

from compose import compose_train
from conftest import REPO
from grpo.validate import ConfigError, check_deepspeed_on_cpu

CONFIGS = REPO / "conf" / "accelerate"
GPU_CONFIGS = ["ddp", "zero2", "zero3", "fsdp"]


def launch_env(name: str):
    """(parsed launch args, child environment) for `accelerate launch --config_file <name>.yaml -m grpo.train`,
    through accelerate's launcher code; no process is started."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils.launch import prepare_deepspeed_cmd_env, prepare_multi_gpu_env

    argv = ["--config_file", str(CONFIGS / f"{name}.yaml"), "-m", "grpo.train", "+task=gsm8k"]
    args, defaults, _ = _validate_launch_command(launch_command_parser().parse_args(argv))
    if args.use_deepspeed:
        args.deepspeed_fields_from_accelerate_config = ",".join(defaults.deepspeed_config)
        _, env = prepare_deepspeed_cmd_env(args)
    else:
        env = prepare_multi_gpu_env(args)
    return args, env


def test_every_shipped_config_is_tested():
    assert sorted(p.stem for p in CONFIGS.glob("*.yaml")) == sorted([*GPU_CONFIGS, "zero2_cpu"])


@pytest.mark.parametrize("name", GPU_CONFIGS)
def test_gpu_configs_load_with_accelerates_loader_as_eight_bf16_processes(name):
    from accelerate.commands.config.config_args import ClusterConfig, load_config_from_file

    config = load_config_from_file(str(CONFIGS / f"{name}.yaml"))
    assert isinstance(config, ClusterConfig)
    assert (config.num_processes, config.num_machines, config.mixed_precision) == (8, 1, "bf16")
    assert not config.use_cpu
    kind = {"ddp": "MULTI_GPU", "zero2": "DEEPSPEED", "zero3": "DEEPSPEED", "fsdp": "FSDP"}[name]
    assert config.distributed_type == kind


def test_ddp_launches_multi_gpu_processes():
    args, env = launch_env("ddp")
    assert args.multi_gpu and not args.use_deepspeed and not args.use_fsdp and args.num_processes == 8
    assert env["ACCELERATE_MIXED_PRECISION"] == "bf16"


def test_zero2_shards_optimizer_and_gradients_only():
    args, env = launch_env("zero2")
    assert args.use_deepspeed and env["ACCELERATE_USE_DEEPSPEED"] == "true"
    assert env["ACCELERATE_DEEPSPEED_ZERO_STAGE"] == "2"
    assert env["ACCELERATE_DEEPSPEED_ZERO3_INIT"] == "false"
    assert env["ACCELERATE_DEEPSPEED_OFFLOAD_OPTIMIZER_DEVICE"] == "none"


def test_zero3_builds_sharded_and_saves_16_bit_weights():
    _, env = launch_env("zero3")
    assert env["ACCELERATE_DEEPSPEED_ZERO_STAGE"] == "3"
    assert env["ACCELERATE_DEEPSPEED_ZERO3_INIT"] == "true"
    assert env["ACCELERATE_DEEPSPEED_ZERO3_SAVE_16BIT_MODEL"] == "true"


def test_fsdp2_wraps_each_gemma_decoder_layer_of_a_lora_model(monkeypatch, tiny_model_dir):
    """The launcher's FSDP environment, read back by accelerate's plugin, wraps Gemma3DecoderLayer (from
    the model's _no_split_modules) in the PEFT-wrapped policy, and saves full state dicts."""
    from accelerate.utils import FullyShardedDataParallelPlugin
    from accelerate.utils.fsdp_utils import fsdp2_prepare_auto_wrap_policy
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    args, env = launch_env("fsdp")
    assert args.use_fsdp
    for key, value in env.items():
        if key.startswith(("FSDP_", "ACCELERATE_USE_FSDP")):
            monkeypatch.setenv(key, value)
    plugin = FullyShardedDataParallelPlugin()
    assert plugin.fsdp_version == 2 and plugin.state_dict_type.name == "FULL_STATE_DICT"
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir), LoraConfig(r=4, target_modules=["q_proj"]))
    policy = fsdp2_prepare_auto_wrap_policy(plugin, model)
    wrapped = [type(m).__name__ for m in model.modules() if policy(m)]
    assert wrapped == ["Gemma3DecoderLayer"] * model.config.num_hidden_layers


def test_cpu_zero2_config_starts_two_deepspeed_processes_in_float32():
    args, env = launch_env("zero2_cpu")
    assert args.use_deepspeed and args.num_processes == 2
    assert env["ACCELERATE_MIXED_PRECISION"] == "no" and env["ACCELERATE_DEEPSPEED_ZERO_STAGE"] == "2"


def cpu_train_config(*overrides: str):
    return compose_train("+task=gsm8k", "model=tiny", *overrides)


def test_deepspeed_on_cpu_without_a_backend_is_refused_naming_the_fix(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    with pytest.raises(ConfigError, match=r"\+trainer.ddp_backend=gloo"):
        check_deepspeed_on_cpu(cpu_train_config(), cuda=False)
    with pytest.raises(ConfigError, match="without DeepSpeed"):
        check_deepspeed_on_cpu(cpu_train_config("+trainer.ddp_backend=gloo", "+trainer.use_cpu=true"), cuda=False)
    check_deepspeed_on_cpu(cpu_train_config("+trainer.ddp_backend=gloo"), cuda=False)


def test_trainer_deepspeed_under_torchrun_on_cpu_points_to_accelerate(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("ACCELERATE_USE_DEEPSPEED", raising=False)
    with pytest.raises(ConfigError, match="conf/accelerate/zero2_cpu.yaml"):
        check_deepspeed_on_cpu(cpu_train_config("+trainer.deepspeed=ds.json"), cuda=False)


def test_single_process_and_gpu_runs_are_not_checked(monkeypatch):
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    monkeypatch.setenv("WORLD_SIZE", "1")
    check_deepspeed_on_cpu(cpu_train_config(), cuda=False)
    monkeypatch.setenv("WORLD_SIZE", "8")
    check_deepspeed_on_cpu(cpu_train_config(), cuda=True)
