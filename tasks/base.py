"""A task is the one source of a problem set's rows, answer format, scoring and SFT text.

`conf/task/<name>.yaml` names the implementation with `_target_` and sets its fields; `build_task`
checks the fields (an unknown one is named, with the closest known one) and builds it. Everything
else reads the task instead of repeating it:
- training: `load_split("train")` rows (a chat `prompt`, the gold `answer`, every other column passed
  through to the rewards untouched) and `correctness_reward`, built on `score_answer`;
- evaluation: the test split, `extract` (strict: only the answer tag; flexible: any marker) and
  `score_answer`, so "correct" means the same in training and in evaluation; stop strings;
- SFT: `sft_completion`, in the task's own answer format;
- reward params: `${task.answer_tag}`, `${task.reasoning_tag}` in conf/rewards/*.yaml.

A subclass overrides `parse` (one raw row -> question and gold answer, or why it is unusable) and,
when the data has no common source, `builtin_rows`; `sft_completion` when it has worked solutions;
`extract`/`score_answer` only when its answers need their own reading (reasoning-gym's verifier).
"""

import difflib
import logging
from pathlib import Path
from typing import Any

from tasks.sources import DataReport, hub_rows, offline, read_rows
from tasks.errors import ConfigError

log = logging.getLogger(__name__)

ANSWER_TYPES = ("number", "latex", "text", "choice")
EVALUATORS = ("answers", "choices")
SPLITS = ("train", "test")
MAX_QUESTION_CHARS = 8000
# Column names the rows may not pass through: ours, and the keyword arguments TRL gives reward functions.
RESERVED_COLUMNS = frozenset(
    {"prompt", "question", "answer", "prompts", "completions", "completion_ids", "trainer_state", "log_extra",
     "log_metric"}
)
REQUIRED = object()


# Generated tasks (reasoning_gym, arithmetic) draw each split from its own seed.
TEST_SEED_OFFSET = 1_000_003  # far from the training seed, so the two splits are independent draws
IN_TRAINING_SPLIT = "in_training_split"


def split_seed(split: str, seed: int, test_seed: int | None) -> int:
    """The seed a generated task draws `split` from: `seed` for train; `test_seed` for test, or
    seed + TEST_SEED_OFFSET when it is null."""
    if split == "train":
        return seed
    return seed + TEST_SEED_OFFSET if test_seed is None else test_seed


def check_test_seed(test_seed) -> None:
    if test_seed is not None and (isinstance(test_seed, bool) or not isinstance(test_seed, int)):
        raise ConfigError(f"task.test_seed={test_seed!r} must be an integer, or null for seed + {TEST_SEED_OFFSET}")


def mark_training_repeats(test_rows: list[dict], train_rows: list[dict]) -> None:
    """Flag each generated test row whose question also occurs in the training split; `Task.to_row` leaves
    it out (counted), so held-out accuracy is measured on questions never trained on."""
    seen = {row["question"] for row in train_rows}
    for row in test_rows:
        if row["question"] in seen:
            row[IN_TRAINING_SPLIT] = True


class Task:
    """Rows per split, the answer format, correctness, SFT text. See the module docstring."""

    # Fields every task accepts, with their defaults (REQUIRED: the yaml must set it).
    fields: dict[str, Any] = {
        "name": REQUIRED,
        # the instruction; Gemma folds it into the first user turn (its templates have no system turn)
        "system_prompt": REQUIRED,
        # {question, completion}: one worked example before each question, so base models see the format
        "example": None,
        # the final answer goes alone inside <answer_tag> </answer_tag>
        "answer_tag": "answer",
        # reasoning before the answer inside <reasoning_tag> </reasoning_tag>; null: the answer alone
        "reasoning_tag": "reasoning",
        # generation stops at these strings (kept in the text); null: the closing answer tag
        "stop": None,
        # number | latex | text | choice: how an answer is read and compared
        "answer_type": "number",
        # the allowed answers of a choice task
        "labels": None,
        # answers (accuracy strict/flexible, format and structure rates, maj@k, pass@k) | choices (accuracy,
        # macro F1); null: choices for answer_type=choice, else answers
        "evaluator": None,
        # {train: path, test: path}: local .jsonl / .json / .csv files instead of the hub or shipped copy
        "data_files": None,
        # {train: {id, config, split}, test: {...}}: datasets.load_dataset per split, when reachable
        "hub": None,
        # new tokens when evaluated as a held-out domain (eval.domains); null: the run's own budget
        "max_new_tokens": None,
    }

    def __init__(self, **settings: Any):
        for key, value in settings.items():
            setattr(self, key, value)
        if self.stop is None:
            self.stop = [f"</{self.answer_tag}>"]
        if self.evaluator is None:
            self.evaluator = "choices" if self.answer_type == "choice" else "answers"
        self._check()

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def all_fields(cls) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        for klass in reversed(cls.__mro__):
            merged.update(getattr(klass, "fields", {}) if klass is not object else {})
        return merged

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> "Task":
        known = cls.all_fields()
        for key in settings:
            if key not in known:
                close = difflib.get_close_matches(str(key), list(known), n=1)
                hint = f"; did you mean task.{close[0]}?" if close else f" (fields: {', '.join(known)})"
                raise ConfigError(f"task.{key} is not a field of {cls.__name__}{hint}")
        missing = [key for key, default in known.items() if default is REQUIRED and settings.get(key) is None]
        if missing:
            raise ConfigError(f"task: {cls.__name__} needs {', '.join(f'task.{m}' for m in missing)}")
        values = {key: (None if default is REQUIRED else default) for key, default in known.items()}
        values.update(settings)
        return cls(**values)

    def _check(self) -> None:
        if self.answer_type not in ANSWER_TYPES:
            raise ConfigError(f"task.answer_type={self.answer_type!r} must be one of {', '.join(ANSWER_TYPES)}")
        if self.evaluator not in EVALUATORS:
            raise ConfigError(f"task.evaluator={self.evaluator!r} must be one of {', '.join(EVALUATORS)}")
        for key in ("answer_tag", "reasoning_tag"):
            value = getattr(self, key)
            if value is not None and (not isinstance(value, str) or not value.replace("_", "").isalnum()):
                raise ConfigError(f"task.{key}={value!r} must be a tag name like 'answer'")
        if self.reasoning_tag and self.reasoning_tag.lower() == self.answer_tag.lower():
            raise ConfigError("task.reasoning_tag and task.answer_tag must differ")
        if self.answer_type == "choice":
            if not self.labels or isinstance(self.labels, str) or not all(isinstance(x, str) for x in self.labels):
                raise ConfigError("task.answer_type=choice needs task.labels, e.g. task.labels=[yes,no,maybe]")
            self.labels = list(self.labels)
        if not isinstance(self.stop, list) or not all(isinstance(s, str) and s for s in self.stop):
            raise ConfigError(f"task.stop={self.stop!r} must be a list of non-empty strings ([] for none)")
        if self.data_files is not None:
            if not isinstance(self.data_files, dict) or not set(self.data_files) <= set(SPLITS) or not self.data_files:
                raise ConfigError(
                    f"task.data_files={self.data_files!r} must be a mapping like {{train: a.jsonl, test: b.jsonl}}"
                )
            for split, path in self.data_files.items():
                if not Path(str(path)).is_file():
                    raise ConfigError(f"task.data_files.{split}={path}: no such file")
        for split, entry in (self.hub or {}).items():
            if split not in SPLITS or not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
                raise ConfigError(f"task.hub.{split}={entry!r} must be {{id: <dataset>, config: <name or null>, "
                                  "split: <split>}} under train or test")
        if self.example is not None and not (
            isinstance(self.example, dict) and isinstance(self.example.get("question"), str)
            and isinstance(self.example.get("completion"), str)
        ):
            raise ConfigError("task.example must be null or {question: ..., completion: ...}")

    # -- rows -----------------------------------------------------------------------------------
    def load_split(self, split: str) -> tuple[list[dict], DataReport]:
        """The usable rows of `split` and the report of what was left out (logged). No usable row at all
        stops the run with the source named."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        raw_rows, source = self.raw_rows(split)
        report = DataReport(source=source, split=split)
        rows = report.keep_usable(raw_rows, self.to_row)
        log.info("Data: %s", report.summary())
        if not rows:
            raise ConfigError(f"task {self.name}: no usable rows in {report.summary()}; {self.data_hint()}")
        return rows, report

    def hf_dataset(self, split: str):
        """`load_split` as a datasets.Dataset (what GRPOTrainer takes), and its report."""
        from datasets import Dataset

        rows, report = self.load_split(split)
        try:
            return Dataset.from_list(rows), report
        except Exception as error:  # pyarrow refuses a column whose type differs between rows
            raise ConfigError(
                f"task {self.name}: the rows of {report.source} do not form a table ({type(error).__name__}: "
                f"{str(error)[:200]}); give every column one type in every row"
            ) from None

    def raw_rows(self, split: str) -> tuple[list, str]:
        """Raw rows and where they came from: `data_files`, else the hub, else the shipped copy."""
        if self.data_files:
            if split not in self.data_files:
                raise ConfigError(f"task.data_files has no '{split}' file; give {{train: ..., test: ...}}")
            path = Path(str(self.data_files[split]))
            return read_rows(path), str(path)
        entry = (self.hub or {}).get(split)
        if entry:
            rows = hub_rows(entry["id"], entry.get("config"), entry.get("split", split))
            if rows is not None:
                return rows, entry["id"]
        return self.builtin_rows(split)

    def builtin_rows(self, split: str) -> tuple[list, str]:
        """Rows when neither `data_files` nor the hub provide them; by default there are none."""
        where = "offline (HF_HUB_OFFLINE=1)" if offline() else "the hub is not reachable or lacks it"
        raise ConfigError(f"task {self.name}: no {split} data here ({where}); {self.data_hint()}")

    def data_hint(self) -> str:
        return f"point task.data_files.{{train,test}} at local files ({self.columns_hint()})"

    def columns_hint(self) -> str:
        return "one JSON object per line"

    def to_row(self, raw: dict) -> tuple[dict | None, str | None]:
        """A training/evaluation row: `prompt`, `question`, `answer`, and every other raw column."""
        if raw.get(IN_TRAINING_SPLIT):  # set by mark_training_repeats
            return None, "also in the training split"
        question, gold, problem = self.parse(raw)
        if problem:
            return None, problem
        if not question or not question.strip():
            return None, "empty question"
        if len(question) > MAX_QUESTION_CHARS:
            return None, "question too long"
        row = {key: value for key, value in raw.items() if key not in RESERVED_COLUMNS}
        row.update(prompt=self.prompt(question.strip()), question=question.strip(), answer=gold)
        return row, None

    def parse(self, raw: dict) -> tuple[str | None, str | None, str | None]:
        """(question, gold answer, None), or (None, None, why the row is unusable)."""
        raise NotImplementedError

    def prompt(self, question: str) -> list[dict]:
        """System prompt, the worked example (for base models), then the question."""
        messages = [{"role": "system", "content": self.system_prompt}]
        if self.example:
            messages += [
                {"role": "user", "content": self.example["question"]},
                {"role": "assistant", "content": self.example["completion"]},
            ]
        messages.append({"role": "user", "content": question})
        return messages

    # -- answers --------------------------------------------------------------------------------
    def extract(self, text: str, strict: bool = False) -> str | None:
        """The final answer in a completion. strict: only inside the answer tag."""
        from rewards.extract import extract_answer, extract_choice, extract_latex, extract_text

        if self.answer_type == "choice":
            return extract_choice(text, self.labels, tag=self.answer_tag, strict=strict)
        if self.answer_type == "latex":
            return extract_latex(text, tag=self.answer_tag, strict=strict)
        if self.answer_type == "text":
            return extract_text(text, tag=self.answer_tag, strict=strict)
        return extract_answer(text, tag=self.answer_tag, strict=strict).value

    def score_answer(self, value: str | None, row: dict) -> float:
        """1.0 when an extracted answer is correct for `row`, else 0.0 (a verifier may give partial credit).

        Raises `rewards.safe_verify.VerifyError` when the bounded math verifier gave up: the reward
        counts that as an error, evaluation as wrong."""
        from rewards.extract import answers_match, latex_answers_match, texts_match

        if value is None:
            return 0.0
        gold = str(row["answer"])
        if self.answer_type == "number":
            return float(answers_match(value, gold, raise_on_error=True))
        if self.answer_type == "latex":
            return float(latex_answers_match(value, gold, raise_on_error=True))
        return float(texts_match(value, gold))

    def is_correct(self, text: str, row: dict, strict: bool = False) -> bool:
        from rewards.safe_verify import VerifyError

        try:
            return self.score_answer(self.extract(text, strict=strict), row) >= 1.0
        except VerifyError:
            return False

    # -- SFT ------------------------------------------------------------------------------------
    def sft_completion(self, row: dict) -> str | None:
        """The assistant turn SFT teaches for a row, in this task's format; None: the row has none.
        By default the gold answer alone, with no reasoning (a task with worked solutions overrides)."""
        return self.format_completion(str(row["answer"]))

    def format_completion(self, answer: str, reasoning: str | None = None) -> str:
        """`<reasoning>…</reasoning>` (when the task has a reasoning tag and there is reasoning), then the
        answer alone inside the answer tag: the format the rewards and the strict evaluation read."""
        body = f"<{self.answer_tag}>\n{answer.strip()}\n</{self.answer_tag}>"
        if self.reasoning_tag and reasoning and reasoning.strip():
            return f"<{self.reasoning_tag}>\n{reasoning.strip()}\n</{self.reasoning_tag}>\n{body}"
        return body
