"""Is an export the trained model? Greedy continuations of the same prompt tokens, compared token by token.

Used by tests/test_export.py and scripts/export_agreement.py. The prompts are tokenized once, with the
run's own tokenizer and chat template, and every model continues the same ids, so the comparison sees the
weights alone. Two figures: free-running agreement (each model continues its own text; one divergence
costs every later position) and teacher-forced agreement (each position given the reference's prefix).
The loop is plain argmax with the KV cache and without stop tokens: two models that differ only in their
generation config's end-of-turn ids still produce comparable, equally long sequences.
"""

from collections.abc import Sequence

PROMPTS = (
    "Natalia sold clips to 48 of her friends in April, and then half as many in May. How many in all?",
    "What is 12 times 7?",
    "Write one sentence about the sea.",
    "A train travels 60 km in 1.5 hours. What is its average speed?",
)


def prompt_ids(tokenizer, prompts: Sequence[str | list[dict]] = PROMPTS) -> list[list[int]]:
    """Each prompt (a user message, or a whole chat such as Task.prompt builds) with the generation prompt,
    as evaluation and training format it."""
    chats = [[{"role": "user", "content": p}] if isinstance(p, str) else list(p) for p in prompts]
    texts = [tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True) for chat in chats]
    return [tokenizer(text, add_special_tokens=False)["input_ids"] for text in texts]


def greedy_continuations(model, prompts: list[list[int]], new_tokens: int) -> list[list[int]]:
    import torch

    model.eval()
    results = []
    with torch.no_grad():
        for ids in prompts:
            output = model(input_ids=torch.tensor([ids]), use_cache=True, logits_to_keep=1)
            tokens = []
            for _ in range(new_tokens):
                tokens.append(int(output.logits[0, -1].argmax()))
                output = model(input_ids=torch.tensor([[tokens[-1]]]), past_key_values=output.past_key_values,
                               use_cache=True, logits_to_keep=1)
            results.append(tokens)
    return results


def teacher_forced_agreement(model, prompts: list[list[int]], reference: list[list[int]]) -> float:
    """Share of the reference's tokens that `model` also predicts first, each given the reference's own
    prefix: one early divergence costs one position, not every later one (the usual top-1 agreement)."""
    import torch

    model.eval()
    hits = total = 0
    with torch.no_grad():
        for ids, continuation in zip(prompts, reference, strict=True):
            logits = model(input_ids=torch.tensor([ids + continuation])).logits[0]
            predicted = logits[len(ids) - 1 : len(ids) - 1 + len(continuation)].argmax(-1).tolist()
            hits += sum(a == b for a, b in zip(predicted, continuation))
            total += len(continuation)
    return hits / total


def token_agreement(reference: list[list[int]], other: list[list[int]]) -> float:
    """Share of positions where the two greedy continuations hold the same token (free-running: once
    they diverge, later positions usually differ too, so this is a strict measure)."""
    pairs = [(a, b) for ref, oth in zip(reference, other, strict=True) for a, b in zip(ref, oth, strict=True)]
    return sum(a == b for a, b in pairs) / len(pairs)


def randomize_lora_b(model, scale: float, seed: int = 0) -> None:
    """Give a fresh LoRA model non-zero B matrices (seeded), so a stand-in adapter really changes the
    output: peft starts B at zero, and a zero adapter would make every comparison with the base pass."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * scale)
