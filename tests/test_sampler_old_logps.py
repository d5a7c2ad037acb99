"""The sampler's record of each drawn token's log-probability replaces TRL's old-log-prob pass
(grpo/sampler_old_logps.py): the same values as a forward pass of the policy, forced tokens included."""

import json

import pytest
import torch
from omegaconf import OmegaConf
from transformers import AutoTokenizer, GenerationConfig

from compose import compose_train
from grpo.fast_decode import speed_up_generation
from grpo.sampler_old_logps import SampledLogps
from grpo.stop_strings import end_rollouts_at_stop_strings
from grpo.validate import ConfigError
from test_fast_decode import tiny_lora

ROLLOUT = OmegaConf.create({"name": "hf", "drop_finished_rows": True, "share_prompt_prefill": True, "merge_lora": True,
                            "cpu_transposed_head": True, "inverse_cdf_sampling": True})
TEMPERATURE = 0.8


def rollout(tiny_model_dir, monkeypatch, force_row0_at: int | None = None, arm: bool = True, **config):
    """A LoRA policy with every rollout speed-up, the stop-string processor (made to force end-of-turn in
    row 0 at generated column `force_row0_at`), 2 prompts x 2 rows, 6 new tokens, recorded."""
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    end_id = tokenizer.convert_tokens_to_ids("<end_of_turn>")
    model = tiny_lora(tiny_model_dir)
    recorder = SampledLogps()
    speed_up_generation(ROLLOUT, model, recorder)
    end_rollouts_at_stop_strings(model, tokenizer, ["</answer>"], end_id)
    prompt = 4

    def reached_stop(tokenizer, stops, input_ids, prompt_length):
        generated = input_ids.shape[1] - prompt_length
        return [row == 0 and generated == force_row0_at for row in range(input_ids.shape[0])]

    monkeypatch.setattr("grpo.stop_strings.reached_stop", reached_stop)
    torch.manual_seed(1)
    ids = torch.randint(10, 200, (2, prompt)).repeat_interleave(2, dim=0)
    plain = dict(do_sample=True, temperature=TEMPERATURE, top_k=0, top_p=1.0, max_new_tokens=6, pad_token_id=0,
                 eos_token_id=end_id)
    generation = GenerationConfig(**{**plain, **config})
    if arm:
        recorder.arm()
    with torch.no_grad():
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), generation_config=generation)
    return model, recorder, out, prompt, end_id


def forward_logps(model, sequences, prompt):
    """log softmax(logits / T) of each generated token from one full forward of the policy (TRL's pass)."""
    with torch.no_grad():
        logits = model(input_ids=sequences).logits[:, prompt - 1:-1] / TEMPERATURE
    return logits.log_softmax(-1).gather(-1, sequences[:, prompt:, None]).squeeze(-1)


def test_recorded_log_probabilities_are_the_policys_forced_tokens_included(tiny_model_dir, monkeypatch):
    model, recorder, out, prompt, end_id = rollout(tiny_model_dir, monkeypatch, force_row0_at=2)
    completions = out[:, prompt:]
    assert completions[0, 2] == end_id  # forced
    mask = torch.ones_like(completions)
    mask[0, 3:] = 0  # TRL masks after the end-of-turn
    recorded = recorder.take(completions, mask)
    assert recorded is not None, recorder.refusal
    expected = forward_logps(model, out, prompt).masked_fill(mask == 0, 0.0)
    torch.testing.assert_close(recorded, expected, atol=1e-4, rtol=1e-4)
    assert recorded[0, 2] < 0  # the policy's own log-probability of the forced token, not the forced 0


def test_completions_other_than_the_recorded_ones_are_refused(tiny_model_dir, monkeypatch):
    _, recorder, out, prompt, _ = rollout(tiny_model_dir, monkeypatch)
    completions = out[:, prompt:].clone()
    completions[1, 3] += 1
    assert recorder.take(completions, torch.ones_like(completions)) is None
    assert "differ" in recorder.refusal
    assert recorder.take(out[:, prompt:], torch.ones_like(completions)) is None  # used up


def test_a_distribution_reshaped_by_generate_itself_is_not_recorded(tiny_model_dir, monkeypatch):
    _, recorder, out, prompt, _ = rollout(tiny_model_dir, monkeypatch, repetition_penalty=1.3)
    assert recorder.take(out[:, prompt:], torch.ones_like(out[:, prompt:])) is None
    assert "RepetitionPenalty" in recorder.refusal


def test_a_top_k_cut_is_not_recorded(tiny_model_dir, monkeypatch):
    # TRL's pass scores the whole tempered distribution; the sampler drew from its top-k cut
    _, recorder, out, prompt, _ = rollout(tiny_model_dir, monkeypatch, top_k=4)
    assert recorder.take(out[:, prompt:], torch.ones_like(out[:, prompt:])) is None
    assert "top_k=4" in recorder.refusal


def test_nothing_is_recorded_unless_armed(tiny_model_dir, monkeypatch):
    _, recorder, out, prompt, _ = rollout(tiny_model_dir, monkeypatch, arm=False)
    assert recorder.recordings == [] and recorder.refusal is None


def test_optimizer_steps_per_generation_is_checked_and_steps_per_generation_is_derived():
    from grpo.validate import check_batches

    for bad in ("0", "1.5", "many"):
        with pytest.raises(ConfigError, match="batch.optimizer_steps_per_generation"):
            check_batches(compose_train("+task=gsm8k", "model=tiny", f"batch.optimizer_steps_per_generation={bad}"))
    with pytest.raises(ConfigError, match="trainer.steps_per_generation is derived"):
        check_batches(compose_train("+task=gsm8k", "model=tiny", "trainer.steps_per_generation=4"))


@pytest.mark.slow
def test_a_run_whose_rollouts_serve_two_steps_takes_the_sampler_record(tmp_path):
    from grpo.train import run_training

    cfg = compose_train("+task=gsm8k", "model=tiny", "profile=cpu", f"output_dir={tmp_path}", "logger=none",
                        "eval.limit=0", "trainer.max_steps=4", "trainer.max_completion_length=8",
                        "trainer.save_strategy=no", "batch.optimizer_steps_per_generation=2")
    run_training(cfg)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    used = [row["sampler_old_logps/used"] for row in rows if "sampler_old_logps/used" in row]
    assert used == [1.0, 1.0]  # steps 1 and 3 generate for two steps each
    assert all(row.get("loss") is not None and row["loss"] == row["loss"] for row in rows if "reward" in row)
