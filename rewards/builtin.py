"""Built-in rewards, registered by name. Each factory's keyword arguments are its params.

Design rules (each one closes a hole a policy would otherwise learn to exploit):
* no reward pays per tag or per substring: tags must appear *exactly once*;
* hedged answers (several different final answers) score 0 (``rewards.extract``);
* ``reasoning_steps`` counts only *true* arithmetic (``3 * 4 = 12``, checked exactly),
  each distinct equation once, capped, so padding and made-up equations do not pay;
* every score is per completion: one bad completion yields NaN for itself only, which the
  ``SafeReward`` wrapper turns into 0.0 and counts as an error.

Scores:
* ``correctness``: 1.0 if the extracted final answer equals the gold column, else 0.0.
* ``numeric_format``: 1.0 if the answer tag occurs exactly once and holds a clean number
  (``72``, ``-3``, ``0.5``: digits, optional sign and decimals, nothing else); 0.5 if it holds a
  number in a costume (``1,800``, ``$72``, ``72 dollars``, ``\\frac{3}{4}``, ``**72**``); else 0.0.
* ``reasoning_steps``: ``min(true distinct equations in <reasoning>, cap) / cap`` (cap 3).
* ``structure``: 0.25 each for (a) exactly one non-empty ``<reasoning>`` section, (b) exactly
  one non-empty ``<answer>`` section, (c) reasoning closed before answer opens, (d) nothing but
  whitespace / end-of-turn tokens after ``</answer>`` (only when (b) holds). Full format = 1.0.
  With ``reasoning_tag=None`` (answer-only tasks): 0.5 each for (b) and (d).
* ``length``: DAPO overlong shaping: 0.0 up to ``max_completion_length - cache`` tokens, then
  linearly down to -1.0 at ``max_completion_length`` (and beyond).
* ``choice``: 1.0 if the extracted label equals the gold label (case-insensitive), else 0.0.
* ``regex_verdict``: 1.0 if the last verdict matched by ``pattern`` equals the gold label
  (case-insensitive) and no different verdict appears, else 0.0.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from fractions import Fraction
from typing import Any

from rewards.extract import SCAN_CHARS, answers_match, extract_answer, extract_choice, extract_verdict, find_tag_spans
from rewards.normalize import completion_text, parse_number
from rewards.registry import register_reward

__all__ = ["count_true_steps", "structure_score"]

_END_TOKENS_RE = re.compile(r"<end_of_turn>|<eos>|</s>|<\|im_end\|>|<\|endoftext\|>|<turn\|>")
_CLEAN_NUMBER_RE = re.compile(r"^-?\d+(?:\.\d+)?$")
DEFAULT_VERDICT_PATTERN = r"I recommend this paper for (ACCEPTANCE|REJECTION)"


def _per_completion(score: Callable[[str, dict[str, Any]], float | None]) -> Callable[..., list[float | None]]:
    """Lift ``score(text, row)`` to TRL's batch signature; a raising row becomes NaN (counted)."""

    def batch(prompts=None, completions=(), **kwargs: Any) -> list[float | None]:
        n = len(completions)
        columns = {k: v for k, v in kwargs.items() if isinstance(v, (list, tuple)) and len(v) == n}
        out: list[float | None] = []
        for i, completion in enumerate(completions):
            row = {k: v[i] for k, v in columns.items()}
            try:
                out.append(score(completion_text(completion), row))
            except Exception as exc:
                batch.last_row_error = f"{type(exc).__name__}: {exc}"[:300]
                out.append(math.nan)
        return out

    batch.last_row_error = None
    return batch


def _check_tag(name: str, value: Any) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]{0,40}", value):
        raise ValueError(f"param {name!r} must be a tag name like 'answer', got {value!r}")
    return value


def _check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"param {name!r} must be true or false, got {value!r}")
    return value


def _gold(row: dict[str, Any], column: str) -> Any:
    if column not in row:
        raise KeyError(f"dataset column {column!r} missing (set the reward's gold_column param)")
    return row[column]


# -- correctness --------------------------------------------------------------------------
@register_reward("correctness")
def correctness(tag: str = "answer", strict: bool = False, gold_column: str = "answer"):
    """1.0 when the extracted final answer equals the gold answer column, else 0.0."""
    tag, strict = _check_tag("tag", tag), _check_bool("strict", strict)
    gold_column = _check_tag("gold_column", gold_column)

    def score(text: str, row: dict[str, Any]) -> float:
        gold = _gold(row, gold_column)
        extraction = extract_answer(text, tag=tag, strict=strict)
        if extraction.value is None:
            return 0.0
        return 1.0 if answers_match(extraction.value, str(gold), raise_on_error=True) else 0.0

    return _per_completion(score)


# -- numeric_format -----------------------------------------------------------------------
@register_reward("numeric_format")
def numeric_format(tag: str = "answer"):
    """1.0 for exactly one answer tag holding a clean number, 0.5 for a costumed number, else 0."""
    tag = _check_tag("tag", tag)
    open_t, close_t = f"<{tag}>", f"</{tag}>"

    def score(text: str, row: dict[str, Any]) -> float:
        lower = text[-SCAN_CHARS:].lower()
        if lower.count(open_t) != 1 or lower.count(close_t) != 1:
            return 0.0
        spans = find_tag_spans(text[-SCAN_CHARS:], tag, allow_unclosed_last=False)
        if len(spans) != 1:
            return 0.0
        content = spans[0].strip()
        if _CLEAN_NUMBER_RE.match(content) and len(content) <= 40:
            return 1.0
        return 0.5 if parse_number(content) is not None else 0.0

    return _per_completion(score)


# -- reasoning_steps ----------------------------------------------------------------------
_OPERAND = r"-?[$€£]?(?:\d{1,3}(?:,\d{3})+|\d{1,15})(?:\.\d{1,10})?%?"
_OPERATOR = r"\s?(?:[-+*/×÷·x]|\\times|\\cdot|\\div)\s?"
_EQUATION_RE = re.compile(
    r"(?<![\w.])\(?(" + _OPERAND + r"(?:\s?\)?" + _OPERATOR + r"\(?\s?" + _OPERAND + r"){1,8})\s?\)?\s?=\s?(" + _OPERAND + r")"
)
_TOKEN_RE = re.compile(r"\\times|\\cdot|\\div|[-+*/×÷·x]|" + _OPERAND)


def _evaluate(expression: str) -> Fraction | None:
    """Evaluate ``a op b op c ...`` (no parentheses honoured, * and / before + and -) exactly."""
    tokens = [t for t in _TOKEN_RE.findall(expression.replace("(", " ").replace(")", " ")) if t.strip()]
    values: list[Fraction] = []
    ops: list[str] = []
    expect_number = True
    for tok in tokens:
        if expect_number:
            value = parse_number(tok.replace("%", ""))
            if value is None:
                return None
            values.append(value)
            expect_number = False
        else:
            ops.append({"×": "*", "·": "*", "x": "*", "\\times": "*", "\\cdot": "*", "÷": "/", "\\div": "/"}.get(tok, tok))
            expect_number = True
    if expect_number or len(values) != len(ops) + 1:
        return None
    terms, signs = [values[0]], []
    for op, value in zip(ops, values[1:]):
        if op == "*":
            terms[-1] *= value
        elif op == "/":
            if value == 0:
                return None
            terms[-1] /= value
        else:
            signs.append(op)
            terms.append(value)
    total = terms[0]
    for sign, term in zip(signs, terms[1:]):
        total = total + term if sign == "+" else total - term
    return total


def count_true_steps(reasoning: str) -> int:
    """Distinct arithmetically true equations (``12 * 3 = 36``; rounding to 2 places allowed)."""
    seen: set[str] = set()
    for m in _EQUATION_RE.finditer(reasoning[-SCAN_CHARS:]):
        lhs, rhs = m.group(1), m.group(2)
        key = re.sub(r"\s", "", m.group(0))
        if key in seen:
            continue
        left, right = _evaluate(lhs), parse_number(rhs.replace("%", ""))
        if left is None or right is None:
            continue
        if abs(left - right) <= Fraction(1, 100) * max(1, abs(left)) and (left == right or left.denominator != 1):
            seen.add(key)
    return len(seen)


@register_reward("reasoning_steps")
def reasoning_steps(tag: str = "reasoning", cap: int = 3):
    """min(distinct true equations inside the reasoning tag, cap) / cap."""
    tag = _check_tag("tag", tag)
    if isinstance(cap, bool) or not isinstance(cap, int) or cap < 1:
        raise ValueError(f"param 'cap' must be a positive integer, got {cap!r}")

    def score(text: str, row: dict[str, Any]) -> float:
        spans = find_tag_spans(text[-SCAN_CHARS:], tag, allow_unclosed_last=False)
        if len(spans) != 1:
            return 0.0
        return min(count_true_steps(spans[0]), cap) / cap

    return _per_completion(score)


# -- structure ----------------------------------------------------------------------------
def structure_score(text: str, reasoning_tag: str | None = "reasoning", answer_tag: str = "answer") -> float:
    """Partial-credit format score (see module docstring); linear scans, DOTALL semantics."""
    text = text[-SCAN_CHARS:]
    lower = text.lower()
    if reasoning_tag is None:
        return _answer_only_score(text, lower, answer_tag)
    r_open, r_close = f"<{reasoning_tag.lower()}>", f"</{reasoning_tag.lower()}>"
    a_open, a_close = f"<{answer_tag.lower()}>", f"</{answer_tag.lower()}>"
    counts = [lower.count(t) for t in (r_open, r_close, a_open, a_close)]
    score = 0.0
    r_ok = counts[0] == counts[1] == 1 and lower.find(r_open) < lower.find(r_close)
    a_ok = counts[2] == counts[3] == 1 and lower.find(a_open) < lower.find(a_close)
    if r_ok and text[lower.find(r_open) + len(r_open) : lower.find(r_close)].strip():
        score += 0.25
    else:
        r_ok = False
    if a_ok and text[lower.find(a_open) + len(a_open) : lower.find(a_close)].strip():
        score += 0.25
    else:
        a_ok = False
    if r_ok and a_ok and lower.find(r_close) < lower.find(a_open):
        score += 0.25
    if a_ok:
        tail = text[lower.find(a_close) + len(a_close) :]
        if not _END_TOKENS_RE.sub("", tail).strip():
            score += 0.25
    return score


def _answer_only_score(text: str, lower: str, answer_tag: str) -> float:
    """0.5 for exactly one non-empty answer section, 0.5 more for nothing after it."""
    a_open, a_close = f"<{answer_tag.lower()}>", f"</{answer_tag.lower()}>"
    if not (lower.count(a_open) == lower.count(a_close) == 1 and lower.find(a_open) < lower.find(a_close)):
        return 0.0
    if not text[lower.find(a_open) + len(a_open) : lower.find(a_close)].strip():
        return 0.0
    tail = text[lower.find(a_close) + len(a_close) :]
    return 1.0 if not _END_TOKENS_RE.sub("", tail).strip() else 0.5


@register_reward("structure")
def structure(reasoning_tag: str | None = "reasoning", answer_tag: str = "answer"):
    """<reasoning> then <answer>, each exactly once, nothing after </answer> (0.25 per part); with
    reasoning_tag=None, the answer alone (0.5 per part)."""
    answer_tag = _check_tag("answer_tag", answer_tag)
    if reasoning_tag is not None:
        reasoning_tag = _check_tag("reasoning_tag", reasoning_tag)
        if reasoning_tag.lower() == answer_tag.lower():
            raise ValueError("params 'reasoning_tag' and 'answer_tag' must differ")
    return _per_completion(lambda text, row: structure_score(text, reasoning_tag, answer_tag))


# -- length -------------------------------------------------------------------------------
@register_reward("length")
def length(max_completion_length: int, cache: int | None = None):
    """DAPO soft overlong penalty from ``completion_ids`` lengths (whitespace estimate otherwise).

    ``cache`` defaults to a quarter of ``max_completion_length``.
    """
    if isinstance(max_completion_length, bool) or not isinstance(max_completion_length, int) or max_completion_length < 1:
        raise ValueError(f"param 'max_completion_length' must be a positive integer, got {max_completion_length!r}")
    if cache is None:
        cache = max(1, max_completion_length // 4)
    if isinstance(cache, bool) or not isinstance(cache, int) or not 1 <= cache <= max_completion_length:
        raise ValueError(f"param 'cache' must be an integer in [1, max_completion_length], got {cache!r}")
    free = max_completion_length - cache

    def batch(prompts=None, completions=(), completion_ids=None, **kwargs: Any) -> list[float]:
        out = []
        use_ids = isinstance(completion_ids, (list, tuple)) and len(completion_ids) == len(completions)
        for i, completion in enumerate(completions):
            try:
                n_tokens = len(completion_ids[i]) if use_ids else len(completion_text(completion).split())
            except Exception:
                out.append(math.nan)
                continue
            if n_tokens <= free:
                out.append(0.0)
            elif n_tokens >= max_completion_length:
                out.append(-1.0)
            else:
                out.append((free - n_tokens) / cache)
        return out

    return batch


# -- choice -------------------------------------------------------------------------------
@register_reward("choice")
def choice(labels: Sequence[str], gold_column: str = "answer", tag: str = "answer"):
    """Exact label match for multiple-choice / yes-no-maybe tasks (PubMedQA, MedQA)."""
    if isinstance(labels, str) or not isinstance(labels, Sequence) or not labels:
        raise ValueError(f"param 'labels' must be a non-empty list such as ['yes', 'no', 'maybe'], got {labels!r}")
    labels = [str(label) for label in labels]
    if any(not label.strip() for label in labels) or len({lab.casefold() for lab in labels}) != len(labels):
        raise ValueError(f"param 'labels' must be distinct non-empty strings, got {labels!r}")
    tag, gold_column = _check_tag("tag", tag), _check_tag("gold_column", gold_column)

    def score(text: str, row: dict[str, Any]) -> float:
        gold = str(_gold(row, gold_column)).strip().casefold()
        picked = extract_choice(text, labels, tag=tag)
        return 1.0 if picked is not None and picked.strip().casefold() == gold else 0.0

    return _per_completion(score)


# -- regex_verdict ------------------------------------------------------------------------
@register_reward("regex_verdict")
def regex_verdict(pattern: str = DEFAULT_VERDICT_PATTERN, gold_column: str = "answer"):
    """1.0 when the (single, last) verdict captured by ``pattern`` equals the gold label."""
    if not isinstance(pattern, str):
        raise ValueError(f"param 'pattern' must be a regex string, got {pattern!r}")
    try:
        regex = re.compile(pattern, re.IGNORECASE)
    except re.error as exc:
        raise ValueError(f"param 'pattern' is not a valid regex: {exc}") from None
    gold_column = _check_tag("gold_column", gold_column)

    def score(text: str, row: dict[str, Any]) -> float:
        gold = str(_gold(row, gold_column)).strip().upper()
        verdict = extract_verdict(text, regex)
        return 1.0 if verdict is not None and verdict == gold else 0.0

    return _per_completion(score)
