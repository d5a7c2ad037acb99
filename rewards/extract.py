"""The one answer-extraction path, shared by the rewards and by the evaluator (eval/).

Why one module: harnesses disagree by up to ~30 points on the same GSM8K model because
each extracts answers differently (tests/rewards/labelled_cases.py pins ours). Training rewards and evaluation import
``extract_answer`` / ``answers_match`` from here, so "correct" means the same thing in both.

Order of markers (first marker kind present wins):
``<answer>`` tag ("tag") > ``\\boxed{}`` ("boxed") > ``#### n`` ("hash") >
"the answer is n" / "Answer: n" ("answer_is") > the last number in the text ("last_number").
``strict=True`` accepts only the task's own tag.

Hedging never pays: several *different* answers from the winning marker (``\\boxed{71}
\\boxed{72}``, ``<answer>71 or 72</answer>``) give ``value=None, ambiguous=True``. Repeating
the same answer is fine.

Bounded work on untrusted text: only the last ``SCAN_CHARS`` (20,000) characters are scanned
for markers (a completion whose answer sits earlier than that is treated as having none);
tags and braces are located with ``str.find``/linear scans, never with lazy ``.*?`` regexes
that go quadratic on thousands of unclosed tags; a candidate longer than 200 characters is
dropped before anything parses it.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from fractions import Fraction

from rewards.normalize import MAX_CANDIDATE_CHARS, MAX_DIGITS, canonical, clean_span, parse_number
from rewards.safe_verify import VerifyError, verify_equivalent

__all__ = [
    "SCAN_CHARS",
    "Extraction",
    "answers_match",
    "extract_answer",
    "extract_choice",
    "extract_latex",
    "extract_text",
    "extract_verdict",
    "find_tag_spans",
    "last_boxed",
    "latex_answers_match",
    "texts_match",
]

logger = logging.getLogger(__name__)

SCAN_CHARS = 20_000
_MAX_SPANS = 50  # more tag/boxed occurrences than this is spam, not an answer

_NUMBER_TOKEN_RE = re.compile(
    r"(?<![\w.])-?[$€£]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?![\d])|(?<![\w.])-?\.\d+(?!\d)"
)
_LATEX_FRAC_TOKEN_RE = re.compile(r"-?\\[dt]?frac\{\s?-?\d{1,40}\s?\}\{\s?\d{1,40}\s?\}")
_SLASH_FRAC_TOKEN_RE = re.compile(r"(?<![\w./])-?\d{1,40}\s?/\s?\d{1,40}(?![\w./])")
_HASH_RE = re.compile(r"####[ \t]{0,20}([^\n]{0,200})")
_ANSWER_IS_RE = re.compile(
    r"\banswer(?:\*\*|__)?[ \t]{0,4}(?:is\b|:|=)[ \t]{0,4}:?(?:\*\*|__)?[ \t]{0,4}:?([^\n]{0,200})",
    re.IGNORECASE,
)
_SENTENCE_END_RE = re.compile(r"\.(?:\s|$)|[!?;](?:\s|$)")
_HEDGE_RE = re.compile(r"\b(?:or|either|maybe|perhaps|possibly|and)\b|\bvs\.?|,\s|\bto\b|±|\\pm|\bplus or minus\b", re.IGNORECASE)
_SYMBOLIC_RE = re.compile(r"\\[A-Za-z]{2,}|\^|\bsqrt\b|\bpi\b|π|√|\\pi")
_OR_BEFORE_LAST_NUMBER_RE = re.compile(r"(?:\bor\b|/|\beither\b)\s{0,3}$", re.IGNORECASE)


@dataclass(frozen=True)
class Extraction:
    """What ``extract_answer`` found.

    value: the normalised answer (``"72"``, ``"0.75"``, ``"1/3"``, or a short symbolic string
        such as ``"2\\sqrt{3}"``), or None.
    marker: which marker produced it ("tag", "boxed", "hash", "answer_is", "last_number"), or None.
    ambiguous: the winning marker held several different answers (hedging); value is None.
    """

    value: str | None
    marker: str | None
    ambiguous: bool = False


_NOTHING = Extraction(None, None, False)


# -- locating spans -------------------------------------------------------------------------
def find_tag_spans(text: str, tag: str, allow_unclosed_last: bool = True) -> list[str]:
    """Contents of every ``<tag>...</tag>`` in ``text`` (case-insensitive), in order, linear time.

    If the last opening tag is never closed (generation cut at the stop string), its content
    up to the end of the text is returned too when ``allow_unclosed_last``.
    """
    lower = text.lower()
    open_t, close_t = f"<{tag.lower()}>", f"</{tag.lower()}>"
    spans: list[str] = []
    pos = 0
    while len(spans) <= _MAX_SPANS:
        start = lower.find(open_t, pos)
        if start < 0:
            break
        content_start = start + len(open_t)
        end = lower.find(close_t, content_start)
        if end < 0:
            if allow_unclosed_last:
                spans.append(text[content_start:])
            break
        nested = lower.rfind(open_t, content_start, end)
        if nested >= 0:
            # "<answer> junk <answer>72</answer>": the innermost opening is the real one.
            content_start = nested + len(open_t)
        spans.append(text[content_start:end])
        pos = end + len(close_t)
    return spans


def _find_boxed_spans(text: str) -> list[str]:
    """Contents of ``\\boxed{...}`` / ``\\fbox{...}`` with brace matching, capped per span."""
    spans: list[str] = []
    pos = 0
    while len(spans) <= _MAX_SPANS:
        start = -1
        for cmd in ("\\boxed", "\\fbox"):
            i = text.find(cmd, pos)
            if i >= 0 and (start < 0 or i < start):
                start, length = i, len(cmd)
        if start < 0:
            break
        i = start + length
        while i < len(text) and text[i] == " ":
            i += 1
        if i >= len(text) or text[i] != "{":
            pos = start + length
            continue
        depth, j, limit = 0, i, min(len(text), i + MAX_CANDIDATE_CHARS + 2)
        while j < limit:
            ch = text[j]
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
                if depth == 0:
                    break
            j += 1
        if depth != 0:
            spans.append("\x00overlong")  # unbalanced or too long: counts as an unusable answer
            pos = i + 1
            continue
        spans.append(text[i + 1 : j])
        pos = j + 1
    return spans


def _first_sentence(s: str) -> str:
    m = _SENTENCE_END_RE.search(s)
    return s[: m.start()] if m else s


# -- turning a span into one value ----------------------------------------------------------
def _number_tokens(s: str) -> list[Fraction]:
    values: list[Fraction] = []
    for regex in (_LATEX_FRAC_TOKEN_RE, _SLASH_FRAC_TOKEN_RE):
        for tok in regex.findall(s):
            v = parse_number(tok)
            if v is not None:
                values.append(v)
        s = regex.sub(" ", s)
    for tok in _NUMBER_TOKEN_RE.findall(s):
        digits = sum(ch.isdigit() for ch in tok)
        if digits > MAX_DIGITS:
            continue
        v = parse_number(tok)
        if v is not None:
            values.append(v)
    return values


def _value_from_span(span: str) -> tuple[str | None, bool]:
    """(value, ambiguous) for one candidate span."""
    if span.startswith("\x00"):
        return None, False
    s = clean_span(span)
    if not s or len(s) > MAX_CANDIDATE_CHARS:
        return None, False
    boxed = _find_boxed_spans(s)
    if boxed:
        values = {v for v, _ in (_value_from_span(b) for b in boxed)}
        if len(values) == 1:
            return values.pop(), False
        return None, True
    if "=" in s and not _HEDGE_RE.search(s):
        s = clean_span(s.rsplit("=", 1)[1])  # "12 * 6 = 72" -> "72"
    number = parse_number(s)
    if number is not None:
        return canonical(number), False
    distinct = set(_number_tokens(s))
    symbolic = _SYMBOLIC_RE.search(s) is not None
    hedged = _HEDGE_RE.search(s) is not None
    if symbolic and not hedged:
        return s, False  # "2\\sqrt{3}", "3^{2}": left to math-verify
    if len(distinct) > 1:
        return None, True
    if len(distinct) == 1:
        return canonical(distinct.pop()), False
    return None, False


def _resolve(spans: list[str], marker: str) -> Extraction | None:
    """Combine all occurrences of one marker: one distinct value wins, several = hedging."""
    values: set[str] = set()
    ambiguous = False
    for span in spans:
        value, amb = _value_from_span(span)
        ambiguous |= amb
        if value is not None:
            values.add(value)
    if ambiguous or len(values) > 1:
        return Extraction(None, marker, True)
    if values:
        return Extraction(values.pop(), marker, False)
    return None


def extract_answer(text: str, tag: str = "answer", strict: bool = False) -> Extraction:
    """Find the final answer in a completion (see the module docstring for the rules).

    A marker that is present but holds nothing usable (``<answer>see above</answer>``) does not
    fall through to weaker markers: the model chose a marker and it is judged on it. Never raises
    on any string input.
    """
    if not isinstance(text, str) or not text:
        return _NOTHING
    text = text[-SCAN_CHARS:]

    tag_spans = find_tag_spans(text, tag)
    if tag_spans:
        return _resolve(tag_spans, "tag") or Extraction(None, "tag", False)
    if strict:
        return _NOTHING

    boxed = _find_boxed_spans(text)
    if boxed:
        return _resolve(boxed, "boxed") or Extraction(None, "boxed", False)

    hashes = _HASH_RE.findall(text)
    if hashes:
        return _resolve([_first_sentence(h) for h in hashes[-_MAX_SPANS:]], "hash") or Extraction(None, "hash")

    answer_is = _ANSWER_IS_RE.findall(text)
    if answer_is:
        resolved = _resolve([_first_sentence(a) for a in answer_is[-_MAX_SPANS:]], "answer_is")
        if resolved is not None:
            return resolved

    return _last_number(text)


def _last_number(text: str) -> Extraction:
    tail = text[-2000:]
    last = None
    for last in _NUMBER_TOKEN_RE.finditer(tail):
        pass
    if last is None:
        return _NOTHING
    value = parse_number(last.group(0))
    if value is None:
        return _NOTHING
    before = tail[: last.start()]
    if _OR_BEFORE_LAST_NUMBER_RE.search(before):
        previous = _number_tokens(before[-40:])
        if previous and previous[-1] != value:
            return Extraction(None, "last_number", True)
    return Extraction(canonical(value), "last_number", False)


# -- comparing ------------------------------------------------------------------------------
_EXPONENT_RE = re.compile(r"\^\s?\{?\s?-?(\d+)")


def _safe_for_math_verify(s: str) -> bool:
    """Cheap refusal of strings that could make sympy spin: huge powers, factorials, nesting."""
    if len(s) > MAX_CANDIDATE_CHARS or "**" in s or "!" in s or "\x00" in s:
        return False
    if s.count("^") > 1 or any(len(e) > 3 for e in _EXPONENT_RE.findall(s)):
        return False
    depth = max_depth = 0
    for ch in s:
        if ch in "{([":
            depth += 1
            max_depth = max(max_depth, depth)
        elif ch in "})]":
            depth -= 1
    if max_depth > 6:
        return False
    run = 0
    for ch in s:
        run = run + 1 if ch.isdigit() else 0
        if run > MAX_DIGITS:
            return False
    return True


def answers_match(predicted: str | None, gold: str, *, raise_on_error: bool = False) -> bool:
    """Is ``predicted`` mathematically equal to ``gold``?

    Plain numbers in any costume (see ``rewards.normalize.parse_number``) are compared exactly
    with ``Fraction``; only when either side is not a plain number do both go, pre-screened and
    length-capped, to math-verify in the bounded worker (``rewards.safe_verify``).
    ``predicted`` may be an ``Extraction.value`` or a raw span such as ``"$1,800.00"``; a hedged
    span ("71 or 72") never matches.

    When the bounded verifier times out or its worker dies the answer is False, or
    ``VerifyError`` is raised if ``raise_on_error`` (the correctness reward counts these).
    """
    if predicted is None or gold is None:
        return False
    gold_s, pred_s = str(gold), str(predicted)
    gold_num = parse_number(gold_s)
    pred_num = parse_number(pred_s)
    if gold_num is not None and pred_num is not None:
        return gold_num == pred_num
    pred_value, ambiguous = _value_from_span(pred_s)
    if ambiguous or pred_value is None:
        return False
    gold_value, _ = _value_from_span(gold_s)
    gold_value = gold_value if gold_value is not None else clean_span(gold_s)
    if gold_num is not None:
        pred_num = parse_number(pred_value)
        if pred_num is not None:
            return gold_num == pred_num
    return _math_verified(gold_value, pred_value, raise_on_error)


def _math_verified(gold: str, predicted: str, raise_on_error: bool) -> bool:
    """math-verify in the bounded worker, after the cheap refusal of strings that could make sympy spin.
    Gold first: verify is not symmetric. A worker that gives up: False, or VerifyError if asked."""
    if not (_safe_for_math_verify(predicted) and _safe_for_math_verify(gold)):
        return False
    try:
        return verify_equivalent(gold, predicted)
    except VerifyError:
        if raise_on_error:
            raise
        logger.warning("math-verify gave up on %r vs gold %r; counted as wrong", predicted[:80], gold[:80])
        return False


# -- labels for multiple-choice and verdict tasks -------------------------------------------
_LABEL_ANSWER_IS_RE = re.compile(
    r"\banswer(?:\*\*|__)?[ \t]{0,4}(?:is\b|:)[ \t]{0,4}:?(?:\*\*|__)?[ \t]{0,4}([^\n]{0,80})", re.IGNORECASE
)
_LABEL_STRIP = " \t\r\n*_`\"'().[]:,;!?"


def _label_lookup(labels: list[str]) -> dict[str, str]:
    return {label.strip().casefold(): label for label in labels}


def _labels_in(span: str, labels: list[str]) -> list[str]:
    """Labels that occur as whole words in ``span``; single letters must match case exactly
    (so the article "a" is not option A)."""
    found: list[str] = []
    for label in labels:
        bare = label.strip()
        flags = 0 if len(bare) == 1 else re.IGNORECASE
        # "A patient ..." / "I think ...": the article and the pronoun are not options A and I.
        prose = r"(?! [a-z])" if bare in ("A", "I") else ""
        if re.search(r"(?<![\w])" + re.escape(bare) + r"(?![\w])" + prose, span, flags):
            found.append(label)
    return found


def _label_from_span(span: str, labels: list[str]) -> tuple[str | None, bool]:
    lookup = _label_lookup(labels)
    s = clean_span(span)[:MAX_CANDIDATE_CHARS]
    bare = s.strip(_LABEL_STRIP).casefold()
    if bare in lookup:
        return lookup[bare], False
    head = re.match(r"^[\s*_(\[]{0,4}([A-Za-z]{1,20})([\s*_)\].:,])", s + " ")
    single_letter_prose = head and len(head.group(1)) == 1 and head.group(2) == " "
    if head and head.group(1).casefold() in lookup and not single_letter_prose:
        first = lookup[head.group(1).casefold()]
        others = [lab for lab in _labels_in(s[head.end() :], labels) if lab != first]
        if not others or not _HEDGE_RE.search(s):
            return first, False
        return None, True
    found = set(_labels_in(s, labels))
    if len(found) == 1:
        return found.pop(), False
    if len(found) > 1:
        return None, True
    return None, False


def extract_choice(text: str, labels: list[str], tag: str = "answer", strict: bool = False) -> str | None:
    """The chosen label (spelled as in ``labels``), or None when absent or hedged.

    Looks, in order, inside the answer tag; at "answer is X" / "Answer: X"; at a lone label on
    the last non-empty line (``strict``: only the tag). Several different labels from the winning
    place give None.
    """
    if not isinstance(text, str) or not text or not labels:
        return None
    text = text[-SCAN_CHARS:]
    places = [find_tag_spans(text, tag)]
    if not strict:
        places.append([_first_sentence(a) for a in _LABEL_ANSWER_IS_RE.findall(text)])
    for spans in places:
        if not spans:
            continue
        chosen: set[str] = set()
        ambiguous = False
        for span in spans[-_MAX_SPANS:]:
            label, amb = _label_from_span(span, labels)
            ambiguous |= amb
            if label is not None:
                chosen.add(label)
        if ambiguous or len(chosen) > 1:
            return None
        if chosen:
            return chosen.pop()
    lines = [line for line in text[-2000:].splitlines() if line.strip()]
    if lines and not strict:
        bare = clean_span(lines[-1]).strip(_LABEL_STRIP).casefold()
        return _label_lookup(labels).get(bare)
    return None


def extract_verdict(text: str, pattern: str | re.Pattern) -> str | None:
    """The verdict captured by ``pattern`` (group 1, else the whole match), upper-cased.

    The last match counts; several different verdicts in one text give None. ``pattern`` comes
    from the config (trusted); the text is scanned only in its last ``SCAN_CHARS`` characters.
    """
    if not isinstance(text, str) or not text:
        return None
    regex = re.compile(pattern, re.IGNORECASE) if isinstance(pattern, str) else pattern
    verdicts = []
    for m in regex.finditer(text[-SCAN_CHARS:]):
        verdicts.append((m.group(1) if regex.groups else m.group(0)).strip().upper())
    if not verdicts or len(set(verdicts)) > 1:
        return None
    return verdicts[-1]


# -- LaTeX and free-text answers --------------------------------------------------------------
def last_boxed(text: str) -> str | None:
    """The content of the last ``\\boxed{}`` in ``text`` (a reference solution), or None."""
    spans = [s for s in _find_boxed_spans(text[-SCAN_CHARS:]) if not s.startswith("\x00")] if isinstance(text, str) else []
    return spans[-1].strip() if spans else None


def _last_candidate(text: str, tag: str, strict: bool) -> str | None:
    """The answer span: the last answer tag's content; unless ``strict``, else the last ``\\boxed{}``,
    else "the answer is X"; cleaned of its costume and capped, never parsed."""
    text = text[-SCAN_CHARS:]
    spans = find_tag_spans(text, tag)
    if not spans and not strict:
        spans = [s for s in _find_boxed_spans(text) if not s.startswith("\x00")]
        spans = spans or [_first_sentence(a) for a in _ANSWER_IS_RE.findall(text)]
    if not spans:
        return None
    value = clean_span(spans[-1])
    return value if value and len(value) <= MAX_CANDIDATE_CHARS else None


def extract_latex(text: str, tag: str = "answer", strict: bool = False) -> str | None:
    """A LaTeX final answer, kept whole (``(3, \\frac{\\pi}{2})``, ``p - q``): commas and words that the
    numeric extractor reads as hedging are part of such answers, so equivalence is left to math-verify."""
    if not isinstance(text, str) or not text:
        return None
    return _last_candidate(text, tag, strict)


def extract_text(text: str, tag: str = "answer", strict: bool = False) -> str | None:
    """A free-text final answer: the last answer tag's content (unless ``strict``, else "the answer is X",
    else the last non-empty line), trimmed and capped at 200 characters."""
    if not isinstance(text, str) or not text:
        return None
    value = _last_candidate(text, tag, strict)
    if value is None and not strict:
        lines = [line for line in text[-2000:].splitlines() if line.strip()]
        value = clean_span(lines[-1]) if lines else None
        value = value if value and len(value) <= MAX_CANDIDATE_CHARS else None
    return value


def texts_match(predicted: str | None, gold: str) -> bool:
    """Equal after trimming, case folding and collapsing whitespace."""
    if predicted is None or gold is None:
        return False
    fold = lambda s: " ".join(str(s).split()).casefold()  # noqa: E731
    return fold(predicted) == fold(gold)


def latex_answers_match(predicted: str | None, gold: str, *, raise_on_error: bool = False) -> bool:
    """Is the LaTeX answer ``predicted`` equivalent to ``gold``? Numbers exactly, equal strings at once,
    the rest by math-verify in the bounded worker (gold first: verify is not symmetric)."""
    if predicted is None or gold is None:
        return False
    pred_s, gold_s = clean_span(str(predicted)), clean_span(str(gold))
    if texts_match(pred_s, gold_s):
        return True
    gold_num, pred_num = parse_number(gold_s), parse_number(pred_s)
    if gold_num is not None and pred_num is not None:
        return gold_num == pred_num
    return _math_verified(gold_s, pred_s, raise_on_error)
