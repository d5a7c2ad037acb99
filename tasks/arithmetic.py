"""Two-operand integer arithmetic, generated offline from a seed: `+task=arithmetic`.

"State the final answer to the following arithmetic problem: 47 + 5 =": the first operand has
`first_digits` digits, the second `second_digits`, the operator is drawn from `operators`. Each split
is its own seeded draw; a test problem whose expression also occurs in the training split is left out
(and counted), so held-out accuracy is measured on expressions the model never trained on. Keep
`train_size` well below the number of distinct expressions (two-digit ± one-digit: 1,800), or few
test problems are left.
"""

import operator
import random

from tasks.base import Task, check_test_seed, mark_training_repeats, split_seed
from tasks.errors import ConfigError

OPERATORS = {"+": operator.add, "-": operator.sub, "*": operator.mul}
MAX_DIGITS = 9


class Arithmetic(Task):
    fields = {
        # digits of the first and the second operand (1: 0-9; 2: 10-99; ...)
        "first_digits": 2,
        "second_digits": 1,
        # operators drawn uniformly: any of +, -, *
        "operators": ["+", "-"],
        # problems generated for each split
        "train_size": 500,
        "test_size": 1000,
        # seed of the training split; the test split uses test_seed, or seed + 1000003 when that is null
        "seed": 0,
        "test_seed": None,
        # the question; {expression} is replaced by e.g. "47 + 5"
        "question_template": "State the final answer to the following arithmetic problem: {expression} =",
    }

    def _check(self):
        super()._check()
        for key in ("first_digits", "second_digits"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_DIGITS:
                raise ConfigError(f"task.{key}={value!r} must be an integer from 1 to {MAX_DIGITS}")
        for key in ("train_size", "test_size", "seed"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < (0 if key == "seed" else 1):
                raise ConfigError(f"task.{key}={value!r} must be a {'non-negative' if key == 'seed' else 'positive'} integer")
        check_test_seed(self.test_seed)
        operators = self.operators
        if isinstance(operators, str) or not operators or not all(op in OPERATORS for op in operators):
            raise ConfigError(f"task.operators={operators!r} must be a list drawn from {list(OPERATORS)}, e.g. ['+', '-']")
        self.operators = list(operators)
        if not isinstance(self.question_template, str) or "{expression}" not in self.question_template:
            raise ConfigError("task.question_template must contain {expression}, e.g. 'What is {expression}?'")

    def builtin_rows(self, split):
        rows = self._generate(split)
        if split == "test":
            mark_training_repeats(rows, self._generate("train"))
        return rows, f"arithmetic {self.first_digits}-digit {'/'.join(self.operators)} {self.second_digits}-digit (seed {self._seed(split)})"

    def _seed(self, split: str) -> int:
        return split_seed(split, self.seed, self.test_seed)

    def _generate(self, split: str) -> list[dict]:
        rng = random.Random(self._seed(split))
        size = self.train_size if split == "train" else self.test_size
        rows = []
        for _ in range(size):
            first, second = _operand(rng, self.first_digits), _operand(rng, self.second_digits)
            symbol = rng.choice(self.operators)
            expression = f"{first} {symbol} {second}"
            rows.append({"question": self.question_template.format(expression=expression),
                         "answer": str(OPERATORS[symbol](first, second))})
        return rows

    def parse(self, raw):
        question, answer = raw.get("question"), raw.get("answer")
        if not isinstance(question, str) or not isinstance(answer, str):
            return None, None, "missing question or answer"
        return question, answer, None


def _operand(rng: random.Random, digits: int) -> int:
    """A number with exactly `digits` digits (one digit: 0-9)."""
    low = 0 if digits == 1 else 10 ** (digits - 1)
    return rng.randint(low, 10**digits - 1)
