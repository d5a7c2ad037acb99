"""DeepSpeed ZeRO-2 on CPU, launched the way docs/distributed.md tells users: two processes, gloo.

It trains the tiny model 2 steps on a learnable synthetic reward and is compared with plain data
parallel (torchrun, trainer.use_cpu=true) on the same 2 processes and seed: ZeRO-2 only shards the
optimizer state and gradients, so in float32 both see the same completions and the same gradients
(measured: equal to all printed digits; 1e-4 relative leaves room for a different reduction order)."""

import json
import os
import subprocess
import sys

import pytest

from conftest import REPO

# xdist_group: one worker runs every test that opens torch.distributed's default port (make test: pytest -n 2)
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("torch_distributed")]
pytest.importorskip("deepspeed")

BIN = os.path.dirname(sys.executable)
TRAIN = [
    "-m", "grpo.train", "+task=gsm8k", "model=tiny", "logger=none", "eval.limit=0", "trainer.max_steps=2",
    "trainer.max_completion_length=8", "+trainer.top_k=4", "trainer.learning_rate=1e-3", "trainer.save_steps=2",
    # a reward the random tiny model's completions differ on, so gradients are not zero (tests/synthetic_rewards.py)
    "~rewards.stack", "+rewards.stack={even:{_target_:synthetic_rewards.even_token_share}}",
]


def launch(launcher: list[str], extra: list[str], run_dir) -> None:
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'tests'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    result = subprocess.run([*launcher, *TRAIN, *extra, f"hydra.run.dir={run_dir}"], cwd=REPO, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=600)
    assert result.returncode == 0, result.stdout[-4000:]


def grad_norms(run_dir) -> dict[int, float]:
    """grad_norm per step (the last row of a step wins, however many ranks wrote rows)."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {row["step"]: row["grad_norm"] for row in rows if "grad_norm" in row}


def lora_b_total(run_dir) -> float:
    from safetensors.torch import load_file

    weights = load_file(run_dir / "adapter" / "adapter_model.safetensors")
    return sum(tensor.abs().sum().item() for name, tensor in weights.items() if "lora_B" in name)


def test_zero2_on_two_cpu_processes_trains_like_data_parallel(tmp_path):
    zero2, ddp = tmp_path / "zero2", tmp_path / "ddp"
    launch([f"{BIN}/accelerate", "launch", "--config_file", "conf/accelerate/zero2_cpu.yaml"],
           ["+trainer.ddp_backend=gloo"], zero2)
    launch([f"{BIN}/torchrun", "--nproc_per_node", "2"], ["+trainer.use_cpu=true"], ddp)

    # DeepSpeed really ran, sharded: one ZeRO optimizer-state file per rank in the checkpoint
    shards = sorted(p.name for p in (zero2 / "checkpoint-2" / "global_step2").glob("zero_pp_rank_*_optim_states.pt"))
    assert shards == ["zero_pp_rank_0_mp_rank_00_optim_states.pt", "zero_pp_rank_1_mp_rank_00_optim_states.pt"]

    zero2_norms, ddp_norms = grad_norms(zero2), grad_norms(ddp)
    assert sorted(zero2_norms) == [1, 2] and zero2_norms[1] > 0
    for step in (1, 2):  # step 2's gradient is taken after step 1's update: the updates agree too
        assert zero2_norms[step] == pytest.approx(ddp_norms[step], rel=1e-4), (zero2_norms, ddp_norms)
    assert lora_b_total(zero2) > 0  # LoRA B starts at zero: the adapter was trained
    assert lora_b_total(zero2) == pytest.approx(lora_b_total(ddp), rel=1e-4)
