"""Cheap, exact normalisation of answer strings to numbers.

Why this exists: almost every GSM8K answer is a plain number wearing some costume
(``$1,800.00``, ``72 dollars``, ``\\frac{3}{4}``, ``**72**``). Deciding those with
``fractions.Fraction`` on a strictly validated string is exact, takes microseconds and
cannot be abused (no ``eval``, no sympy, bounded digit counts, no scientific exponents
beyond +-20). Only strings this module cannot decide go to math-verify (see
``rewards.safe_verify``).

Everything here is pure string work with linear-time regexes (no nested quantifiers), and
every entry point caps its input length first.
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Any

__all__ = [
    "MAX_CANDIDATE_CHARS",
    "MAX_DIGITS",
    "canonical",
    "clean_span",
    "completion_text",
    "parse_number",
]

# A pre-extracted answer candidate longer than this is not an answer (and is never parsed).
MAX_CANDIDATE_CHARS = 200
# Longer digit runs are refused: GSM8K golds are small, and int() on 5000 digits is slow-ish
# and capped by Python's int_max_str_digits anyway.
MAX_DIGITS = 40

_UNICODE_FIXES = str.maketrans({"\u2212": "-", "\u2013": "-", "\u00a0": " ", "\u202f": " ", "\u2009": " "})

# One number: optional sign, digits with optional thousands separators, optional decimals.
_NUM = r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+"
_NUMBER_RE = re.compile(
    r"^(?P<sign>[+-]?)\s?(?P<cur>[$€£]?)\s?(?P<sign2>[+-]?)(?P<num>" + _NUM + r")"
    r"(?:[eE](?P<exp>[+-]?\d{1,2}))?"
    r"\s?(?P<pct>%?)"
    # unit words after the number: "72 dollars", "5 apples", "3 km/h", "18 per day"
    r"(?:\s?[A-Za-z][A-Za-z./ ]{0,40})?$"
)
_FRACTION_RE = re.compile(r"^(?P<sign>[+-]?)\s?(?P<a>\d{1,40})\s?/\s?(?P<b>\d{1,40})(?:\s?[A-Za-z][A-Za-z ]{0,40})?$")
_LATEX_FRAC_RE = re.compile(r"^(?P<sign>[+-]?)\s?\\[dt]?frac\s?\{\s?(?P<a>[+-]?\d{1,40})\s?\}\s?\{\s?(?P<b>\d{1,40})\s?\}$")
_LATEX_FRAC_SHORT_RE = re.compile(r"^(?P<sign>[+-]?)\s?\\[dt]?frac(?P<a>\d)(?P<b>\d)$")

_TEXT_CMD_RE = re.compile(r"\\(?:text|textbf|mathrm|mathbf|textit|mbox)\s?\{([^{}]{0,80})\}")
_BOXED_ONE_RE = re.compile(r"^\\(?:boxed|fbox)\s?\{(.{0,200})\}$", re.DOTALL)
_LEAD_IN_RE = re.compile(
    r"^(?:the\s)?(?:final\s)?(?:answer|result|total)\s?(?:is|=|:)?\s?:?\s?", re.IGNORECASE
)
_VAR_EQ_RE = re.compile(r"^[A-Za-z]\s?=\s?")


def completion_text(completion: Any) -> str:
    """The text of one TRL completion: a plain string, or a conversational message list.

    Conversational completions (``[{"role": "assistant", "content": ...}]``) are joined by
    concatenating the assistant contents, so both forms score identically. Anything else
    (None, numbers) becomes ``str(completion)`` or "".
    """
    if completion is None:
        return ""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        return _content_text(completion.get("content"))
    if isinstance(completion, (list, tuple)):
        parts = []
        for message in completion:
            if isinstance(message, dict):
                if message.get("role", "assistant") == "assistant":
                    parts.append(_content_text(message.get("content")))
            elif isinstance(message, str):
                parts.append(message)
        return "".join(parts)
    return str(completion)


def _content_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # multimodal content blocks: [{"type": "text", "text": ...}]
        return "".join(b.get("text", "") for b in content if isinstance(b, dict) and isinstance(b.get("text"), str))
    return str(content)


def clean_span(span: str) -> str:
    """Strip the costume around an answer: markdown, inline LaTeX, ``\\text{}``, one ``\\boxed{}``,
    lead-ins like "Answer:" / "The final answer is", "x =", trailing punctuation.

    Input is capped at ``MAX_CANDIDATE_CHARS * 2``; the result may still be long, callers check.
    """
    s = span[: MAX_CANDIDATE_CHARS * 2].translate(_UNICODE_FIXES).strip()
    for _ in range(3):  # a few rounds: "**Answer:** $\boxed{72}$." peels in layers
        before = s
        s = s.replace("**", "").replace("__", "").strip("*_` \t\r\n")
        s = _strip_math_delimiters(s)
        s = _TEXT_CMD_RE.sub(r" \1", s).strip()
        m = _BOXED_ONE_RE.match(s)
        if m and _balanced(m.group(1)):
            s = m.group(1).strip()
        s = _LEAD_IN_RE.sub("", s, count=1).strip()
        s = _VAR_EQ_RE.sub("", s, count=1).strip()
        s = s.rstrip(".;:").strip()
        s = s.replace("\\$", "$").replace("\\%", "%").replace("\\!", "").replace("\\,", "").replace("\\ ", " ")
        s = s.replace("{,}", ",")
        if s == before:
            break
    return s


def _strip_math_delimiters(s: str) -> str:
    for left, right in (("$$", "$$"), ("\\(", "\\)"), ("\\[", "\\]"), ("$", "$")):
        if len(s) > len(left) + len(right) and s.startswith(left) and s.endswith(right):
            inner = s[len(left) : len(s) - len(right)]
            if left == "$" and "$" in inner:
                # "$5 and $6" is not an inline-math span
                continue
            return inner.strip()
    return s


def _balanced(s: str) -> bool:
    depth = 0
    for ch in s:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth < 0:
                return False
    return depth == 0


def _digits_ok(*parts: str | None) -> bool:
    return sum(ch.isdigit() for p in parts if p for ch in p) <= MAX_DIGITS


def parse_number(text: str | None) -> Fraction | None:
    """Parse a costume-wrapped number exactly, or return None when it is not a plain number.

    Accepts: ``72``, ``-3``, ``0.5``, ``.5``, ``1,800``, ``$1,800.00``, ``€5``, ``72%`` (read as 72,
    since GSM8K golds drop the sign), ``72 dollars``, ``3/4``, ``\\frac{3}{4}``, ``\\dfrac34``,
    ``1.5e3`` (exponent at most two digits), and all of those inside ``clean_span`` costumes.
    Refuses anything with more than ``MAX_DIGITS`` digits. Never raises.
    """
    if not text:
        return None
    s = clean_span(text)
    if not s or len(s) > MAX_CANDIDATE_CHARS:
        return None
    s = s.replace("\\%", "%")
    m = _NUMBER_RE.match(s)
    if m:
        if m.group("sign") and m.group("sign2"):
            return None
        if not _digits_ok(m.group("num"), m.group("exp")):
            return None
        value = Fraction(m.group("num").replace(",", ""))
        if m.group("exp"):
            value *= Fraction(10) ** int(m.group("exp"))
        if "-" in (m.group("sign") + m.group("sign2")):
            value = -value
        return value
    for regex in (_FRACTION_RE, _LATEX_FRAC_RE, _LATEX_FRAC_SHORT_RE):
        m = regex.match(s)
        if m:
            if not _digits_ok(m.group("a"), m.group("b")):
                return None
            b = int(m.group("b"))
            if b == 0:
                return None
            value = Fraction(int(m.group("a")), b)
            return -value if m.group("sign") == "-" else value
    return None


def canonical(value: Fraction) -> str:
    """One spelling per value: integers as ``72``, finite decimals as ``0.75``, others as ``1/3``."""
    if value.denominator == 1:
        return str(value.numerator)
    d = value.denominator
    twos = fives = 0
    while d % 2 == 0:
        d //= 2
        twos += 1
    while d % 5 == 0:
        d //= 5
        fives += 1
    if d != 1:
        return f"{value.numerator}/{value.denominator}"
    places = max(twos, fives)
    scaled = value * 10**places
    sign = "-" if scaled < 0 else ""
    digits = str(abs(scaled.numerator)).rjust(places + 1, "0")
    return f"{sign}{digits[:-places]}.{digits[-places:]}"
