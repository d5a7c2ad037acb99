"""Multiple-choice accuracy (MMLU-style): a forgetting check on knowledge the task never trains.

Data comes from the Hugging Face Hub by name (`cais/mmlu`, one config per subject) or from local
JSON-lines files with the same fields: `question`, `choices` (list of option texts), `answer` (the
option's index, or its letter). Offline without local files the evaluation stops before any model is
loaded, with a message naming the dataset and the setting that points at local files.

`score_choices` is shared with PubMedQA: one labelled answer per question, read with the rewards'
`extract_choice` (inside the answer tag, else "answer is X", else a lone label on the last line).
"""

import json
import logging
from pathlib import Path

from rewards.extract import extract_choice

from eval.metrics import macro_f1
from tasks.sources import offline as datasets_offline
from eval.suite import DatasetUnavailable, EvalResult, eval_seed, fixed_subset, register, settings

log = logging.getLogger(__name__)

LETTERS = "ABCDEFGHIJ"

DEFAULTS = {
    "hub_id": "cais/mmlu",
    # the five subtasks gemma3-270m-dolly tracked for forgetting are not named there; these are common picks
    "subjects": ["high_school_mathematics", "high_school_biology", "college_medicine", "formal_logic", "global_facts"],
    "split": "test",
    "data_files": None,
    "limit": None,
    "max_new_tokens": 16,
    "system_prompt": "Answer the multiple-choice question. Give only the letter of the correct option inside "
    "<answer> </answer> tags.",
}


def score_choices(rows: list[dict], generator, *, name: str, labels: list[str] | None, max_new_tokens: int,
                  tag: str = "answer", stop: list[str] | None = None) -> EvalResult:
    """Accuracy (and macro F1 over the labels) of one greedy answer per row.

    Each row: `prompt` (chat messages) and `answer`, one of the allowed answers: `labels`, or the row's own
    `labels` (multiple choice with a varying number of options). An answer that cannot be read, or names
    several labels, is wrong and counted as `unparsed`.
    """
    completions = generator.generate([row["prompt"] for row in rows], max_new_tokens, stop=stop)
    predicted, samples = [], []
    for row, texts in zip(rows, completions, strict=True):
        choice = extract_choice(texts[0], list(row.get("labels") or labels), tag=tag)
        predicted.append(choice)
        samples.append({"task": name, "prompt": row["prompt"], "completion": texts[0], "extracted": choice,
                        "gold": row["answer"], "correct": choice == row["answer"]})
    n = len(rows)
    correct = sum(s["correct"] for s in samples)
    metrics = {
        "accuracy": correct / n if n else 0.0,
        "macro_f1": macro_f1(predicted, [row["answer"] for row in rows],
                             sorted(labels or {label for row in rows for label in row["labels"]})),
        "n": n,
        "correct": correct,
        "unparsed": sum(p is None for p in predicted),
    }
    return EvalResult(name, metrics, samples)


def build_prompt(question: str, choices: list[str], system_prompt: str) -> list[dict]:
    options = "\n".join(f"{LETTERS[i]}. {text}" for i, text in enumerate(choices))
    return [{"role": "system", "content": system_prompt}, {"role": "user", "content": f"{question}\n\n{options}"}]


def to_row(raw: dict, system_prompt: str) -> dict:
    choices = list(raw["choices"])
    answer = raw["answer"]
    gold = LETTERS[int(answer)] if not isinstance(answer, str) or answer.isdigit() else answer.strip().upper()
    return {
        "prompt": build_prompt(raw["question"], choices, system_prompt),
        "labels": list(LETTERS[: len(choices)]),
        "answer": gold,
        "subject": raw.get("subject"),
    }


def load_raw(opts: dict) -> list[dict]:
    """Local files when `data_files` is set, else each subject from the hub; raises DatasetUnavailable."""
    if opts["data_files"]:
        files = opts["data_files"] if isinstance(opts["data_files"], list) else [opts["data_files"]]
        return [row for path in files for row in _read_json_rows(Path(path))]
    return [row for subject in opts["subjects"] for row in _hub_subject(opts, subject)]


def _hub_subject(opts: dict, subject: str) -> list[dict]:
    hub_id = opts["hub_id"]
    hint = (
        f"Cannot load {hub_id} (subject {subject}, split {opts['split']}) from the Hugging Face Hub: {{why}}. "
        "Point eval.mmlu.data_files at local JSON-lines files with fields question, choices, answer "
        "(e.g. exported once with datasets.load_dataset(...).to_json(path)), or drop mmlu from eval.domains."
    )
    offline = datasets_offline()
    if not offline:
        from tasks.sources import hub_reachable

        if not hub_reachable():
            raise DatasetUnavailable(hint.format(why="the hub is not reachable from this machine"))
    try:
        from datasets import load_dataset

        return [dict(row) for row in load_dataset(hub_id, subject, split=opts["split"])]
    except Exception as error:  # any cache/network failure means the same thing to the user
        why = "offline (HF_HUB_OFFLINE=1) and not in the local datasets cache" if offline else str(error)[:200]
        raise DatasetUnavailable(hint.format(why=why)) from error


def _read_json_rows(path: Path) -> list[dict]:
    if not path.exists():
        raise DatasetUnavailable(f"multiple-choice data file {path} does not exist")
    text = path.read_text()
    if path.suffix == ".json":
        return json.loads(text)
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def load(cfg, limit: int | None) -> list[dict]:
    opts = settings(cfg, "mmlu", DEFAULTS)
    raw = load_raw(opts)
    rows = [to_row(r, opts["system_prompt"]) for r in raw]
    limit = opts["limit"] if opts["limit"] is not None else limit
    log.info("mmlu: %d questions (%s)", len(rows), opts["data_files"] or opts["hub_id"])
    return [rows[i] for i in fixed_subset(len(rows), limit, eval_seed(cfg))]


def score(rows: list[dict], generator, cfg) -> EvalResult:
    opts = settings(cfg, "mmlu", DEFAULTS)
    return score_choices(rows, generator, name="mmlu", labels=None, max_new_tokens=opts["max_new_tokens"],
                         stop=["</answer>"])


register("mmlu", load, score)
