"""MATH competition problems (Hendrycks et al., 2021): LaTeX answers, compared by math-verify.

Test: HuggingFaceH4/MATH-500 (the 500-problem subset most papers report). Train: the 7,500 training
problems of DigitalLearningGmbH/MATH-lighteval, whose gold answer is the last `\\boxed{}` of the
reference solution. Nothing is shipped: offline, `task.data_files` with `problem` and `answer` (or a
`solution` holding `\\boxed{}`) columns. Equivalence runs in the bounded math-verify worker
(rewards/safe_verify.py), so a hostile completion cannot stall the trainer.
"""

from tasks.base import Task

MAX_SOLUTION_CHARS = 12000


class CompetitionMath(Task):
    def parse(self, raw):
        from rewards.extract import last_boxed

        problem = raw.get("problem")
        if not isinstance(problem, str):
            return None, None, "missing problem"
        answer = raw.get("answer")
        solution = raw.get("solution")
        if not (isinstance(answer, str) and answer.strip()):
            if not isinstance(solution, str) or len(solution) > MAX_SOLUTION_CHARS:
                return None, None, "no answer and no usable solution"
            answer = last_boxed(solution)
            if answer is None:
                return None, None, "no \\boxed{} answer in the solution"
        return problem, answer.strip(), None

    def columns_hint(self):
        return "JSON lines with problem and answer (or a solution ending in \\boxed{...})"

    def sft_completion(self, row):
        solution = row.get("solution")
        if not isinstance(solution, str) or not solution.strip():
            return None
        return self.format_completion(row["answer"], solution)
