"""Regex-verdict evaluation (accept/reject style): F1 beside accuracy and both positive rates.

For tasks whose answer is a sentence such as "I recommend this paper for ACCEPTANCE" (conf/experiment/scientific-reviewer.yaml).
F1 alone flatters a model that always says the majority verdict: on data that is 84% accepts,
always-accept scores F1 0.91. So the predicted-positive rate is reported next to the actual one, and
`always_positive_f1` gives the F1 that knowing nothing would get on this data.

Data: JSON-lines files (`eval.verdict.data_files`) with `prompt` (a string, or chat messages) and
`label` (the verdict word the pattern captures, e.g. ACCEPTANCE).
"""

import json
from pathlib import Path

from rewards.extract import extract_verdict

from eval.metrics import binary_metrics
from eval.suite import DatasetUnavailable, EvalResult, eval_seed, fixed_subset, register, settings

DEFAULTS = {
    "data_files": None,
    "pattern": r"I recommend this paper for (ACCEPTANCE|REJECTION)",
    "positive": "ACCEPTANCE",
    "system_prompt": None,
    "limit": None,
    "max_new_tokens": 512,
}


def score_verdicts(rows: list[dict], generator, *, pattern: str, positive: str, max_new_tokens: int,
                   name: str = "verdict") -> EvalResult:
    """Each row: `prompt` (messages) and `label`. A completion with no verdict (or two different ones)
    counts as a negative prediction and is also counted in `unparsed`."""
    completions = generator.generate([row["prompt"] for row in rows], max_new_tokens)
    positive = positive.upper()
    predicted, actual, samples = [], [], []
    for row, texts in zip(rows, completions, strict=True):
        verdict = extract_verdict(texts[0], pattern)
        predicted.append(None if verdict is None else verdict == positive)
        actual.append(str(row["label"]).upper() == positive)
        samples.append({"task": name, "prompt": row["prompt"], "completion": texts[0], "extracted": verdict,
                        "gold": row["label"], "correct": verdict is not None and verdict == str(row["label"]).upper()})
    metrics = binary_metrics(predicted, actual)
    metrics["correct"] = sum(s["correct"] for s in samples)
    return EvalResult(name, metrics, samples)


def load(cfg, limit: int | None) -> list[dict]:
    opts = settings(cfg, "verdict", DEFAULTS)
    if not opts["data_files"]:
        raise DatasetUnavailable("the verdict evaluator needs eval.verdict.data_files=<path.jsonl> "
                                 "(rows with prompt and label)")
    files = opts["data_files"] if isinstance(opts["data_files"], list) else [opts["data_files"]]
    rows = []
    for path in map(Path, files):
        if not path.exists():
            raise DatasetUnavailable(f"verdict data file {path} does not exist")
        rows += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    for row in rows:
        if isinstance(row["prompt"], str):
            row["prompt"] = [{"role": "user", "content": row["prompt"]}]
        if opts["system_prompt"]:
            row["prompt"] = [{"role": "system", "content": opts["system_prompt"]}, *row["prompt"]]
    limit = opts["limit"] if opts["limit"] is not None else limit
    return [rows[i] for i in fixed_subset(len(rows), limit, eval_seed(cfg))]


def score(rows: list[dict], generator, cfg) -> EvalResult:
    opts = settings(cfg, "verdict", DEFAULTS)
    return score_verdicts(rows, generator, pattern=opts["pattern"], positive=opts["positive"],
                          max_new_tokens=opts["max_new_tokens"])


register("verdict", load, score)
