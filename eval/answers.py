"""A task's accuracy, strict and flexible, greedy or sampled (maj@k, pass@k), on held-out test rows.

Strict: the answer inside the task's answer tag (the format the rewards train). Flexible: any marker
the task's extraction accepts (for numbers: tag, \\boxed, ####, "the answer is", last number). Both
are reported because harnesses disagree by up to ~30 points on one model when they extract
differently; the gap between the two is how much of a score is format. Extraction and scoring are the
task's own (`Task.extract`, `Task.score_answer`), the very functions its correctness reward calls.
"""

from rewards.builtin import structure_score
from rewards.safe_verify import VerifyError

from eval.metrics import majority_vote, pass_at_k
from eval.suite import EvalResult
from tasks import ConfigError


def score_answers(
    task,
    rows: list[dict],
    generator,
    *,
    max_new_tokens: int,
    num_samples: int = 1,
    temperature: float = 0.0,
    ks: list[int] | None = None,
    stop: list[str] | None = None,
) -> EvalResult:
    """Generate for each row's `prompt`, score against it with the task (`tasks.Task`).

    accuracy_*: the share of all completions that are correct (with one greedy sample per question,
    the plain accuracy; with n samples, the unbiased pass@1). maj@k: majority vote over the first k
    samples' extracted answers (unparsed samples abstain). pass@k: Chen et al.'s estimator over all n.
    """
    ks = sorted(set(ks or ([num_samples] if num_samples > 1 else [])))
    if num_samples > 1 and temperature <= 0:
        raise ConfigError(f"eval.num_samples={num_samples} needs eval.temperature > 0 (greedy samples are identical)")
    too_big = [k for k in ks if not 1 <= k <= num_samples]
    if too_big:
        raise ConfigError(f"eval.ks={too_big}: each k must be between 1 and eval.num_samples={num_samples}")

    completions = generator.generate(
        [row["prompt"] for row in rows], max_new_tokens, num_samples=num_samples, temperature=temperature, stop=stop
    )
    counts = {"strict": 0, "flexible": 0}
    formatted = structured = 0
    pass_sums = {(k, mode): 0.0 for k in ks for mode in counts}
    maj_counts = {(k, mode): 0 for k in ks for mode in counts}
    samples = []
    for row, texts in zip(rows, completions, strict=True):
        graded = {mode: [_grade(task, text, row, mode == "strict") for text in texts] for mode in counts}
        formatted += sum(value is not None for value, _ in graded["strict"])
        structured += sum(structure_score(text, task.reasoning_tag, task.answer_tag) == 1.0 for text in texts)
        for mode, grades in graded.items():
            correct = sum(ok for _, ok in grades)
            counts[mode] += correct
            for k in ks:
                pass_sums[k, mode] += pass_at_k(len(grades), correct, k)
                vote = majority_vote([value for value, _ in grades[:k]])
                maj_counts[k, mode] += _correct(task, vote, row)
        samples.append(_sample_record(task.name, row, texts, graded))

    n = len(rows)
    total = n * num_samples
    metrics = {
        "accuracy_strict": counts["strict"] / total if total else 0.0,
        "accuracy_flexible": counts["flexible"] / total if total else 0.0,
        # the share of completions a strict grader can read at all: an answer inside the answer tag
        "format_rate": formatted / total if total else 0.0,
        # the whole trained format: reasoning (when the task has it) then the answer, each once, nothing
        # after (the structure reward's 1.0)
        "structure_rate": structured / total if total else 0.0,
        "n": n,
        "num_samples": num_samples,
        "correct_strict": counts["strict"],
        "correct_flexible": counts["flexible"],
    }
    for k in ks:
        for mode in counts:
            metrics[f"pass@{k}_{mode}"] = pass_sums[k, mode] / n if n else 0.0
            metrics[f"maj@{k}_{mode}"] = maj_counts[k, mode] / n if n else 0.0
    return EvalResult(task.name, metrics, samples)


def _correct(task, value: str | None, row: dict) -> bool:
    """A full score from the task's judge; a verifier that gives up counts as wrong."""
    try:
        return value is not None and task.score_answer(value, row) >= 1.0
    except VerifyError:
        return False


def _grade(task, text: str, row: dict, strict: bool) -> tuple[str | None, bool]:
    value = task.extract(text, strict=strict)
    return value, _correct(task, value, row)


def _sample_record(name: str, row: dict, texts: list[str], graded: dict) -> dict:
    record = {
        "task": name,
        "prompt": row["prompt"],
        "completion": texts[0],
        "extracted_strict": graded["strict"][0][0],
        "extracted_flexible": graded["flexible"][0][0],
        "gold": row["answer"],
        "correct_strict": graded["strict"][0][1],
        "correct_flexible": graded["flexible"][0][1],
    }
    if len(texts) > 1:
        record["all_completions"] = texts
        record["all_correct_strict"] = [ok for _, ok in graded["strict"]]
        record["all_correct_flexible"] = [ok for _, ok in graded["flexible"]]
    return record

