"""Can the embedded Gemma 3 270M learn a task on 2 CPU cores? Base accuracy, SFT warm-up, one GRPO run.

Exploration for issue 16 (a task where GRPO visibly raises held-out accuracy), not a shipped feature:
the settings it finds become `+experiment=cpu-learning`. Every problem comes from reasoning-gym's
procedural datasets and is scored by the dataset's own `score_answer` on the text inside the first
`<answer>` tag; train, held-out and worked-example problems come from different seeds, so they never
overlap by construction (reasoning-gym seeds each item with `seed + index`, hence the wide gaps).

    python scripts/probe_learnability.py base --settings chain_sum_2x1 leg_counting_1 --n 64
    python scripts/probe_learnability.py sft --setting chain_sum_2x1 --rows 300 --eval-n 96
    python scripts/probe_learnability.py grpo --setting chain_sum_2x1 --steps 60 --eval-n 500

Each command appends one JSON line to --out (default probe_out/results.jsonl) with its numbers,
settings and wall time; `grpo` also writes its metrics.jsonl and held-out samples into its run dir.
Prompts are built exactly as the training pipeline builds them (tasks.base.Task.prompt) and
held-out answers are generated greedily by the evaluator's own generator (eval.generate.HFGenerator),
which stops at `</answer>`: the pretrained 270M does not stop after the tag by itself.
"""

import argparse
import json
import logging
import math
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

log = logging.getLogger("probe")

# name -> (reasoning-gym dataset, config): the easiest levels a 270M model might handle.
SETTINGS = {
    "chain_sum_2x1": ("chain_sum", dict(min_terms=2, max_terms=2, min_digits=1, max_digits=1)),
    "chain_sum_3x1": ("chain_sum", dict(min_terms=3, max_terms=3, min_digits=1, max_digits=1)),
    "chain_sum_2x2": ("chain_sum", dict(min_terms=2, max_terms=2, min_digits=2, max_digits=2)),
    "basic_add_2x1": ("basic_arithmetic", dict(min_terms=2, max_terms=2, min_digits=1, max_digits=1,
                                               operators=["+"], allow_parentheses=False, allow_negation=False)),
    "basic_addsub_2x1": ("basic_arithmetic", dict(min_terms=2, max_terms=2, min_digits=1, max_digits=1,
                                                  operators=["+", "-"], allow_parentheses=False,
                                                  allow_negation=False)),
    "products_2x1": ("products", dict(min_terms=2, max_terms=2, min_digits=1, max_digits=1)),
    "leg_counting_1": ("leg_counting", dict(min_animals=1, max_animals=1, min_instances=1, max_instances=3)),
    "leg_counting_2": ("leg_counting", dict(min_animals=1, max_animals=2, min_instances=1, max_instances=3)),
    "letter_counting_3": ("letter_counting", dict(min_words=1, max_words=3)),
    "letter_counting_5": ("letter_counting", dict(min_words=3, max_words=5)),
    "word_reversal_3": ("word_sequence_reversal", dict(min_words=3, max_words=3)),
    "gcd_small": ("gcd", dict(min_numbers=2, max_numbers=2, min_value=1, max_value=20)),
}

SYSTEM_PROMPT = "Answer the question. Give only the final answer inside <answer> </answer> tags."
# Seeds: reasoning-gym item i of seed s uses Random(s + i), so seeds far apart never share an item.
EXAMPLE_SEED = 7
TRAIN_SEED = 1_000_000
HELD_OUT_SEED = 9_000_000
STOP = ["</answer>"]


def make_dataset(setting: str, seed: int, size: int):
    import reasoning_gym

    name, config = SETTINGS[setting]
    return reasoning_gym.create_dataset(name, seed=seed, size=size, **config)


def task_config(setting: str):
    """The task block build_prompt reads: system prompt and one worked example from its own seed."""
    from omegaconf import OmegaConf

    example = make_dataset(setting, EXAMPLE_SEED, 1)[0]
    return OmegaConf.create({
        "system_prompt": SYSTEM_PROMPT,
        "example": {"question": example["question"], "completion": f"<answer>{example['answer']}</answer>"},
    })


def build_prompt(task, question: str) -> list[dict]:
    """The prompt a task builds (tasks.base.Task.prompt), from this script's system prompt and example."""
    from tasks.base import Task

    return Task.prompt(task, question)


def problems(setting: str, seed: int, n: int) -> list[dict]:
    """n problems: {question, answer, entry_json (the full reasoning-gym entry for score_answer)}."""
    dataset = make_dataset(setting, seed, n)
    return [{"question": e["question"], "answer": str(e["answer"]), "entry_json": json.dumps(e, default=str)}
            for e in dataset]


def extract(text: str) -> str | None:
    from rewards.extract import find_tag_spans

    spans = find_tag_spans(text, "answer", allow_unclosed_last=False)
    return spans[0].strip() if spans else None


def scorer(setting: str):
    """score(text, entry_json) -> reasoning-gym's score (0..1) of the extracted answer; 0 without a tag."""
    dataset = make_dataset(setting, EXAMPLE_SEED, 1)

    def score(text: str, entry_json: str) -> float:
        answer = extract(text)
        if answer is None:
            return 0.0
        return float(dataset.score_answer(answer, json.loads(entry_json)))

    return score


def wilson(correct: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score 95% interval of a proportion."""
    if n == 0:
        return (0.0, 1.0)
    p = correct / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def load_base(threads: int | None = None):
    import torch
    from omegaconf import OmegaConf

    from grpo.models import load_model_and_tokenizer

    if threads:
        torch.set_num_threads(threads)
    model_cfg = OmegaConf.load(REPO / "conf" / "model" / "gemma3-270m.yaml")
    model_cfg.attn_implementation = "sdpa"
    model_cfg.dtype = "float32"
    return load_model_and_tokenizer(model_cfg)


def evaluate(model, tokenizer, setting: str, rows: list[dict], max_new_tokens: int, batch_size: int = 16,
             samples_path: Path | None = None) -> dict:
    """Greedy accuracy (score == 1) and mean score on `rows`, with a Wilson interval."""
    from eval.generate import HFGenerator
    task = task_config(setting)
    score = scorer(setting)
    started = time.time()
    generator = HFGenerator(model, tokenizer, batch_size=batch_size, seed=0)
    texts = generator.generate([build_prompt(task, r["question"]) for r in rows], max_new_tokens, stop=STOP)
    scores = [score(t[0], r["entry_json"]) for t, r in zip(texts, rows, strict=True)]
    correct = sum(s >= 1.0 for s in scores)
    tagged = sum(extract(t[0]) is not None for t in texts)
    if samples_path is not None:
        with samples_path.open("w") as handle:
            for t, r, s in zip(texts, rows, scores, strict=True):
                handle.write(json.dumps({"question": r["question"], "gold": r["answer"], "completion": t[0],
                                         "extracted": extract(t[0]), "score": s}) + "\n")
    low, high = wilson(correct, len(rows))
    return {"n": len(rows), "correct": correct, "accuracy": correct / len(rows), "ci95": [low, high],
            "mean_score": sum(scores) / len(scores), "tag_rate": tagged / len(rows),
            "eval_wall_s": round(time.time() - started, 1),
            "examples": [{"q": r["question"][-80:], "gold": r["answer"], "out": t[0][:80]}
                         for t, r in list(zip(texts, rows))[:4]]}


def record(out: Path, row: dict) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a") as handle:
        handle.write(json.dumps(row) + "\n")
    log.info("%s", json.dumps({k: v for k, v in row.items() if k != "examples"}))


def load_average() -> float:
    import os

    return round(os.getloadavg()[0], 2)


# -- base ------------------------------------------------------------------------------------------
def cmd_base(args) -> None:
    model, tokenizer = load_base(args.threads)
    for setting in args.settings:
        rows = problems(setting, args.held_out_seed, args.n)
        load_start = load_average()
        result = evaluate(model, tokenizer, setting, rows, args.max_new_tokens, args.batch_size)
        record(args.out, {"kind": "base", "setting": setting, "held_out_seed": args.held_out_seed,
                          "dataset": SETTINGS[setting][0],
                          "config": SETTINGS[setting][1], "max_new_tokens": args.max_new_tokens,
                          "load_avg": [load_start, load_average()], **result})


# -- SFT warm-up -----------------------------------------------------------------------------------
def lora_config(r: int = 16):
    from peft import LoraConfig

    return LoraConfig(r=r, lora_alpha=2 * r, lora_dropout=0.0, task_type="CAUSAL_LM",
                      target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])


def cmd_sft(args) -> None:
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    started = time.time()
    model, tokenizer = load_base(args.threads)
    task = task_config(args.setting)
    train = [{"prompt": build_prompt(task, r["question"]),
              "completion": [{"role": "assistant", "content": f"<answer>{r['answer']}</answer>"}]}
             for r in problems(args.setting, TRAIN_SEED, args.rows)]
    run_dir = args.out.parent / f"sft_{args.setting}_{int(started)}"
    config = SFTConfig(output_dir=str(run_dir), max_steps=args.steps, per_device_train_batch_size=args.batch,
                       learning_rate=args.lr, lr_scheduler_type="constant", logging_steps=5, save_strategy="no",
                       completion_only_loss=True, report_to=[], seed=0, bf16=False, disable_tqdm=True)
    trainer = SFTTrainer(model=model, args=config, train_dataset=Dataset.from_list(train),
                         processing_class=tokenizer, peft_config=lora_config())
    train_started = time.time()
    trainer.train()
    train_s = time.time() - train_started
    trainer.save_model(str(run_dir / "adapter"))
    rows = problems(args.setting, HELD_OUT_SEED, args.eval_n)
    result = evaluate(trainer.model, tokenizer, args.setting, rows, args.max_new_tokens, args.batch_size,
                      samples_path=run_dir / "samples_after.jsonl")
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    record(args.out, {"kind": "sft", "setting": args.setting, "rows": args.rows, "steps": args.steps,
                      "batch": args.batch, "lr": args.lr, "train_wall_s": round(train_s, 1),
                      "loss_first_last": [losses[0], losses[-1]] if losses else None, "adapter": str(run_dir / "adapter"),
                      "total_wall_s": round(time.time() - started, 1), **result})


# -- GRPO ------------------------------------------------------------------------------------------
def reward_function(setting: str):
    score = scorer(setting)

    def rg_score(prompts, completions, entry_json, **kwargs):
        texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
        return [score(t, e) for t, e in zip(texts, entry_json, strict=True)]

    return rg_score


def cmd_grpo(args) -> None:
    from datasets import Dataset
    from peft import PeftModel
    from trl import GRPOConfig, GRPOTrainer

    from grpo.metrics import MetricsJsonlCallback
    from grpo.patches import score_only_completion_tokens_on_cpu

    score_only_completion_tokens_on_cpu()
    started = time.time()
    run_dir = args.out.parent / f"grpo_{args.setting}_{args.tag or int(started)}"
    run_dir.mkdir(parents=True, exist_ok=True)
    model, tokenizer = load_base(args.threads)
    if args.init_adapter:
        model = PeftModel.from_pretrained(model, args.init_adapter, is_trainable=True)
    held_out = problems(args.setting, HELD_OUT_SEED, args.eval_n)
    before = evaluate(model, tokenizer, args.setting, held_out, args.max_new_tokens, args.batch_size,
                      samples_path=run_dir / "samples_before.jsonl") if not args.skip_before else None
    if before is not None:  # kept at once: a run stopped early still has its baseline
        (run_dir / "before.json").write_text(json.dumps(before))
    task = task_config(args.setting)
    train = [{"prompt": build_prompt(task, r["question"]), "entry_json": r["entry_json"]}
             for r in problems(args.setting, TRAIN_SEED, args.steps * args.prompts)]
    config = GRPOConfig(
        output_dir=str(run_dir), max_steps=args.steps, learning_rate=args.lr, lr_scheduler_type="constant",
        per_device_train_batch_size=args.prompts * args.generations, gradient_accumulation_steps=1,
        num_generations=args.generations, max_completion_length=args.completion_tokens,
        temperature=args.temperature, beta=0.0, loss_type="dapo", scale_rewards="group",
        logging_steps=1, save_strategy="no", report_to=[], seed=0, bf16=False, disable_tqdm=True,
        mask_truncated_completions=args.mask_truncated,
    )
    callbacks = [MetricsJsonlCallback(run_dir / "metrics.jsonl")]
    trainer_cls = GRPOTrainer
    if args.dynamic_sampling:
        from grpo.dynamic_sampling import DynamicSamplingGRPOTrainer as trainer_cls
    trainer = trainer_cls(model=model, reward_funcs=[reward_function(args.setting)], args=config,
                          train_dataset=Dataset.from_list(train), processing_class=tokenizer,
                          peft_config=None if args.init_adapter else lora_config(), callbacks=callbacks)
    train_started = time.time()
    trainer.train()
    train_s = time.time() - train_started
    trainer.save_model(str(run_dir / "adapter"))
    after = evaluate(trainer.model, tokenizer, args.setting, held_out, args.max_new_tokens, args.batch_size,
                     samples_path=run_dir / "samples_after.jsonl")
    history = [h for h in trainer.state.log_history if "reward" in h]
    plot_run(run_dir)
    record(args.out, {
        "kind": "grpo", "setting": args.setting, "tag": args.tag, "init_adapter": args.init_adapter,
        "steps": args.steps, "prompts": args.prompts, "generations": args.generations, "lr": args.lr,
        "completion_tokens": args.completion_tokens, "temperature": args.temperature,
        "dynamic_sampling": args.dynamic_sampling, "train_wall_s": round(train_s, 1),
        "total_wall_s": round(time.time() - started, 1), "run_dir": str(run_dir),
        "reward_per_step": [round(h["reward"], 3) for h in history],
        "before": before, "after": after, "load_avg_end": load_average(),
    })


def plot_run(run_dir: Path) -> None:
    """reward.png (reward per step) from the run's metrics.jsonl, as the model card draws it."""
    from eval.card import read_metrics
    from eval.plots import plot_rewards

    plot_rewards(read_metrics(run_dir / "metrics.jsonl"), run_dir / "reward.png")


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("eval.generate").setLevel(logging.WARNING)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "probe_out" / "results.jsonl")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    parser.add_argument("--batch-size", type=int, default=16, help="prompts per generate() call in evaluation")
    parser.add_argument("--max-new-tokens", type=int, default=32, help="evaluation tokens per answer")
    sub = parser.add_subparsers(dest="command", required=True)
    base = sub.add_parser("base", help="base-model greedy accuracy per setting")
    base.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    base.add_argument("--n", type=int, default=64)
    base.add_argument("--held-out-seed", type=int, default=HELD_OUT_SEED,
                      help="another seed draws another fresh held-out set (the base model's repeat)")
    sft = sub.add_parser("sft", help="LoRA SFT warm-up on the setting's training problems, then held-out accuracy")
    sft.add_argument("--setting", required=True, choices=list(SETTINGS))
    sft.add_argument("--rows", type=int, default=300)
    sft.add_argument("--steps", type=int, default=40)
    sft.add_argument("--batch", type=int, default=8)
    sft.add_argument("--lr", type=float, default=2e-4)
    sft.add_argument("--eval-n", type=int, default=96)
    grpo = sub.add_parser("grpo", help="a short LoRA GRPO run, held-out accuracy before and after")
    grpo.add_argument("--setting", required=True, choices=list(SETTINGS))
    grpo.add_argument("--steps", type=int, default=60)
    grpo.add_argument("--prompts", type=int, default=4, help="prompts per step")
    grpo.add_argument("--generations", type=int, default=8, help="group size")
    grpo.add_argument("--lr", type=float, default=1e-4)
    grpo.add_argument("--completion-tokens", type=int, default=24)
    grpo.add_argument("--temperature", type=float, default=1.0)
    grpo.add_argument("--mask-truncated", action="store_true")
    grpo.add_argument("--dynamic-sampling", action="store_true", help="grpo.dynamic_sampling's trainer")
    grpo.add_argument("--init-adapter", default=None, help="continue an SFT adapter (trainable)")
    grpo.add_argument("--eval-n", type=int, default=500)
    grpo.add_argument("--skip-before", action="store_true")
    grpo.add_argument("--tag", default=None, help="run dir suffix")
    args = parser.parse_args()
    {"base": cmd_base, "sft": cmd_sft, "grpo": cmd_grpo}[args.command](args)


if __name__ == "__main__":
    main()
