"""Pure scoring arithmetic: pass@k, maj@k, binary and macro F1. No models, no I/O, easy to hand-check."""

from collections import Counter
from collections.abc import Hashable, Sequence
from math import comb, sqrt


def pass_at_k(n: int, c: int, k: int) -> float:
    """Chance that at least one of k samples drawn without replacement from n (c of them correct) is correct.

    The unbiased estimator of Chen et al. (2021), 1 - C(n-c, k) / C(n, k); with n == k it is simply
    "any of the n is correct". Sampling exactly k and taking "any correct" has higher variance, which is
    why one samples n > k when the budget allows.
    """
    if not 0 <= c <= n:
        raise ValueError(f"pass@k: need 0 <= c <= n, got n={n}, c={c}")
    if not 1 <= k <= n:
        raise ValueError(f"pass@k: need 1 <= k <= n (n samples per question), got k={k}, n={n}")
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


def wilson_interval(correct: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a proportion (95% with z=1.96); unlike the normal approximation it stays
    inside [0, 1] and is not zero-width at 0 or n correct, which matters for a weak model's 0/500."""
    if not 0 <= correct <= n or n == 0:
        raise ValueError(f"wilson_interval: need 0 <= correct <= n and n > 0, got correct={correct}, n={n}")
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def majority_vote(values: Sequence[Hashable | None]) -> Hashable | None:
    """The most frequent non-None value; ties go to the value seen first; None when all are None.

    Unparsed samples (None) abstain rather than vote, so one readable answer beats k-1 unreadable ones.
    """
    counts = Counter(v for v in values if v is not None)
    if not counts:
        return None
    return counts.most_common(1)[0][0]  # most_common is stable: equal counts keep first-seen order


def binary_metrics(predicted: Sequence[bool | None], actual: Sequence[bool]) -> dict[str, float | int]:
    """F1, accuracy and the two positive rates side by side, for a yes/no verdict.

    A prediction of None (no verdict parsed) counts as negative and as wrong. The predicted-positive
    rate next to the actual one is the calibration check: a model that always says "accept" on data
    that is 84% accepts scores F1 0.91 while knowing nothing, which `always_positive_f1` makes explicit.
    """
    if len(predicted) != len(actual):
        raise ValueError(f"binary_metrics: {len(predicted)} predictions for {len(actual)} labels")
    n = len(actual)
    tp = sum(1 for p, a in zip(predicted, actual) if p is True and a)
    fp = sum(1 for p, a in zip(predicted, actual) if p is True and not a)
    fn = sum(1 for p, a in zip(predicted, actual) if p is not True and a)
    tn = n - tp - fp - fn
    positives = tp + fn
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / positives if positives else 0.0
    return {
        "n": n,
        "accuracy": (tp + tn) / n if n else 0.0,
        "f1": _f1(precision, recall),
        "precision": precision,
        "recall": recall,  # the true-positive rate: share of actual positives predicted positive
        "predicted_positive_rate": (tp + fp) / n if n else 0.0,
        "actual_positive_rate": positives / n if n else 0.0,
        "always_positive_f1": _f1(positives / n, 1.0) if n and positives else 0.0,
        "unparsed": sum(1 for p in predicted if p is None),
    }


def macro_f1(predicted: Sequence[str | None], actual: Sequence[str], labels: Sequence[str]) -> float:
    """Mean of per-label F1 over `labels` (PubMedQA reports it beside accuracy: classes are unbalanced)."""
    scores = []
    for label in labels:
        tp = sum(1 for p, a in zip(predicted, actual) if p == label and a == label)
        fp = sum(1 for p, a in zip(predicted, actual) if p == label and a != label)
        fn = sum(1 for p, a in zip(predicted, actual) if p != label and a == label)
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        scores.append(_f1(precision, recall))
    return sum(scores) / len(scores) if scores else 0.0


def _f1(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0
