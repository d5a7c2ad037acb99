"""Hostile completions: each must score 0 for gold "72", quickly, with no side effect.

Built lazily (some are megabytes). Shared by tests/test_rewards_hostile.py and
scripts/bench_rewards.py.
"""

MB = 1_000_000


def _fmt(answer: str) -> str:
    return f"<reasoning>\nwork\n</reasoning>\n<answer>\n{answer}\n</answer>"


def hostile_cases() -> dict[str, str]:
    deep_frac = "\\frac{" * 10_000 + "1" + "}{2}" * 10_000
    return {
        "5mb_plain_text": "a" * (5 * MB),
        "5mb_then_answer_72_wrong_gold": "word " * MB + _fmt("71"),
        "unclosed_answer_tags_x500k": "<answer>" * 500_000,
        "many_opens_one_close": "<answer>" * 500_000 + "71</answer>",
        "open_close_spam": "<answer></answer>" * 200_000,
        "deep_frac_10k_in_tag": _fmt(deep_frac),
        "deep_frac_10k_boxed": "\\boxed{" + deep_frac + "}",
        "deep_braces_boxed": "\\boxed{" + "{" * 50_000 + "72" + "}" * 50_000 + "}",
        "deep_sqrt_in_tag": _fmt("\\sqrt{" * 5_000 + "5184" + "}" * 5_000),
        "huge_power_latex": _fmt("10^{1000000000}"),
        "huge_power_boxed": "\\boxed{10^{1000000000}}",
        "power_tower_python": _fmt("9**9**9**9"),
        "power_tower_latex": _fmt("9^{9^{9^{9}}}"),
        "nested_power_999": _fmt("999^{999^{999}}"),
        "big_factorial": "\\boxed{(10^{10})!}",
        "factorial_plain": _fmt("100000000!"),
        "digits_5000_in_tag": _fmt("7" * 5000),
        "digits_5000_last_number": "so the result is " + "7" * 5000,
        "digits_5000_hash": "#### " + "9" * 5000,
        "scientific_exponent": _fmt("1e1000000000"),
        "fraction_5000_digits": _fmt("1" * 5000 + "/" + "3" * 5000),
        "python_injection": _fmt("__import__('os').system('touch /tmp/gemma_grpo_pwned')"),
        "lambda_injection": _fmt("(lambda: __import__('os').system('touch /tmp/gemma_grpo_pwned'))()"),
        "latex_injection": _fmt("\\input{/etc/passwd}"),
        "regex_minus_chain": "<reasoning>" + "1-" * 200_000 + "1 = 0</reasoning>" + _fmt("71"),
        "regex_equation_flood": "<reasoning>" + "1 + 1 = 2\n" * 200_000 + "</reasoning>" + _fmt("71"),
        "regex_commas": "1," * 500_000,
        "regex_answer_is_flood": "the answer is " * 200_000,
        "regex_hash_flood": "####" * 250_000,
        "regex_boxed_no_brace": "\\boxed" * 200_000,
        "regex_dollars": "$" * MB,
        "regex_dots_digits": "1." * 500_000,
        "regex_spaces": " " * (2 * MB) + "x",
        "regex_units_tail": _fmt("72" + " a" * 100_000),
        "many_boxed_different": " ".join(f"\\boxed{{{i}}}" for i in range(100_000)),
        "hedge_boxed": "\\boxed{71} \\boxed{72} \\boxed{73}",
        "hedge_tag": _fmt("71 or 72"),
        "hedge_prose": "the answer is 71 or 72",
        "null_bytes": "\x00" * MB + _fmt("\x0071"),
        "unicode_flood": "\u202e\u0301" * 500_000,
    }
