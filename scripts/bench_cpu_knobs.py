"""What sets the generation time of the CPU default run: micro-benchmarks of the Gemma 3 270M forward.

    OMP_NUM_THREADS=2 .venv/bin/python scripts/bench_cpu_knobs.py [--rounds 3] [--decode-steps 8] [--json out.json]

A GRPO step on CPU generates with transformers generate(): one prefill of the (left-padded) prompts,
repeated num_generations times, then one cached forward per new token. This times both pieces for the
model as profile=cpu loads it (embedded Gemma 3 270M, fp32; eager attention as the baseline) on a real GSM8K prompt of
the task as our tokenizer encodes it, and changes one knob at a time:

  threads       torch.set_num_threads 1 vs 2
  attention     eager vs sdpa
  dtype         float32 vs bfloat16
  batch         sequences per generate(): 4 / 8 / 16 (prompts_per_step 1 / 2 / 4 at 4 generations)
  kv cache      without the cache every new token re-runs the whole prefix: cost per token = one prefill
  lm_head       the 640 x 262,144 output projection alone at batch 8, against a whole decode step

The decode steps of every configuration are timed in interleaved rounds (A, B, C, A, B, C, ...) and
reported as medians, so the load of a shared machine falls on all of them alike; prefills are long and
timed once per configuration (read them as rough). Estimated generate() time for a step:
prefill + max_new_tokens x decode step.
"""

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def real_prompt_ids(tokenizer):
    """The training prompt of the first GSM8K row whose length is closest to the median of 64 rows."""
    from hydra import compose, initialize_config_dir

    from tasks import build_task

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base=None):
        cfg = compose(config_name="train", overrides=["+task=gsm8k", "profile=cpu", "output_dir=/tmp/unused"])
    rows, _ = build_task(cfg.task).hf_dataset("train")
    encoded = [
        tokenizer.apply_chat_template(rows[i]["prompt"], add_generation_prompt=True, tokenize=True, return_dict=True)[
            "input_ids"
        ]
        for i in range(64)
    ]
    median = statistics.median(len(ids) for ids in encoded)
    return min(encoded, key=lambda ids: abs(len(ids) - median)), [len(ids) for ids in encoded], cfg


class Config:
    def __init__(self, name, model, threads, batch):
        self.name, self.model, self.threads, self.batch = name, model, threads, batch
        self.decode: list[float] = []
        self.prefill_s = None
        self.cache = None
        self.next_ids = None


def prefill(config, prompt):
    import torch

    torch.set_num_threads(config.threads)
    ids = torch.tensor([prompt] * config.batch)
    with torch.no_grad():
        started = time.perf_counter()
        out = config.model(input_ids=ids, use_cache=True, logits_to_keep=1)
        config.prefill_s = time.perf_counter() - started
    config.cache = out.past_key_values
    config.next_ids = out.logits[:, -1:].argmax(-1)
    config.position = len(prompt)


def decode_steps(config, steps: int) -> float:
    """Median seconds of one cached decode step (batch config.batch), over `steps` steps."""
    import torch

    torch.set_num_threads(config.threads)
    times = []
    with torch.no_grad():
        for _ in range(steps):
            started = time.perf_counter()
            out = config.model(input_ids=config.next_ids, past_key_values=config.cache, use_cache=True, logits_to_keep=1)
            times.append(time.perf_counter() - started)
            config.cache, config.next_ids = out.past_key_values, out.logits[:, -1:].argmax(-1)
    return statistics.median(times)


def lm_head_alone(model, threads: int, batch: int, repeats: int = 8) -> float:
    import torch

    torch.set_num_threads(threads)
    hidden = torch.randn(batch, 1, model.config.hidden_size, dtype=model.dtype)
    times = []
    with torch.no_grad():
        for _ in range(repeats):
            started = time.perf_counter()
            model.lm_head(hidden)
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--decode-steps", type=int, default=8, help="cached decode steps timed per round")
    parser.add_argument("--max-new-tokens", type=int, default=96, help="for the per-step estimate (profile=cpu)")
    parser.add_argument("--skip", nargs="*", default=[], help="configuration names to leave out")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    import torch
    from transformers import AutoModelForCausalLM

    from grpo.models import load_tokenizer, resolve_model_path

    load_start = os.getloadavg()
    from omegaconf import OmegaConf

    model_cfg = OmegaConf.load(ROOT / "conf" / "model" / "gemma3-270m.yaml")
    path = resolve_model_path(model_cfg)
    tokenizer = load_tokenizer(model_cfg, path)
    prompt, lengths, _ = real_prompt_ids(tokenizer)
    eager = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation="eager").eval()
    sdpa = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation="sdpa").eval()
    configs = [
        Config("baseline: 1 thread, eager, fp32, batch 8", eager, 1, 8),
        Config("2 threads", eager, 2, 8),
        Config("sdpa", sdpa, 1, 8),
        Config("batch 4 (1 prompt)", eager, 1, 4),
        Config("batch 16 (4 prompts)", eager, 1, 16),
    ]
    if "bf16" not in args.skip:
        bf16 = AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16, attn_implementation="eager").eval()
        configs.append(Config("bf16", bf16, 1, 8))
    configs = [c for c in configs if c.name not in args.skip]
    for config in configs:
        prefill(config, prompt)
        print(f"prefill {config.name}: {config.prefill_s:.2f} s", flush=True)
    head = {1: [], 2: []}
    for _ in range(args.rounds):
        for config in configs:
            config.decode.append(decode_steps(config, args.decode_steps))
        for threads in head:
            head[threads].append(lm_head_alone(eager, threads, 8))
    result = {
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "loadavg_start": load_start,
        "loadavg_end": os.getloadavg(),
        "prompt_tokens": len(prompt),
        "prompt_tokens_median_of_64": statistics.median(lengths),
        "max_new_tokens": args.max_new_tokens,
        "configs": [],
        "lm_head_alone_batch8_s": {t: statistics.median(v) for t, v in head.items()},
    }
    for config in configs:
        decode = statistics.median(config.decode)
        result["configs"].append({
            "name": config.name,
            "threads": config.threads,
            "batch": config.batch,
            "prefill_s": config.prefill_s,
            "decode_step_s": decode,
            "decode_step_s_rounds": config.decode,
            "decode_tokens_per_s": config.batch / decode,
            "estimated_generate_s": config.prefill_s + args.max_new_tokens * decode,
            "estimated_generate_s_without_kv_cache": args.max_new_tokens * config.prefill_s,
        })
    base = result["configs"][0]["decode_step_s"]
    result["lm_head_share_of_decode_step"] = result["lm_head_alone_batch8_s"][1] / base
    print(f"prompt: {len(prompt)} tokens (median of 64 GSM8K training prompts: {statistics.median(lengths)})")
    print("config                                   prefill_s  decode_step_s [rounds]          tok/s  est. generate_s")
    for c in result["configs"]:
        rounds = ", ".join(f"{x:.3f}" for x in c["decode_step_s_rounds"])
        print(f"{c['name']:<40} {c['prefill_s']:>8.2f}  {c['decode_step_s']:>8.3f} [{rounds}]  "
              f"{c['decode_tokens_per_s']:>6.1f}  {c['estimated_generate_s']:>8.1f}")
    print(f"lm_head alone, batch 8: {result['lm_head_alone_batch8_s']} s; share of the baseline decode step: "
          f"{result['lm_head_share_of_decode_step']:.0%}")
    print(f"load average {load_start} -> {result['loadavg_end']}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    from grpo.entry import set_process_settings

    set_process_settings()  # as the commands do: measured figures are those of a real run
    main()
