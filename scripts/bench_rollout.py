"""Rollout throughput: transformers generate vs vLLM, tokens per second, on this machine.

    python scripts/bench_rollout.py [--batch-sizes 4 16 64] [--new-tokens 64] [--vllm-dtype float32]
                                    [--backends hf vllm] [--hf-attention eager sdpa] [--json out.json]

The embedded Gemma 3 270M (`--model gemma3-270m`, the default) generates `--new-tokens` tokens for each of N copies of
a GSM8K-style chat prompt, sampled at temperature 1 with EOS ignored, so every sequence is exactly
`--new-tokens` long and both backends do the same work. The HF model runs in float32 on CPU as training
loads it; vLLM in `--vllm-dtype` with VLLM_CPU_KVCACHE_SPACE (default 2 GiB). Engine start (vLLM) and
model load (HF) are reported apart from the generation time. Each batch size is run once after one
warm-up batch of 4: on a shared machine run it niced and read the figures as rough.
Needs vLLM only for the vllm backend (`make test-vllm` builds an environment with it).
"""

import argparse
import gc
import json
import logging
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

log = logging.getLogger("bench_rollout")

PROMPT = [
    {
        "role": "user",
        "content": "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in "
        "May. How many clips did Natalia sell altogether in April and May? Think step by step.",
    }
]


def load_model_config(name: str):
    from omegaconf import OmegaConf

    return OmegaConf.load(Path(__file__).resolve().parent.parent / "conf" / "model" / f"{name}.yaml")


def bench_hf(model_cfg, batch_sizes, new_tokens, attention: str) -> dict:
    import torch
    from omegaconf import OmegaConf

    from grpo.models import load_model_and_tokenizer

    started = time.perf_counter()
    model, tokenizer = load_model_and_tokenizer(OmegaConf.merge(model_cfg, {"attn_implementation": attention}))
    model.eval()
    load_s = time.perf_counter() - started
    text = tokenizer.apply_chat_template(PROMPT, tokenize=False, add_generation_prompt=True)
    ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"]

    def run(batch):
        inputs = ids.repeat(batch, 1)
        with torch.no_grad():
            out = model.generate(
                input_ids=inputs,
                attention_mask=torch.ones_like(inputs),
                max_new_tokens=new_tokens,
                min_new_tokens=new_tokens,
                do_sample=True,
                temperature=1.0,
                top_p=1.0,
                top_k=None,
            )
        return (out.shape[1] - inputs.shape[1]) * batch

    run(4)
    return {"backend": "hf", "attention": attention, "dtype": str(model.dtype), "start_s": round(load_s, 1),
            **_timed(run, batch_sizes)}


def bench_vllm(model_cfg, batch_sizes, new_tokens, dtype) -> dict:
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
    from vllm import LLM, SamplingParams

    from grpo.models import load_tokenizer, resolve_model_path

    path = resolve_model_path(model_cfg)
    tokenizer = load_tokenizer(model_cfg, path)
    text = tokenizer.apply_chat_template(PROMPT, tokenize=False, add_generation_prompt=True)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    started = time.perf_counter()
    llm = LLM(model=path, dtype=dtype, max_model_len=1024, max_num_seqs=max(batch_sizes), seed=0)
    start_s = time.perf_counter() - started
    params = SamplingParams(temperature=1.0, max_tokens=new_tokens, min_tokens=new_tokens, ignore_eos=True)

    def run(batch):
        outputs = llm.generate([{"prompt_token_ids": ids}] * batch, params, use_tqdm=False)
        return sum(len(o.outputs[0].token_ids) for o in outputs)

    run(4)
    return {"backend": "vllm", "dtype": dtype, "start_s": round(start_s, 1), **_timed(run, batch_sizes)}


def _timed(run, batch_sizes) -> dict:
    rows = []
    for batch in batch_sizes:
        begun = time.perf_counter()
        tokens = run(batch)
        seconds = time.perf_counter() - begun
        rows.append({"batch": batch, "tokens": tokens, "seconds": round(seconds, 2),
                     "tokens_per_s": round(tokens / seconds, 1)})
        log.info("batch %d: %d tokens in %.1f s = %.1f tok/s", batch, tokens, seconds, tokens / seconds)
    return {"runs": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="gemma3-270m", help="a conf/model/ name (tiny: a smoke run)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[4, 16, 64])
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--vllm-dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--backends", nargs="+", default=["hf", "vllm"], choices=["hf", "vllm"])
    parser.add_argument("--hf-attention", nargs="+", default=["eager", "sdpa"], choices=["eager", "sdpa"])
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    import torch

    model_cfg = load_model_config(args.model)
    results = {"model": args.model, "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                           "load_avg_at_start": os.getloadavg(), "processor": platform.processor()},
               "new_tokens": args.new_tokens, "backends": []}
    for backend in args.backends:
        if backend == "hf":
            for attention in args.hf_attention:
                results["backends"].append(bench_hf(model_cfg, args.batch_sizes, args.new_tokens, attention))
                gc.collect()  # one model in memory at a time
        else:
            results["backends"].append(bench_vllm(model_cfg, args.batch_sizes, args.new_tokens, args.vllm_dtype))
    results["machine"]["load_avg_at_end"] = os.getloadavg()
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    from grpo.entry import set_process_settings

    set_process_settings()  # as the commands do: measured figures are those of a real run
    main()
