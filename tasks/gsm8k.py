"""GSM8K grade-school maths (Cobbe et al., 2021): a number after `####` on the reference's last line.

The hub's openai/gsm8k when reachable, else the copy shipped in tasks/data/gsm8k (MIT, see its LICENSE).
Rows keep the full reference as `solution`; SFT turns it into reasoning steps and the final number.
"""

import re
from importlib import resources
from pathlib import Path

from tasks.base import Task
from tasks.sources import read_jsonl

MAX_SOLUTION_CHARS = 8000
_FINAL_ANSWER = re.compile(r"####\s*(.+?)\s*$")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_CALCULATOR = re.compile(r"<<[^<>]*>>")


def final_answer(solution: str) -> str | None:
    """The number after GSM8K's `####`, commas removed; None when there is none."""
    last_line = solution.strip().splitlines()[-1] if solution.strip() else ""
    match = _FINAL_ANSWER.search(last_line)
    if not match:
        return None
    value = match.group(1).replace(",", "").replace("$", "").strip()
    return value if _NUMBER.fullmatch(value) else None


def solution_steps(solution: str) -> str | None:
    """The reference's steps without its `####` line and calculator annotations (`<<48/2=24>>`)."""
    lines = solution.strip().splitlines()[:-1]
    steps = [re.sub(r"[ \t]{2,}", " ", _CALCULATOR.sub("", line)).strip() for line in lines]
    steps = [step for step in steps if step]
    return "\n".join(steps) if steps else None


class GSM8K(Task):
    def parse(self, raw):
        question, solution = raw.get("question"), raw.get("answer")
        if not isinstance(question, str) or not isinstance(solution, str):
            return None, None, "missing question or answer"
        if len(solution) > MAX_SOLUTION_CHARS:
            return None, None, "too long"
        answer = final_answer(solution)
        if answer is None:
            return None, None, "no numeric final answer"
        return question, answer, None

    def to_row(self, raw):
        row, problem = super().to_row(raw)
        if row is not None:
            row["solution"] = raw["answer"]
        return row, problem

    def builtin_rows(self, split):
        path = Path(str(resources.files("tasks") / "data" / "gsm8k" / f"{split}.jsonl.gz"))
        return list(read_jsonl(path)), "gsm8k (shipped copy)"

    def columns_hint(self):
        return "JSON lines with question, answer (steps, last line '#### N')"

    def sft_completion(self, row):
        steps = solution_steps(row["solution"])
        return self.format_completion(row["answer"], steps) if steps else None
