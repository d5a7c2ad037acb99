"""Any reasoning-gym procedural dataset (`pip install -e ".[reasoning-gym]"`), seeded and offline.

`+task=reasoning_gym task.dataset=chain_sum task.dataset_config='{min_terms: 2, max_terms: 2}'`.
Each split is generated from its own seed; a test problem whose question also occurs in the training
split is left out (and counted), so held-out accuracy is measured on problems the model never trained
on. reasoning-gym's own verifier (`score_answer`) is the correctness reward and the evaluation's
judge; it may give partial credit, and evaluation counts only a full score as correct.

Completions are hostile text: some reasoning-gym verifiers call `eval()` on the model's answer, so a
dataset whose verifier's source contains `eval(` is refused (this also refuses a few that only eval
their own gold answer: the check is conservative). The answer reaching a verifier is the extracted,
length-capped text inside the answer tag.
"""

import inspect
import json

from tasks.base import Task, check_test_seed, mark_training_repeats, split_seed
from tasks.errors import ConfigError


def _reasoning_gym():
    try:
        import reasoning_gym
    except ImportError:
        raise ConfigError('task=reasoning_gym needs the reasoning-gym package: pip install -e ".[reasoning-gym]"') from None
    return reasoning_gym


class ReasoningGym(Task):
    fields = {
        # the reasoning-gym dataset name, e.g. chain_sum, basic_arithmetic, leg_counting, letter_counting
        "dataset": None,
        # the dataset's own settings (its config dataclass fields), e.g. {min_terms: 2, max_terms: 2}
        "dataset_config": None,
        # problems generated for each split
        "train_size": 5000,
        "test_size": 1000,
        # seed of the training split; the test split uses seed + 1000003
        "seed": 0,
        # seed of the test split; null: seed + 1000003. Another value draws a second held-out set (still
        # without the training split's problems), e.g. to repeat an evaluation on other problems
        "test_seed": None,
    }

    def _check(self):
        super()._check()
        if not isinstance(self.dataset, str) or not self.dataset:
            raise ConfigError("task=reasoning_gym needs task.dataset, e.g. task.dataset=chain_sum")
        datasets = _reasoning_gym().factory.DATASETS
        if self.dataset not in datasets:
            raise ConfigError(f"task.dataset={self.dataset!r} is not a reasoning-gym dataset; available: "
                              f"{', '.join(sorted(datasets))}")
        check_test_seed(self.test_seed)
        for key in ("train_size", "test_size"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"task.{key}={value!r} must be a positive integer")
        if self.dataset_config is not None and not isinstance(self.dataset_config, dict):
            raise ConfigError(f"task.dataset_config={self.dataset_config!r} must be a mapping of the dataset's settings")
        verifier = type(self._generate("train", 1)).score_answer
        if "eval(" in inspect.getsource(verifier):
            raise ConfigError(
                f"task.dataset={self.dataset}: reasoning-gym's verifier for it calls eval(), which would run text "
                "from completions as Python; choose another dataset"
            )

    def _generate(self, split: str, size: int | None = None):
        seed = split_seed(split, self.seed, self.test_seed)
        size = size or (self.train_size if split == "train" else self.test_size)
        try:
            return _reasoning_gym().create_dataset(self.dataset, size=size, seed=seed, **(self.dataset_config or {}))
        except (TypeError, ValueError, AssertionError) as error:
            raise ConfigError(f"task.dataset_config for {self.dataset}: {type(error).__name__}: {error}") from None

    def builtin_rows(self, split):
        rows = [_row(entry) for entry in self._generate(split)]
        if split == "test":
            mark_training_repeats(rows, self._generate("train"))
        return rows, f"reasoning-gym {self.dataset} (seed {split_seed(split, self.seed, self.test_seed)})"

    def parse(self, raw):
        question, answer = raw.get("question"), raw.get("answer")
        if not isinstance(question, str) or answer is None or not isinstance(raw.get("entry"), str):
            return None, None, "missing question, answer or entry"
        return question, str(answer), None

    def score_answer(self, value, row):
        if value is None:
            return 0.0
        entry = json.loads(row["entry"])
        score = _reasoning_gym().get_score_answer_fn(entry["metadata"]["source_dataset"])(value, entry)
        return float(score)


def _row(entry: dict) -> dict:
    """The generated problem, with the whole entry (its metadata) as JSON text for the verifier: Arrow
    tables cannot hold metadata whose shape differs from problem to problem."""
    return {"question": entry["question"], "answer": str(entry["answer"]), "entry": json.dumps(entry, default=list)}
