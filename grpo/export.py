"""Ship a finished run's model: `python -m grpo.export run=<run dir> format=merged|gguf [gguf.type=f16|q8_0]`.

- `merged`: the LoRA adapter merged into its base, as safetensors with the tokenizer, chat template and
  generation config (stops at `<end_of_turn>`): loads with transformers and serves with vLLM.
  The merge is done in float32 and then cast to the run's dtype, so a bf16 run does not pay the bf16
  rounding of an in-place merge (trl #3466).
- `gguf`: the same merged weights as one GGUF file (grpo/gguf_writer.py) for llama.cpp and Ollama.
- `adapter`: nothing to convert; with `push=true` uploads the adapter as trained.

The base model and its settings come from the run's resolved_config.yaml. Every output is written under
a temporary name and renamed into place, so an interrupted export never leaves a half-written model.
tests/test_export.py loads each export back and compares its greedy completions with the adapter's.
"""

import logging
import os
import sys
import tempfile
from pathlib import Path

import hydra
from omegaconf import DictConfig, open_dict

from grpo.gguf_writer import GGUF_TYPES, GGUFExportError, write_gguf
from grpo.run_dir import Run, load_run
from grpo.validate import ConfigError

log = logging.getLogger("grpo.export")

CONFIG_DIR = str(Path(__file__).resolve().parent.parent / "conf")
FORMATS = ("merged", "gguf", "adapter")
DTYPES = ("bfloat16", "float32")


def check_export_config(cfg: DictConfig) -> None:
    """Every setting checked before a model loads."""
    from grpo.hub_push import check_hub_config

    if not cfg.run:
        raise ConfigError("run=<run dir> is required: the output dir of a finished run, e.g. run=outputs/gsm8k/<time>")
    if cfg.format not in FORMATS:
        raise ConfigError(f"format={cfg.format}: unknown; valid formats: {', '.join(FORMATS)}")
    if cfg.format == "gguf" and cfg.gguf.type not in GGUF_TYPES:
        raise ConfigError(f"gguf.type={cfg.gguf.type}: unknown; valid types: {', '.join(GGUF_TYPES)}")
    if cfg.dtype is not None and cfg.dtype not in DTYPES:
        raise ConfigError(f"dtype={cfg.dtype}: unknown; valid: {', '.join(DTYPES)} (or null for the run's own)")
    if cfg.format == "adapter" and not cfg.push:
        raise ConfigError("format=adapter converts nothing; it is for push=true (upload the adapter as trained)")
    check_hub_config({"push": cfg.push, "repo_id": cfg.hub.repo_id})


def run_export(cfg: DictConfig) -> Path:
    """Export as configured; return the exported directory or file."""
    check_export_config(cfg)
    run = load_run(cfg.run)
    out_dir = Path(cfg.output_dir) if cfg.output_dir else run.dir / "export"
    if cfg.format == "adapter":
        target = run.weights
    elif cfg.format == "merged":
        target = export_merged(run, out_dir / "merged", cfg.dtype)
    else:
        target = export_gguf(run, out_dir / gguf_file_name(run, cfg.gguf.type), cfg.gguf.type, cfg.dtype)
    if cfg.push:
        from grpo.hub_push import push, upload_plan

        plan = upload_plan(run.dir, target, cfg.format, cfg.hub.repo_id)
        url = push(plan, cfg.hub.repo_id, cfg.hub.private, f"{run.cfg.task.name} GRPO {cfg.format} (gemma-grpo)")
        log.info("Uploaded %d files to https://huggingface.co/%s (%s)", len(plan), cfg.hub.repo_id, url)
    return target


def export_dtype(run: Run, dtype: str | None):
    """The dtype the weights are saved in: as asked, else the one the run trained in."""
    import torch

    if dtype:
        return getattr(torch, dtype)
    model_dtype = run.cfg.model.get("dtype", "auto")
    if model_dtype in DTYPES:
        return getattr(torch, model_dtype)
    return torch.bfloat16 if run.cfg.get("trainer", {}).get("bf16") else torch.float32


def merged_model(run: Run, dtype=None):
    """The run's base with its adapter merged in float32, then cast to `dtype`; and the run's tokenizer
    (saved beside the adapter, chat template included)."""
    import torch

    from grpo.models import load_model_and_tokenizer, load_tokenizer
    from grpo.run_dir import check_adapter_base

    dtype = dtype or export_dtype(run, None)
    model_cfg = run.cfg.model.copy()
    with open_dict(model_cfg):
        model_cfg.dtype = "float32"
    if run.is_adapter:
        check_adapter_base(run.weights, run.cfg.model)
        model, _ = load_model_and_tokenizer(model_cfg, adapter=str(run.weights))
        log.info("Merging %s into %s in float32", run.weights, model_cfg.get("hub_id") or model_cfg.name)
        model = model.merge_and_unload()
    else:  # peft=full: adapter/ is the whole trained model
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(run.weights, dtype=torch.float32)
    tokenizer = load_tokenizer(run.cfg.model, str(run.weights))
    return model.to(dtype), tokenizer


def export_merged(run: Run, target: Path, dtype: str | None = None) -> Path:
    from grpo.cache import write_atomically

    model, tokenizer = merged_model(run, export_dtype(run, dtype))

    def write(directory: Path) -> None:
        model.save_pretrained(directory)
        tokenizer.save_pretrained(directory)

    write_atomically(target, write)
    log.info("Merged model (%s): %s", str(model.dtype).replace("torch.", ""), target)
    return target


def gguf_file_name(run: Run, gguf_type: str) -> str:
    return f"{run.cfg.model.name}-{run.cfg.task.name}-grpo-{gguf_type}.gguf"


def export_gguf(run: Run, target: Path, gguf_type: str, dtype: str | None = None) -> Path:
    """The merged model as one GGUF file; written beside `target` under a hidden name, then renamed.
    The float32 merge goes straight to f16 / Q8_0 (one rounding), unless `dtype` asks for a cast first."""
    import torch

    model, tokenizer = merged_model(run, getattr(torch, dtype) if dtype else torch.float32)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, partial = tempfile.mkstemp(prefix=f".{target.name}-", suffix=".partial", dir=target.parent)
    os.close(handle)
    try:
        write_gguf(model, tokenizer, Path(partial), gguf_type, name=target.stem, eot_tokens=run.cfg.model.eos_tokens)
        os.chmod(partial, 0o666 & ~_umask())  # mkstemp's 0600 would hide the file from other users
        os.replace(partial, target)
    finally:
        if os.path.exists(partial):
            os.remove(partial)
    log.info("GGUF (%s): %s (%.1f MB)", gguf_type, target, target.stat().st_size / 1e6)
    return target


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@hydra.main(version_base=None, config_path=CONFIG_DIR, config_name="export")
def main(cfg: DictConfig) -> None:
    from grpo.hub_push import HubPushError

    try:
        print(f"exported: {run_export(cfg)}")
    except (ConfigError, GGUFExportError, HubPushError) as error:
        log.error("export: %s", error)
        sys.exit(2)


if __name__ == "__main__":
    main()
