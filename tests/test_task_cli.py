"""Every task trains and evaluates from the command line (tiny model, one step), and a task written
outside the package, yaml and module both, runs with no package file changed."""

import json
import shutil

import pytest
from omegaconf import OmegaConf

from conftest import REPO, run_cli

pytestmark = pytest.mark.slow

FIXTURES = REPO / "tests" / "fixtures" / "tasks"
TINY_RUN = ("model=tiny", "profile=cpu", "logger=none", "trainer.max_steps=1", "trainer.max_completion_length=8",
            "batch.prompts_per_step=1", "trainer.num_generations=2", "eval.limit=2", "eval.max_new_tokens=8",
            "batch.optimizer_steps_per_generation=1", "dynamic_sampling.enabled=false")
TASK_ARGS = {  # gsm8k: tests/test_train_cli.py
    "pubmedqa": [],
    "reasoning_gym": ["task.train_size=50", "task.test_size=50"],
    "math": [f"task.data_files={{train:'{FIXTURES / 'math_train.jsonl'}',test:'{FIXTURES / 'math_test.jsonl'}'}}"],
    "custom": [f"task.data_files={{train:'{FIXTURES / 'countdown.jsonl'}',test:'{FIXTURES / 'countdown.jsonl'}'}}",
               "task.answer_column=target"],
}


def _metrics(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("name", sorted(TASK_ARGS))
def test_each_task_trains_and_evaluates_before_and_after(name, tmp_path, tiny_model_dir):
    result = run_cli("grpo.train", f"+task={name}", *TASK_ARGS[name], *TINY_RUN, f"hydra.run.dir={tmp_path}")
    assert result.returncode == 0, result.output[-3000:]
    rows = _metrics(tmp_path)
    evaluations = [row for row in rows if "eval/phase" in row]
    assert [row["eval/phase"] for row in evaluations] == ["before", "after"]
    assert all(row[f"eval/{name}/n"] == 2 for row in evaluations)
    step = [row for row in rows if "loss" in row][0]
    assert "rewards/correctness/mean" in step
    assert (tmp_path / "adapter" / "adapter_config.json").exists()
    resolved = OmegaConf.load(tmp_path / "resolved_config.yaml")  # the values the run used, not nulls
    assert (resolved.trainer.per_device_train_batch_size, resolved.trainer.gradient_accumulation_steps) == (2, 1)
    assert resolved.trainer.bf16 is False and resolved.trainer.use_vllm is False and resolved.profile == "cpu"


def test_a_task_of_your_own_runs_without_touching_the_package(tmp_path, tiny_model_dir):
    """The README's "write your own task": a yaml in your config dir and a Task subclass on PYTHONPATH."""
    mine = tmp_path / "mine"
    (mine / "conf" / "task").mkdir(parents=True)
    shutil.copy(REPO / "tests" / "fixtures" / "my_tasks.py", mine / "my_tasks.py")
    words = FIXTURES / "words.jsonl"
    (mine / "conf" / "task" / "reverse.yaml").write_text(
        "# @package _global_\n"
        "defaults:\n  - override /rewards: task\n"
        "task:\n  _target_: my_tasks.Reverse\n  name: reverse\n  answer_type: text\n  reasoning_tag: null\n"
        "  system_prompt: Reverse the word. Give only the reversed word inside <answer> </answer> tags.\n"
        f"  data_files: {{train: '{words}', test: '{words}'}}\n"
    )
    run_dir = tmp_path / "run"
    result = run_cli("grpo.train", f"hydra.searchpath=[file://{mine / 'conf'}]", "+task=reverse", *TINY_RUN,
                     f"hydra.run.dir={run_dir}", env={"PYTHONPATH": str(mine)})
    assert result.returncode == 0, result.output[-3000:]
    assert "words.jsonl train: 3 rows, 2 usable, 1 left out (1 not a word)" in result.output
    assert [row["eval/reverse/n"] for row in _metrics(run_dir) if "eval/phase" in row] == [2, 2]

    eval_dir = tmp_path / "eval"
    result = run_cli("eval.run", f"hydra.searchpath=[file://{mine / 'conf'}]", "+task=reverse", "model=tiny",
                     "profile=cpu", "eval.limit=2", "eval.max_new_tokens=4", f"hydra.run.dir={eval_dir}",
                     env={"PYTHONPATH": str(mine)})
    assert result.returncode == 0, result.output[-3000:]
    assert json.loads((eval_dir / "eval_results.json").read_text())["reverse/n"] == 2
