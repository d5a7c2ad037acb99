"""Property tests for answer normalisation and matching (hypothesis)."""

from fractions import Fraction

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rewards import answers_match, extract_answer
from rewards.normalize import canonical, parse_number

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
integers = st.integers(min_value=-(10**12), max_value=10**12)
UNITS = ["dollars", "apples", "km", "cookies per day", "minutes"]


def _thousands(n: int) -> str:
    return f"{n:,}"


@st.composite
def costumed(draw):
    """An integer in any costume the normaliser promises to see through, and its plain form."""
    n = draw(integers)
    body = draw(st.sampled_from([str(abs(n)), _thousands(abs(n))]))
    body = body + draw(st.sampled_from(["", ".0", ".00"]))
    if draw(st.booleans()):
        body = draw(st.sampled_from(["$", "€", "£"])) + body
    if n < 0:
        body = "-" + body
    suffix = draw(st.sampled_from(["", "%", " " + draw(st.sampled_from(UNITS))]))
    wrapper = draw(st.sampled_from(["{}", "\\boxed{{{}}}", "${}$", "\\({}\\)", "**{}**", "**Answer:** {}", "The answer is {}."]))
    return n, wrapper.format(body + suffix)


@SETTINGS
@given(costumed())
def test_costumed_integer_matches_its_plain_form(pair):
    n, text = pair
    assert answers_match(text, str(n)), text


@SETTINGS
@given(costumed(), st.integers(min_value=1, max_value=10**6))
def test_costumed_integer_never_matches_a_different_integer(pair, delta):
    n, text = pair
    assert not answers_match(text, str(n + delta)), text


@SETTINGS
@given(costumed())
def test_costumed_integer_in_the_answer_tag_extracts_to_the_plain_form(pair):
    n, text = pair
    extraction = extract_answer(f"<reasoning>work</reasoning><answer>{text}</answer>")
    assert extraction.value == str(n)
    assert extraction.marker == "tag"


@SETTINGS
@given(st.integers(min_value=-10_000, max_value=10_000), st.sampled_from([1, 2, 4, 5, 8, 10, 16, 20, 25, 40, 125]))
def test_fraction_matches_its_finite_decimal(a, b):
    value = Fraction(a, b)
    decimal = canonical(value)
    assert "/" not in decimal
    assert answers_match(f"{a}/{b}", decimal)
    assert answers_match(f"\\frac{{{a}}}{{{b}}}", decimal)
    assert answers_match(decimal, f"{a}/{b}")


@SETTINGS
@given(st.integers(min_value=-10_000, max_value=10_000), st.integers(min_value=1, max_value=500))
def test_canonical_round_trips(a, b):
    value = Fraction(a, b)
    assert parse_number(canonical(value)) == value


@SETTINGS
@given(st.integers(min_value=0, max_value=10**9), st.integers(min_value=0, max_value=10**9))
def test_two_different_answers_are_hedging(x, y):
    text = f"<answer>{x} or {y}</answer>"
    extraction = extract_answer(text)
    if x == y:
        assert extraction.value == str(x)
    else:
        assert extraction.value is None and extraction.ambiguous
        assert not answers_match(extraction.value, str(x))


@SETTINGS
@given(st.text(max_size=300))
def test_arbitrary_text_never_raises(text):
    extraction = extract_answer(text)
    assert extraction.value is None or isinstance(extraction.value, str)
    assert isinstance(answers_match(text[:50], "72"), bool)
