"""The GRPO training pass (log-prob forward + backward) with and without `batch.share_prompt_forward` and
`batch.cpu_lean_logprob_head`, on the same work.

    .venv/bin/python scripts/bench_training_pass.py [--prompts 2] [--group 4] [--completion-tokens 96] [--repeats 3]

The embedded Gemma 3 270M (fp32, SDPA, CPU) with the default LoRA (r16 on all 7 projections) and TRL's
fused LM head, as the default step trains it (completion positions only). The micro-batch is
`--prompts` GSM8K training prompts (the task's one-shot prompt, chat template applied, left-padded) each
repeated `--group` times, followed by `--completion-tokens` fixed random tokens per row, so every variant
does exactly the same work. Each repeat times the four variants in turn (forward, then backward of
sum(log-prob x advantage)): TRL's pass, TRL's pass with the in-place head tiles, each prompt once, both.
The minimum of each is printed, and the largest difference of each variant's log-probabilities and LoRA
gradients from TRL's. Last, TRL's fused head alone (forward and backward over the completion tokens'
hidden states) with TRL's tiles and the in-place ones, alternating.
"""

import argparse
import json
import time
from contextlib import nullcontext
from types import SimpleNamespace

import torch
from bench_shared_prefill import rollout_batch


def time_head_alone(policy, completions, repeats, lean_logprob_head_on_cpu, patched_for_run) -> dict:
    """TRL's fused log-prob head by itself (forward + backward to the hidden states) over every completion
    token, with TRL's tiles and with the in-place ones, alternating."""
    from trl.kernels import ChunkedLogProbFunction

    weight = policy.get_output_embeddings().weight
    generator = torch.Generator().manual_seed(1)
    hidden = torch.randn(completions.numel(), weight.shape[1], generator=generator)
    targets = completions.reshape(-1)
    times = {"TRL tiles": [], "in-place tiles": []}
    for _ in range(repeats):
        for name in times:
            with patched_for_run():
                if name == "in-place tiles":
                    lean_logprob_head_on_cpu()
                leaf = hidden.clone().requires_grad_(True)
                start = time.perf_counter()
                logprobs, entropy, *_ = ChunkedLogProbFunction.apply(leaf, weight, None, targets, 1.0, 32768, None,
                                                                     1.0, ("log_probs", "entropy"))
                logprobs.sum().backward()
                times[name].append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=2)
    parser.add_argument("--group", type=int, default=4)
    parser.add_argument("--completion-tokens", type=int, default=96)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl.trainer.utils import add_fused_lm_head

    from grpo.embedded import embedded_model_dir, embedded_tokenizer_dir
    from grpo.patches import (lean_logprob_head_on_cpu, patched_for_run, score_only_completion_tokens_on_cpu,
                              trl_log_prob_pass)
    from grpo.shared_prompt_forward import shared_prompt_logps

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(embedded_tokenizer_dir())
    model = AutoModelForCausalLM.from_pretrained(embedded_model_dir(), dtype=torch.float32,
                                                 attn_implementation="sdpa")
    add_fused_lm_head(model, outputs=("log_probs", "entropy"))
    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    policy = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules=targets, task_type="CAUSAL_LM"))
    with torch.no_grad():
        for name, param in policy.named_parameters():
            if "lora_B" in name:
                param.normal_(std=0.01)  # a trained adapter, not PEFT's zero start
    policy.train()

    prompt_ids, prompt_mask = rollout_batch(tokenizer, args.prompts, args.group)
    rows, n = prompt_ids.shape[0], args.completion_tokens
    completions = torch.randint(1000, 100_000, (rows, n))
    ids = torch.cat([prompt_ids, completions], dim=1)
    mask = torch.cat([prompt_mask, torch.ones_like(completions)], dim=1)
    advantages = torch.linspace(-1.0, 1.0, rows).unsqueeze(1)
    trl_pass = trl_log_prob_pass()
    trainer = SimpleNamespace(accelerator=SimpleNamespace(autocast=nullcontext))

    def trl_every_row():
        return trl_pass(trainer, policy, ids, mask, n, compute_entropy=True)[:2]

    def each_prompt_once():
        return shared_prompt_logps(policy, ids, mask, n, compute_entropy=True)

    variants = {"TRL": (trl_every_row, False), "TRL, in-place head": (trl_every_row, True),
                "each prompt once": (each_prompt_once, False), "both": (each_prompt_once, True)}
    times = {f"{name}, {part}": [] for name in variants for part in ("forward", "backward")}
    results = {}
    for _ in range(args.repeats):
        for name, (run_pass, lean_head) in variants.items():
            policy.zero_grad(set_to_none=True)
            with patched_for_run():
                score_only_completion_tokens_on_cpu()  # as every CPU run of ours
                if lean_head:
                    lean_logprob_head_on_cpu()
                start = time.perf_counter()
                logps, _ = run_pass()
                middle = time.perf_counter()
                (logps * advantages).sum().backward()
                end = time.perf_counter()
            times[f"{name}, forward"].append(middle - start)
            times[f"{name}, backward"].append(end - middle)
            grads = {k: p.grad.clone() for k, p in policy.named_parameters() if p.requires_grad}
            results[name] = (logps.detach(), grads)
    head_times = time_head_alone(policy, completions, args.repeats, lean_logprob_head_on_cpu, patched_for_run)
    plain_logps, plain_grads = results["TRL"]
    positions = {"TRL": rows * ids.shape[1],
                 "each prompt once": args.prompts * (prompt_ids.shape[1] - 1) + rows * (n + 1)}
    differences = {
        name: {"max |log-prob difference|": float((logps - plain_logps).abs().max()),
               "max relative gradient difference": max(
                   float((grads[k] - g).norm() / g.norm().clamp(min=1e-30)) for k, g in plain_grads.items())}
        for name, (logps, grads) in results.items() if name != "TRL"}
    result = {
        "rows": rows, "distinct prompts": args.prompts, "prompt tokens (padded)": prompt_ids.shape[1],
        "completion tokens per row": n, "threads": torch.get_num_threads(), "positions encoded": positions,
        "differences from TRL": differences,
        **{name: round(min(values), 3) for name, values in times.items()},
        **{f"{name}, forward + backward": round(min(f + b for f, b in zip(times[f"{name}, forward"],
                                                                          times[f"{name}, backward"])), 3)
           for name in variants},
        **{f"head alone, {name}": round(min(values), 3) for name, values in head_times.items()},
        "all times": {name: [round(v, 3) for v in values] for name, values in {**times, **head_times}.items()},
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
