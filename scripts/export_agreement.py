"""How close is each export to the adapter it came from? Greedy token agreement, merged / f16 / q8_0.

    .venv/bin/python scripts/export_agreement.py [--run outputs/gsm8k/<time>] [--new-tokens 32] [--json out.json]

With --run, the run's own adapter is exported (into a temporary directory; the run is not touched).
Without it, a stand-in run is made: the embedded Gemma 3 270M with a random LoRA adapter (r=16 on every
linear layer, B ~ N(0, 0.02^2), so the output really changes but stays text). Each export is loaded back
through transformers (the GGUF ones through its GGUF loader) and continues the same prompt tokens greedily
(grpo/export_check.py); the figure is the share of equal tokens against the unmerged adapter, position by
position: free-running (one early divergence costs every later position) and teacher-forced (`*_teacher_forced`:
each position predicted from the adapter's own prefix).
"""

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def stand_in_run(directory: Path) -> Path:
    import torch
    from omegaconf import OmegaConf
    from peft import LoraConfig, get_peft_model

    from grpo.models import load_model_and_tokenizer
    from grpo.run_dir import record_base_model

    model_cfg = OmegaConf.load(ROOT / "conf" / "model" / "gemma3-270m.yaml")
    model, tokenizer = load_model_and_tokenizer(model_cfg)
    torch.manual_seed(0)  # LoRA A is initialised from the global generator
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules=list(model_cfg.lora_target_modules)))
    from grpo.export_check import randomize_lora_b

    randomize_lora_b(model, 0.02)
    model.save_pretrained(directory / "adapter")
    tokenizer.save_pretrained(directory / "adapter")
    record_base_model(directory / "adapter", model_cfg)
    cfg = OmegaConf.create({"model": model_cfg, "task": {"name": "standin"}, "trainer": {"bf16": False}})
    OmegaConf.save(cfg, directory / "resolved_config.yaml")
    return directory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", help="a finished run dir (default: a random adapter on the embedded 270M)")
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()

    import torch
    from transformers import AutoModelForCausalLM

    from grpo.export import export_gguf, export_merged, gguf_file_name
    from grpo.export_check import greedy_continuations, prompt_ids, teacher_forced_agreement, token_agreement
    from grpo.models import load_model_and_tokenizer
    from grpo.run_dir import load_run

    work = Path(tempfile.mkdtemp(prefix="export-agreement-"))
    try:
        run = load_run(args.run) if args.run else load_run(stand_in_run(work / "run"))
        model_cfg = run.cfg.model.copy()
        model_cfg.dtype = "float32"
        adapter_model, tokenizer = load_model_and_tokenizer(model_cfg, adapter=str(run.weights))
        ids = prompt_ids(tokenizer)
        reference = greedy_continuations(adapter_model, ids, args.new_tokens)
        base_model = adapter_model.get_base_model() if hasattr(adapter_model, "get_base_model") else None
        figures = {"prompts": len(ids), "new_tokens": args.new_tokens, "run": str(args.run or "stand-in")}
        if base_model is not None:
            with adapter_model.disable_adapter():
                figures["base_vs_adapter"] = token_agreement(reference, greedy_continuations(adapter_model, ids, args.new_tokens))
        del adapter_model, base_model

        started = time.time()
        merged_dir = export_merged(run, work / "export" / "merged", "float32")
        figures["merged_export_s"] = round(time.time() - started, 1)
        merged = AutoModelForCausalLM.from_pretrained(merged_dir, dtype=torch.float32)
        figures["merged"] = token_agreement(reference, greedy_continuations(merged, ids, args.new_tokens))
        figures["merged_teacher_forced"] = teacher_forced_agreement(merged, ids, reference)
        del merged
        for gguf_type in ("f16", "q8_0"):
            started = time.time()
            path = export_gguf(run, work / "export" / gguf_file_name(run, gguf_type), gguf_type, "float32")
            figures[f"{gguf_type}_export_s"] = round(time.time() - started, 1)
            figures[f"{gguf_type}_mb"] = round(path.stat().st_size / 1e6, 1)
            loaded = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
            figures[gguf_type] = token_agreement(reference, greedy_continuations(loaded, ids, args.new_tokens))
            figures[f"{gguf_type}_teacher_forced"] = teacher_forced_agreement(loaded, ids, reference)
            del loaded
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for key, value in figures.items():
        print(f"{key}: {value:.4f}" if isinstance(value, float) else f"{key}: {value}")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
