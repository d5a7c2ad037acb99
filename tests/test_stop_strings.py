"""Training rollouts end at the task's stop string with an end-of-turn token TRL can mask after."""

import torch
from transformers import AutoTokenizer

from grpo.stop_strings import EndTurnAfterStopString, end_rollouts_at_stop_strings


class Scripted(torch.nn.Module):
    """A 'model' whose generate writes a fixed text token by token, asking the logits processors each step,
    as transformers' greedy search does."""

    def __init__(self, tokenizer, text):
        super().__init__()
        self.script = tokenizer(text, add_special_tokens=False)["input_ids"]
        self.vocab = len(tokenizer)

    def generate(self, input_ids, logits_processor=None, max_new_tokens=40, **kwargs):
        ids = input_ids
        for step in range(max_new_tokens):
            scores = torch.full((ids.shape[0], self.vocab), -1.0)
            if step < len(self.script):
                scores[:, self.script[step]] = 1.0
            for processor in logits_processor or []:
                scores = processor(ids, scores)
            ids = torch.cat([ids, scores.argmax(-1, keepdim=True)], dim=1)
            if (ids[:, -1] == 106).all():  # <end_of_turn>
                break
        return ids


def test_generation_ends_with_end_of_turn_right_after_the_stop_string(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    end_id = tokenizer.convert_tokens_to_ids("<end_of_turn>")
    model = Scripted(tokenizer, "<answer>\n42\n</answer> and then some unrelated text goes on")
    prompt = tokenizer("Q: the example said <answer>1</answer>", return_tensors="pt", add_special_tokens=False)
    end_rollouts_at_stop_strings(model, tokenizer, ["</answer>"], end_id)
    out = model.generate(input_ids=prompt["input_ids"])
    completion = out[0, prompt["input_ids"].shape[1]:].tolist()
    assert completion[-1] == end_id
    assert tokenizer.decode(completion[:-1]) == "<answer>\n42\n</answer>"  # not one token after it


def test_the_prompt_own_stop_string_does_not_end_generation(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    prompt = tokenizer("worked example: <answer>1</answer>", return_tensors="pt", add_special_tokens=False)
    processor = EndTurnAfterStopString(tokenizer, ["</answer>"], prompt["input_ids"].shape[1], end_id=106)
    scores = torch.zeros(1, len(tokenizer))
    assert torch.equal(processor(prompt["input_ids"], scores.clone()), scores)
