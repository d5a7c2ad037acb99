"""Task data: GSM8K from the hub when reachable, else the shipped copy; rows checked, bad ones counted.

Each usable row becomes a conversational `prompt` (system prompt, optional worked example, question),
an `answer` column with the final answer only ("72", commas removed) for the rewards, and the full
reference `solution`. Malformed rows are counted by reason and reported, never fatal.
"""

import gzip
import json
import logging
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

log = logging.getLogger(__name__)

MAX_QUESTION_CHARS = 4000
MAX_SOLUTION_CHARS = 8000
_FINAL_ANSWER = re.compile(r"####\s*(.+?)\s*$")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


@dataclass
class DataReport:
    """How many rows a split had and why the unusable ones were left out."""

    source: str
    split: str
    total: int = 0
    dropped: Counter = field(default_factory=Counter)

    @property
    def kept(self) -> int:
        return self.total - sum(self.dropped.values())

    def keep_usable(self, raw_rows, convert) -> list[dict]:
        """Convert each raw row with `convert(raw) -> (row, None) | (None, reason)`; count the rejects."""
        rows = []
        for raw in raw_rows:
            self.total += 1
            row, problem = convert(raw) if isinstance(raw, dict) else (None, "unreadable line")
            if problem:
                self.dropped[problem] += 1
            else:
                rows.append(row)
        return rows

    def summary(self) -> str:
        line = f"{self.source} {self.split}: {self.total} rows, {self.kept} usable"
        if self.dropped:
            reasons = ", ".join(f"{n} {reason}" for reason, n in self.dropped.most_common())
            line += f", {sum(self.dropped.values())} malformed ({reasons})"
        return line


def final_answer(solution: str) -> str | None:
    """The number after GSM8K's `####`, commas removed; None when there is none."""
    last_line = solution.strip().splitlines()[-1] if solution.strip() else ""
    match = _FINAL_ANSWER.search(last_line)
    if not match:
        return None
    value = match.group(1).replace(",", "").replace("$", "").strip()
    return value if _NUMBER.fullmatch(value) else None


def build_prompt(task_cfg, question: str) -> list[dict]:
    """System prompt, the task's worked example (for base models), then the question."""
    messages = [{"role": "system", "content": task_cfg.system_prompt}]
    example = task_cfg.get("example")
    if example:
        messages += [
            {"role": "user", "content": example.question},
            {"role": "assistant", "content": example.completion},
        ]
    messages.append({"role": "user", "content": question})
    return messages


def load_task_split(task_cfg, split: str):
    """Return (datasets.Dataset, DataReport) for `split` ("train" or "test") of the task."""
    from datasets import Dataset

    raw_rows, source = _raw_rows(task_cfg, split)
    report = DataReport(source=source, split=split)
    rows = report.keep_usable(raw_rows, lambda raw: _convert_row(task_cfg, raw))
    log.info("Data: %s", report.summary())
    if not rows:
        raise ValueError(f"task data: no usable rows in {report.summary()}; check task.data_files")
    return Dataset.from_list(rows), report


def _convert_row(task_cfg, raw: dict) -> tuple[dict | None, str | None]:
    question, solution = raw.get("question"), raw.get("answer")
    if not isinstance(question, str) or not isinstance(solution, str):
        return None, "missing question or answer"
    if not question.strip():
        return None, "empty question"
    if len(question) > MAX_QUESTION_CHARS or len(solution) > MAX_SOLUTION_CHARS:
        return None, "too long"
    answer = final_answer(solution)
    if answer is None:
        return None, "no numeric final answer"
    return {
        "prompt": build_prompt(task_cfg, question.strip()),
        "question": question.strip(),
        "answer": answer,
        "solution": solution,
    }, None


def _raw_rows(task_cfg, split: str):
    """Rows from the user's files, else the hub, else the shipped copy."""
    data_files = task_cfg.get("data_files")
    if data_files:
        if split not in data_files:
            raise ValueError(f"task.data_files has no '{split}' entry; give {{train: ..., test: ...}}")
        path = Path(data_files[split])
        return list(read_jsonl(path)), str(path)
    hub_rows = _hub_rows(task_cfg, split)
    if hub_rows is not None:
        return hub_rows, task_cfg.hub_id
    shipped = resources.files("grpo") / "data" / task_cfg.name / f"{split}.jsonl.gz"
    return list(read_jsonl(Path(str(shipped)))), f"{task_cfg.name} (shipped copy)"


def _hub_rows(task_cfg, split: str):
    if os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("HF_DATASETS_OFFLINE") == "1":
        return None
    if not hub_reachable():
        return None
    try:
        from datasets import load_dataset

        split_name = task_cfg.train_split if split == "train" else task_cfg.test_split
        return list(load_dataset(task_cfg.hub_id, task_cfg.get("hub_config"), split=split_name))
    except Exception as error:  # any hub/network/cache failure means: use the shipped copy
        log.warning("Could not load %s from the hub (%s); using the shipped copy", task_cfg.hub_id, error)
        return None


def hub_reachable(timeout_s: float = 3.0) -> bool:
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants

    host = urlparse(constants.ENDPOINT).hostname
    try:
        with socket.create_connection((host, 443), timeout=timeout_s):
            return True
    except OSError:
        return False


def read_jsonl(path: Path):
    """Yield one object per line; an undecodable or non-JSON line yields None (counted by the caller)."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        for line in handle:
            if not line.strip():
                continue
            try:
                yield json.loads(line.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                yield None
