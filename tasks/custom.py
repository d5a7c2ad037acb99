"""Your own data, no code: `+task=custom task.data_files='{train: my.jsonl, test: my_test.jsonl}'`.

Columns are named in the config (`prompt_column`, `answer_column`, optional `solution_column` with a
worked solution for SFT); every other column reaches the rewards untouched. `answer_type` says how a
gold answer is read and compared: number (exact, any costume: "1,800", "$72"), latex (math-verify),
text (trimmed, case- and space-insensitive), choice (one of `labels`). A gold answer that cannot be
read as its type makes that row unusable, counted by reason; only a file with no usable row stops
the run.
"""

from tasks.base import Task
from tasks.errors import ConfigError


class Custom(Task):
    fields = {
        # the column holding the question (the user turn)
        "prompt_column": "question",
        # the column holding the gold final answer
        "answer_column": "answer",
        # optional: a worked solution, taught as reasoning by SFT (sft=task); null: SFT teaches the answer alone
        "solution_column": None,
    }

    def _check(self):
        super()._check()
        if not self.data_files:
            raise ConfigError(
                "task=custom needs task.data_files, e.g. task.data_files='{train: my.jsonl, test: my_test.jsonl}' "
                "(.jsonl, .json or .csv)"
            )

    def raw_rows(self, split):
        rows, source = super().raw_rows(split)
        needed = [c for c in (self.prompt_column, self.answer_column) if c]
        found = sorted({key for row in rows[:1000] if isinstance(row, dict) for key in row})
        missing = [c for c in needed if c not in found]
        if rows and missing:
            raise ConfigError(
                f"{source}: no column {', '.join(repr(m) for m in missing)}; it has {', '.join(found) or 'no columns'}. "
                "Name yours with task.prompt_column=... task.answer_column=..."
            )
        return rows, source

    def parse(self, raw):
        from rewards.normalize import canonical, parse_number

        question, answer = raw.get(self.prompt_column), raw.get(self.answer_column)
        if not isinstance(question, str):
            return None, None, f"{self.prompt_column} is not text"
        if answer is None or (isinstance(answer, str) and not answer.strip()):
            return None, None, f"empty {self.answer_column}"
        answer = str(answer).strip()
        if self.answer_type == "number":
            value = parse_number(answer)
            if value is None:
                return None, None, f"{self.answer_column} is not a number"
            answer = canonical(value)
        elif self.answer_type == "choice":
            by_fold = {label.casefold(): label for label in self.labels}
            if answer.casefold() not in by_fold:
                return None, None, f"{self.answer_column} not one of the labels"
            answer = by_fold[answer.casefold()]
        return question, answer, None

    def sft_completion(self, row):
        solution = row.get(self.solution_column) if self.solution_column else None
        return self.format_completion(row["answer"], solution if isinstance(solution, str) else None)
