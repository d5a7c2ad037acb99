"""generate() of a GRPO rollout batch with and without `rollout.share_prompt_prefill`, on the same work.

    .venv/bin/python scripts/bench_shared_prefill.py [--prompts 2] [--group 4] [--new-tokens 96] [--repeats 3]

The embedded Gemma 3 270M (fp32, SDPA, CPU) generates `--new-tokens` tokens greedily with no end token,
so every call does exactly the same work, for `--prompts` GSM8K training prompts (the task's one-shot
prompt, chat template applied) each repeated `--group` times, as TRL's rollouts repeat them. The two
settings alternate; the minimum of each is printed, with the prefill alone (one forward over the
prompts: every row, or each distinct prompt once).
"""

import argparse
import json
import time

import torch


def seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def rollout_batch(tokenizer, prompts: int, group: int) -> tuple[torch.Tensor, torch.Tensor]:
    from tasks.build import build_task, load_task_file

    rows, _ = build_task(load_task_file("gsm8k")).load_split("train")
    texts = [tokenizer.apply_chat_template(row["prompt"], tokenize=False, add_generation_prompt=True)
             for row in rows[:prompts] for _ in range(group)]
    tokenizer.padding_side = "left"
    batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    return batch["input_ids"], batch["attention_mask"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=2)
    parser.add_argument("--group", type=int, default=4)
    parser.add_argument("--new-tokens", type=int, default=96)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    from grpo.embedded import embedded_model_dir, embedded_tokenizer_dir
    from grpo.shared_prefill import prefill_each_prompt_once, prompt_cache

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(embedded_tokenizer_dir())
    model = AutoModelForCausalLM.from_pretrained(embedded_model_dir(), dtype=torch.float32,
                                                 attn_implementation="sdpa").eval()
    ids, mask = rollout_batch(tokenizer, args.prompts, args.group)
    config = GenerationConfig(max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens, do_sample=False,
                              pad_token_id=tokenizer.pad_token_id, eos_token_id=None)
    plain_generate = model.generate
    prefill_each_prompt_once(model)
    shared_generate = model.generate

    def prefill_every_row():
        with torch.no_grad():
            model(input_ids=ids, attention_mask=mask, logits_to_keep=1)

    times = {"prefill, every row": [], "prefill, each prompt once": [], "generate, plain": [],
             "generate, shared prefill": []}
    outputs = {}
    for _ in range(args.repeats):
        times["prefill, every row"].append(seconds(prefill_every_row))
        times["prefill, each prompt once"].append(seconds(lambda: prompt_cache(model, ids, mask)))
        for name, generate in (("generate, plain", plain_generate), ("generate, shared prefill", shared_generate)):
            with torch.no_grad():
                times[name].append(seconds(lambda: outputs.__setitem__(
                    name, generate(input_ids=ids, attention_mask=mask, generation_config=config))))
    same = torch.equal(outputs["generate, plain"], outputs["generate, shared prefill"])
    result = {
        "rows": ids.shape[0], "distinct prompts": args.prompts, "prompt tokens (padded)": ids.shape[1],
        "new tokens": args.new_tokens, "threads": torch.get_num_threads(), "same tokens": same,
        **{name: round(min(values), 3) for name, values in times.items()},
        "all times": {name: [round(v, 3) for v in values] for name, values in times.items()},
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
