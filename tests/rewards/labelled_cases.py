"""Labelled reward cases: (reward, params, completion, gold, expected score, id).

Hand-written cases first, then systematic variants (every costume x a few numbers), so every
format and hostile pattern the rewards promise to handle has an expected score.
"""

R = "<reasoning>\nShe has 6 boxes of 12, so 6 * 12 = 72.\n</reasoning>\n"


def fmt(answer: str, reasoning: str = R) -> str:
    return f"{reasoning}<answer>\n{answer}\n</answer>"


# (completion, gold, expected) for the correctness reward, default params.
CORRECTNESS = [
    # the task format
    (fmt("72"), "72", 1.0),
    (fmt("73"), "72", 0.0),
    (fmt("-3"), "-3", 1.0),
    (fmt("3"), "-3", 0.0),
    (fmt("0.5"), "0.5", 1.0),
    (fmt(".5"), "0.5", 1.0),
    (fmt("1/2"), "0.5", 1.0),
    (fmt("\\frac{1}{2}"), "0.5", 1.0),
    (fmt("\\dfrac{3}{4}"), "0.75", 1.0),
    (fmt("3/4"), "0.75", 1.0),
    (fmt("0.75"), "3/4", 1.0),
    (fmt("2/3"), "0.67", 0.0),
    (fmt("1,800"), "1800", 1.0),
    (fmt("$1,800.00"), "1800", 1.0),
    (fmt("€5"), "5", 1.0),
    (fmt("£12.50"), "12.5", 1.0),
    (fmt("72.0"), "72", 1.0),
    (fmt("72.00"), "72", 1.0),
    (fmt("72.01"), "72", 0.0),
    (fmt("50%"), "50", 1.0),
    (fmt("50\\%"), "50", 1.0),
    (fmt("72 dollars"), "72", 1.0),
    (fmt("5 apples"), "5", 1.0),
    (fmt("$18 per day"), "18", 1.0),
    (fmt("\\boxed{72}"), "72", 1.0),
    (fmt("$72$"), "72", 1.0),
    (fmt("\\(72\\)"), "72", 1.0),
    (fmt("\\[72\\]"), "72", 1.0),
    (fmt("**72**"), "72", 1.0),
    (fmt("**Answer:** 72"), "72", 1.0),
    (fmt("The answer is 72."), "72", 1.0),
    (fmt("x = 72"), "72", 1.0),
    (fmt("12 * 6 = 72"), "72", 1.0),
    (fmt("72 \\text{ dollars}"), "72", 1.0),
    (fmt("\\$72"), "72", 1.0),
    (fmt("-$3"), "-3", 1.0),
    (fmt("\u22123"), "-3", 1.0),
    (fmt("72."), "72", 1.0),
    (fmt("1.8e3"), "1800", 1.0),
    (fmt("see above"), "72", 0.0),
    (fmt(""), "72", 0.0),
    (fmt("seventy-two"), "72", 0.0),
    (fmt("\\sqrt{5184}"), "72", 1.0),
    (fmt("2\\sqrt{3}"), "\\sqrt{12}", 1.0),
    (fmt("2\\sqrt{3}"), "72", 0.0),
    # markers other than the tag
    ("So the total is \\boxed{72}.", "72", 1.0),
    ("So the total is $\\boxed{72}$ dollars.", "72", 1.0),
    ("\\boxed{\\frac{3}{4}}", "0.75", 1.0),
    ("Work...\n#### 72", "72", 1.0),
    ("Work...\n#### 1,800", "1800", 1.0),
    ("Work...\n#### 71", "72", 0.0),
    ("The answer is 72.", "72", 1.0),
    ("The final answer is $72.", "72", 1.0),
    ("Answer: 72", "72", 1.0),
    ("**Answer:** 72", "72", 1.0),
    ("**Final Answer**: 72 apples", "72", 1.0),
    ("6 * 12 = 72. So she has 72 eggs.", "72", 1.0),
    ("6 * 12 = 72. So she has 73 eggs.", "72", 0.0),
    ("no number at all", "72", 0.0),
    ("", "72", 0.0),
    # marker priority: tag beats boxed beats #### beats prose beats last number
    ("\\boxed{71}\n<answer>72</answer>", "72", 1.0),
    ("<answer>71</answer> \\boxed{72}", "72", 0.0),
    ("#### 71\n\\boxed{72}", "72", 1.0),
    ("The answer is 71.\n#### 72", "72", 1.0),
    ("The answer is 72. Then I counted 73 sheep.", "72", 1.0),
    # unclosed final tag (generation stopped at the stop string)
    (R + "<answer>\n72\n", "72", 1.0),
    # hedging never pays
    ("\\boxed{71} \\boxed{72} \\boxed{73}", "72", 0.0),
    ("\\boxed{72} or \\boxed{73}", "72", 0.0),
    (fmt("71 or 72"), "72", 0.0),
    (fmt("72 or 71"), "72", 0.0),
    (fmt("71, 72, 73"), "72", 0.0),
    (fmt("either 71 or 72"), "72", 0.0),
    (fmt("\\boxed{71}\\boxed{72}"), "72", 0.0),
    ("<answer>71</answer><answer>72</answer>", "72", 0.0),
    ("the answer is 71 or 72", "72", 0.0),
    ("The answer is 71. No wait, the answer is 72.", "72", 0.0),
    ("#### 71\n#### 72", "72", 0.0),
    ("It is 71 or 72", "72", 0.0),
    # repeating the same answer is fine
    ("\\boxed{72} so \\boxed{72}", "72", 1.0),
    ("<answer>72</answer><answer>72.0</answer>", "72", 1.0),
    ("The answer is 72. Yes, the answer is 72.", "72", 1.0),
    ("#### 72\n#### $72", "72", 1.0),
    # multi-line and case
    ("<reasoning>\nline1\nline2\n</reasoning>\n<ANSWER>\n\n 72 \n\n</ANSWER>", "72", 1.0),
    ("<answer>\n  **72**  \n</answer>\n<end_of_turn>", "72", 1.0),
    # hostile but small
    (fmt("\\frac{72}{0}"), "72", 0.0),
    (fmt("10^{1000000000}"), "72", 0.0),
    (fmt("9**9**9**9"), "72", 0.0),
    (fmt("(10^{10})!"), "72", 0.0),
    (fmt("__import__('os').system('echo pwned')"), "72", 0.0),
    (fmt("7" * 5000), "72", 0.0),
    (fmt("72" + "0" * 5000), "72", 0.0),
    ("\\boxed{" + "{" * 300 + "72" + "}" * 300 + "}", "72", 0.0),
]

# A variety of numbers times every costume: each must match its plain form and not a neighbour.
_NUMBERS = ["5", "18", "72", "1800", "1234567", "-3", "0.5", "12.25"]
_COSTUMES = [
    "{n}",
    "${n}",
    "{n} dollars",
    "\\boxed{{{n}}}",
    "${n}$",
    "**{n}**",
    "The answer is {n}.",
]
for _n in _NUMBERS:
    for _c in _COSTUMES:
        if _n.startswith("-") and _c.startswith("$"):
            continue
        CORRECTNESS.append((fmt(_c.format(n=_n)), _n, 1.0))
    CORRECTNESS.append((fmt(_n), str(int(float(_n)) + 1) if "." not in _n else _n + "1", 0.0))
# thousands separators on the big ones
CORRECTNESS += [(fmt("1,234,567"), "1234567", 1.0), ("#### 1,234,567", "1234567", 1.0), (fmt("12,34"), "1234", 0.0)]

NUMERIC_FORMAT = [
    (fmt("72"), 1.0),
    (fmt("-3"), 1.0),
    (fmt("0.5"), 1.0),
    (fmt("1,800"), 0.5),
    (fmt("$72"), 0.5),
    (fmt("72 dollars"), 0.5),
    (fmt("\\frac{3}{4}"), 0.5),
    (fmt("**72**"), 0.5),
    (fmt("seventy-two"), 0.0),
    (fmt("71 or 72"), 0.0),
    (fmt(""), 0.0),
    ("<answer>72</answer><answer>72</answer>", 0.0),
    ("<answer>72", 0.0),
    ("72", 0.0),
    ("\\boxed{72}", 0.0),
    ("<ANSWER>72</ANSWER>", 1.0),
    (fmt("7" * 100), 0.0),
]

STRUCTURE = [
    (fmt("72"), 1.0),
    (fmt("72") + "\n<end_of_turn>", 1.0),
    (fmt("72") + "\n\n", 1.0),
    (fmt("72") + "\nAnything else? I can also explain more.", 0.75),
    ("<answer>72</answer>\n<reasoning>work</reasoning>", 0.5),  # both sections, wrong order, junk after
    ("<answer>72</answer>", 0.5),  # answer section + clean tail
    ("<reasoning>work</reasoning>", 0.25),
    ("<reasoning>\n</reasoning>\n<answer>72</answer>", 0.5),  # empty reasoning earns nothing
    ("no tags at all, 72", 0.0),
    ("<reasoning>a</reasoning><reasoning>b</reasoning><answer>72</answer>", 0.5),  # spam is not paid
    (R + "<answer>72</answer><answer>72</answer>", 0.25),
    ("<reasoning>\nmulti\nline\nwork\n</reasoning>\n\n<answer>\n72\n</answer>", 1.0),
    ("<REASONING>x</REASONING><ANSWER>1</ANSWER>", 1.0),
    ("<reasoning>x<answer>1</answer></reasoning>", 0.5),  # nested: order broken, tail "</reasoning>" is junk
]

REASONING_STEPS = [
    (fmt("72"), 1 / 3),
    (fmt("72", "<reasoning>\n6 * 12 = 72\n72 - 10 = 62\n62 / 2 = 31\n</reasoning>\n"), 1.0),
    (fmt("72", "<reasoning>\n6 * 12 = 72\n72 - 10 = 62\n</reasoning>\n"), 2 / 3),
    (fmt("72", "<reasoning>\n6 * 12 = 72\n6 * 12 = 72\n6*12=72\n</reasoning>\n"), 1 / 3),  # repeats once
    (fmt("72", "<reasoning>\n1 + 1 = 5\n2 * 2 = 5\n3 * 3 = 10\n</reasoning>\n"), 0.0),  # false sums pay nothing
    (fmt("72", "<reasoning>\n" + "\n".join(f"{i} + 1 = {i + 1}" for i in range(50)) + "\n</reasoning>\n"), 1.0),
    (fmt("72", "<reasoning>\nI just know it.\n</reasoning>\n"), 0.0),
    (fmt("72", "<reasoning>\n$3 \\times 4 = 12$ and 12 \u00f7 4 = 3, 2 + 3 * 4 = 14\n</reasoning>\n"), 1.0),
    (fmt("72", "<reasoning>\n$12 + $4 = $16\n1,200 + 300 = 1,500\n10 / 3 = 3.33\n</reasoning>\n"), 1.0),
    ("6 * 12 = 72 outside any reasoning tag\n<answer>72</answer>", 0.0),
]

LENGTH = [  # (completion_ids length, expected) with max_completion_length=100, cache=20
    (10, 0.0),
    (80, 0.0),
    (90, -0.5),
    (100, -1.0),
    (150, -1.0),
]

PUBMED = ["yes", "no", "maybe"]
MEDQA = ["A", "B", "C", "D", "E"]
CHOICE = [  # (completion, labels, gold, expected)
    ("<answer>yes</answer>", PUBMED, "yes", 1.0),
    ("<answer>Yes.</answer>", PUBMED, "yes", 1.0),
    ("<answer>**No**</answer>", PUBMED, "no", 1.0),
    ("<answer>maybe</answer>", PUBMED, "yes", 0.0),
    ("<answer>yes or no</answer>", PUBMED, "yes", 0.0),
    ("<answer>yes</answer><answer>no</answer>", PUBMED, "yes", 0.0),
    ("Considering the trial... The answer is yes.", PUBMED, "yes", 1.0),
    ("Answer: no", PUBMED, "no", 1.0),
    ("Lots of reasoning.\n\nMaybe", PUBMED, "maybe", 1.0),
    ("Lots of reasoning, no conclusion here", PUBMED, "no", 0.0),
    ("<answer>B</answer>", MEDQA, "B", 1.0),
    ("<answer>(C)</answer>", MEDQA, "C", 1.0),
    ("<answer>D) Aspirin</answer>", MEDQA, "D", 1.0),
    ("<answer>A patient should get option E</answer>", MEDQA, "E", 1.0),
    ("<answer>A or B</answer>", MEDQA, "A", 0.0),
    ("The answer is C.", MEDQA, "C", 1.0),
    ("The answer is C.", MEDQA, "B", 0.0),
    ("reasoning...\nE", MEDQA, "E", 1.0),
    ("A B C D E", MEDQA, "E", 0.0),
    ("<answer>b</answer>", MEDQA, "B", 1.0),  # a bare label in the tag matches case-insensitively
]

VERDICT = [  # (completion, gold, expected)
    ("Strong paper. I recommend this paper for ACCEPTANCE.", "ACCEPTANCE", 1.0),
    ("Strong paper. I recommend this paper for acceptance.", "acceptance", 1.0),
    ("Weak. I recommend this paper for REJECTION", "ACCEPTANCE", 0.0),
    ("I recommend this paper for ACCEPTANCE. I recommend this paper for REJECTION.", "REJECTION", 0.0),
    ("I recommend this paper for ACCEPTANCE.\nFinal: I recommend this paper for ACCEPTANCE.", "ACCEPTANCE", 1.0),
    ("No verdict given.", "ACCEPTANCE", 0.0),
]
