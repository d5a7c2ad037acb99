"""vLLM rollouts on CPU (vLLM's CPU build; `make test-vllm`): the training CLI, and the weight sync.

Skipped where vLLM is not installed, so the main suite (`make test`) never starts an engine. The tiny
model has head_dim=32 (conf/model/tiny.yaml): vLLM's CPU attention has no kernel for 16.
"""

import json
import math
from importlib.util import find_spec
from pathlib import Path

import pytest

from compose import compose_train
from conftest import run_cli

pytestmark = [
    pytest.mark.vllm,
    pytest.mark.slow,
    pytest.mark.skipif(find_spec("vllm") is None, reason="needs vLLM (make test-vllm)"),
]

TINY_FOR_VLLM = ("model=tiny",)


def test_vllm_colocated_run_trains_on_its_own_rollouts_two_optimizer_steps_each(tmp_path):
    # each vLLM rollout serves 2 optimizer steps (the CPU profile's default is 4): steps 1 and 3 generate,
    # step 3 from the weights synced after step 2; the evaluations generate on the same engine
    result = run_cli(
        "grpo.train",
        "+task=gsm8k",
        *TINY_FOR_VLLM,
        "rollout=vllm_colocate_cpu",
        "trainer.max_steps=4",
        "batch.optimizer_steps_per_generation=2",
        "trainer.max_completion_length=8",
        "batch.prompts_per_step=1",
        "logger=none",
        "eval.limit=2",
        "eval.every_n_steps=2",
        "eval.max_new_tokens=8",
        f"hydra.run.dir={tmp_path}",
        timeout=1500,
    )
    assert result.returncode == 0, result.output[-3000:]
    assert (tmp_path / "adapter" / "adapter_config.json").exists()
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    steps = [row for row in rows if "loss" in row]
    assert [row["step"] for row in steps] == [1, 2, 3, 4]
    assert all(math.isfinite(row["loss"]) for row in steps)
    generating = [row for row in steps if "completions/mean_length" in row]
    assert [row["step"] for row in generating] == [1, 3]
    for row in generating:
        assert row["completions/mean_length"] > 0
        # vLLM's logprobs of its own samples match the policy's: both float32, same weights after the sync
        assert row["sampling/sampling_logp_difference/max"] < 1e-3, row
    assert "rollout=vllm_colocate_cpu" in result.output
    # evaluated before, during (step 2) and after on the colocated engine, each time after a sync
    evaluations = [row for row in rows if "eval/phase" in row]
    assert [(row["step"], row["eval/phase"], row["eval/generator"]) for row in evaluations] == [
        (0, "before", "vllm"), (2, "during", "vllm"), (4, "after", "vllm")]


@pytest.fixture(scope="module")
def colocated_run(tmp_path_factory):
    """A GRPO run (trainer, evaluation, ...) with a colocated vLLM engine, built as grpo.train builds it
    (engine start ~1 min, shared by the tests below)."""
    import grpo.train as train
    from trl.generation import vllm_generation

    from tasks import build_task
    from grpo.validate import validate_training_config
    from grpo.vllm_env import prepare_vllm

    tmp_path = tmp_path_factory.mktemp("colocated")
    with pytest.MonkeyPatch.context() as monkeypatch:
        # TRL and vLLM write these into os.environ; monkeypatch restores them after the tests
        for key in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "VLLM_CPU_KVCACHE_SPACE"):
            monkeypatch.delenv(key, raising=False)
        monkeypatch.setattr(vllm_generation, "LLM", vllm_generation.LLM)
        monkeypatch.setattr(vllm_generation.VLLMGeneration, "sync_weights", vllm_generation.VLLMGeneration.sync_weights)

        cfg = compose_train(
            "+task=gsm8k", *TINY_FOR_VLLM, "rollout=vllm_colocate_cpu", "trainer.max_steps=1", "logger=none",
            "eval.limit=4", "eval.max_new_tokens=16", "profile=cpu", f"output_dir={tmp_path}",
        )
        plan, reward_funcs, reward_weights = validate_training_config(cfg, cuda=False)
        args = train.grpo_config(cfg, plan, reward_weights, [], Path(tmp_path))
        dataset, _ = build_task(cfg.task).hf_dataset("train")
        model, tokenizer = train.load_policy(cfg)
        prepare_vllm(cfg.rollout, cfg.model)
        yield train.build_trainer(cfg, args, model, tokenizer, dataset, reward_funcs, Path(tmp_path))


@pytest.fixture
def colocated_trainer(colocated_run):
    return colocated_run.trainer


def randomize_adapter(model, seed: int) -> None:
    """Random LoRA B matrices: the adapter then changes the policy's greedy output."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.5)


def vllm_greedy(trainer, prompt_ids, new_tokens):
    from vllm import SamplingParams

    params = SamplingParams(temperature=0.0, max_tokens=new_tokens, min_tokens=new_tokens, ignore_eos=True)
    output = trainer.vllm_generation.llm.generate([{"prompt_token_ids": prompt_ids}], params, use_tqdm=False)
    return list(output[0].outputs[0].token_ids)


def hf_greedy(model, prompt_ids, new_tokens):
    import torch

    inputs = torch.tensor([prompt_ids])
    model.eval()
    with torch.no_grad():
        output = model.generate(
            input_ids=inputs, attention_mask=torch.ones_like(inputs), do_sample=False,
            max_new_tokens=new_tokens, min_new_tokens=new_tokens,
        )
    return output[0, len(prompt_ids):].tolist()


def test_weight_sync_carries_the_lora_update_into_vllm(colocated_trainer):
    trainer = colocated_trainer
    tokenizer = trainer.processing_class
    messages = [{"role": "user", "content": "What is 12 plus 30? Answer with a number."}]
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    prompt_ids = tokenizer(text, add_special_tokens=False)["input_ids"]  # the template starts with <bos>
    new_tokens = 16

    base_in_vllm = vllm_greedy(trainer, prompt_ids, new_tokens)
    randomize_adapter(trainer.model, seed=0)
    policy = hf_greedy(trainer.model, prompt_ids, new_tokens)
    assert policy != base_in_vllm, "the random adapter must change greedy output for this test to mean anything"

    trainer.vllm_generation.sync_weights()

    assert vllm_greedy(trainer, prompt_ids, new_tokens) == policy
    # the sync merged and unmerged the adapter: the policy itself is unchanged
    assert hf_greedy(trainer.model, prompt_ids, new_tokens) == policy


def test_in_training_evaluation_generates_on_the_synced_engine(colocated_run):
    """eval.generator=auto with a colocated engine: each evaluation syncs the policy into the engine first
    and generates there, answer for answer what transformers generates on the policy (greedy, float32)."""
    from grpo.distributed_eval import generator_context

    trainer, evaluation = colocated_run.trainer, colocated_run.evaluation
    tokenizer = trainer.processing_class
    randomize_adapter(trainer.model, seed=1)
    question = evaluation._data(full=False)[0][1][0]["prompt"]
    text = tokenizer.apply_chat_template(question, add_generation_prompt=True, tokenize=False)
    prompt_ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    # the engine holds the weights of before: without the sync its answers would not be the policy's
    assert vllm_greedy(trainer, prompt_ids, 16) != hf_greedy(trainer.model, prompt_ids, 16)

    def evaluate(context):
        evaluation.generator_context = context
        row = evaluation.evaluate(trainer.state, trainer.model, tokenizer, "during")
        samples = (evaluation.samples_dir / f"samples_step-{trainer.state.global_step}.jsonl").read_text()
        return row, [json.loads(line)["completion"] for line in samples.splitlines()]

    engine_row, engine_answers = evaluate(evaluation.generator_context)  # as build_trainer set it
    hf_row, hf_answers = evaluate(generator_context(trainer))
    assert (engine_row["eval/generator"], hf_row["eval/generator"]) == ("vllm", "transformers")
    assert len(engine_answers) == 4 and any(engine_answers)
    assert engine_answers == hf_answers
