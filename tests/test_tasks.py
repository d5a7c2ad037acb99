"""Tasks are plugins: each task is one yaml (+ a module only when it reads answers its own way), and it is
the one source of rows, answer format, rewards' tags, evaluation, stop strings and SFT text."""

import ast
import hashlib
import json

import pytest
from omegaconf import OmegaConf

from compose import compose_train
from conftest import REPO
from fixtures.eval_stand_ins import StandInGenerator
from tasks import ConfigError, build_task, load_task_file, task_names

FIXTURES = REPO / "tests" / "fixtures" / "tasks"


def task(name, **fields):
    cfg = load_task_file(name)
    return build_task(OmegaConf.merge(cfg, fields))


def test_every_shipped_task_builds_and_names_a_task_class():
    assert task_names() == ["arithmetic", "custom", "gsm8k", "math", "pubmedqa", "reasoning_gym"]
    for name in task_names():
        fields = {"data_files": {"train": str(FIXTURES / "countdown.jsonl")}} if name == "custom" else {}
        assert task(name, **fields).name == name


# sha256 of [[prompt, answer, solution] for each row] from the loader before tasks were plugins
# (grpo/data_loading.py at 8d59903): the migration must not change a single GSM8K row.
GSM8K_ROWS_BEFORE = {
    "train": (7473, "17871c091fa226beba9c5aae81c9bf7be59eacc145fb0be4604ba7cec61933af"),
    "test": (1319, "3654917616f139df6ee40602e6667df3dc61ae9bf8bca3d9dc3e8c51b3ffd5ab"),
}


@pytest.mark.parametrize("split", ["train", "test"])
def test_gsm8k_rows_are_exactly_those_before_the_migration(split):
    rows, _ = build_task(compose_train("+task=gsm8k").task).load_split(split)
    digest = hashlib.sha256(
        json.dumps([[r["prompt"], r["answer"], r["solution"]] for r in rows], sort_keys=True).encode()
    ).hexdigest()
    assert (len(rows), digest) == GSM8K_ROWS_BEFORE[split]


def test_gsm8k_task_reward_scores_the_labelled_cases_as_the_correctness_reward_did():
    import sys

    from rewards import get_reward
    from rewards.registry import wrap_reward
    from tasks import correctness_reward

    sys.path.insert(0, str(REPO / "tests" / "rewards"))
    from labelled_cases import CORRECTNESS

    stack = compose_train("+task=gsm8k").rewards.stack
    params = OmegaConf.to_container(stack.correctness.params, resolve=True)
    by_task = wrap_reward(correctness_reward(**params), "correctness")
    registered = get_reward("correctness")
    completions, golds = [c for c, _, _ in CORRECTNESS], [g for _, g, _ in CORRECTNESS]
    expected = [e for _, _, e in CORRECTNESS]
    assert by_task(completions=completions, answer=golds) == registered(completions=completions, answer=golds) == expected


def test_the_answer_tag_is_written_once():
    """Change the tag on the task; rewards, stop strings, strict evaluation and SFT follow."""
    cfg = compose_train("+task=gsm8k", "task.answer_tag=final")
    stack = OmegaConf.to_container(cfg.rewards.stack, resolve=True)
    assert stack["numeric_format"]["params"]["tag"] == "final"
    assert stack["structure"]["params"]["answer_tag"] == "final"
    gsm8k = build_task(cfg.task)
    assert gsm8k.stop == ["</final>"]
    row = {"answer": "10", "solution": "3 * 4 = 12\n12 - 2 = 10\n#### 10"}
    assert gsm8k.sft_completion(row).endswith("<final>\n10\n</final>")
    assert gsm8k.extract("<final>10</final>", strict=True) == "10"
    assert gsm8k.extract("<answer>10</answer>", strict=True) is None


def test_rows_pass_every_other_column_through_to_the_rewards():
    custom = task("custom", data_files={"train": str(FIXTURES / "countdown.jsonl")}, answer_column="target")
    rows, report = custom.load_split("train")
    assert [r["nums"] for r in rows] == [[3, 4], [2, 5], [6, 2]]
    assert rows[0]["target"] == "7" and rows[0]["answer"] == "7"
    assert report.dropped == {"target is not a number": 1, "empty target": 1}


def test_custom_file_with_missing_columns_names_the_columns_it_has():
    custom = task("custom", data_files={"train": str(FIXTURES / "countdown.jsonl")}, answer_column="solution")
    with pytest.raises(ConfigError, match=r"no column 'solution'; it has nums, question, target"):
        custom.load_split("train")


def test_custom_file_with_no_usable_row_stops_naming_the_file(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "q", "answer": "not a number"}\nnot json\n')
    with pytest.raises(ConfigError, match=r"no usable rows in .*bad.jsonl train: 2 rows, 0 usable"):
        task("custom", data_files={"train": str(bad)}).load_split("train")


def test_custom_csv_choice_task_reads_labels_and_scores_with_the_choice_evaluator():
    yesno = task("custom", data_files={"test": str(FIXTURES / "yesno.csv")}, prompt_column="text",
                 answer_column="label", answer_type="choice", labels=["yes", "no"])
    rows, report = yesno.load_split("test")
    assert [r["answer"] for r in rows] == ["yes", "no"] and report.dropped == {"label not one of the labels": 1}
    assert yesno.evaluator == "choices"
    assert yesno.is_correct("<reasoning>\nIt is.\n</reasoning>\n<answer>yes</answer>", rows[0])
    assert not yesno.is_correct("<answer>no</answer>", rows[0])


def test_custom_text_answers_compare_trimmed_and_case_insensitive():
    words = task("custom", data_files={"train": str(FIXTURES / "countdown.jsonl")}, answer_column="target",
                 answer_type="text")
    rows, _ = words.load_split("train")
    ten = [r for r in rows if r["answer"] == "ten"][0]
    assert words.is_correct("<answer>  Ten </answer>", ten)
    assert not words.is_correct("<answer>10</answer>", ten)


def test_math_reads_boxed_gold_answers_and_compares_latex_by_math_verify():
    math = task("math", data_files={"train": str(FIXTURES / "math_train.jsonl"),
                                    "test": str(FIXTURES / "math_test.jsonl")})
    train, report = math.load_split("train")
    assert [r["answer"] for r in train] == ["\\frac{3}{4}", "5"]
    assert report.dropped == {"no \\boxed{} answer in the solution": 1}
    test, _ = math.load_split("test")
    by_gold = {r["answer"]: r for r in test}
    assert math.is_correct("<answer>0.75</answer>", by_gold["\\frac{3}{4}"])
    assert math.is_correct("<answer>\\dfrac{3}{4}</answer>", by_gold["\\frac{3}{4}"])
    assert math.is_correct("<answer>\\sqrt{12}</answer>", by_gold["2\\sqrt{3}"])
    assert math.is_correct("<answer>(2, 2)</answer>", by_gold["(2, 2)"])  # a comma is not hedging here
    assert not math.is_correct("<answer>(2, 3)</answer>", by_gold["(2, 2)"])
    assert math.is_correct("so the answer is \\boxed{5}", train[1]) and not math.is_correct(
        "so the answer is \\boxed{5}", train[1], strict=True)


def test_math_offline_without_files_says_what_to_give():
    with pytest.raises(ConfigError, match=r"task.data_files.*problem and answer"):
        task("math").load_split("test")


def test_math_stack_has_no_numeric_format():
    assert set(compose_train("+task=math").rewards.stack) == {"correctness", "structure"}


def test_pubmedqa_trains_and_evaluates_on_the_same_prompt_and_disjoint_questions():
    pubmedqa = task("pubmedqa")
    train, _ = pubmedqa.load_split("train")
    test, _ = pubmedqa.load_split("test")
    assert not {r["id"] for r in train} & {r["id"] for r in test}
    assert train[0]["prompt"][:3] == test[0]["prompt"][:3]  # system prompt and worked example
    reward = build_reward(compose_train("+task=pubmedqa"))
    gold = test[0]["answer"]
    other = "no" if gold != "no" else "yes"
    scores = reward(completions=[f"<answer>{gold}</answer>", f"<answer>{other}</answer>"], answer=[gold, gold])
    assert scores == [1.0, 0.0]


def build_reward(cfg, key="correctness"):
    from rewards import build_reward_stack

    funcs, _ = build_reward_stack(OmegaConf.to_container(cfg.rewards.stack, resolve=True))
    return {f.__name__: f for f in funcs}[key]


def test_reasoning_gym_splits_are_seeded_and_test_excludes_training_questions():
    gym = task("reasoning_gym", dataset="chain_sum", train_size=300, test_size=300,
               dataset_config={"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 1})
    train, _ = gym.load_split("train")
    test, report = gym.load_split("test")
    assert not {r["question"] for r in train} & {r["question"] for r in test}
    assert report.dropped["also in the training split"] > 0  # 1-digit sums repeat: the filter matters here
    again, _ = gym.load_split("test")
    assert [r["question"] for r in again] == [r["question"] for r in test]


def test_reasoning_gym_test_seed_draws_a_second_held_out_set_still_without_training_questions():
    settings = dict(dataset="chain_sum", train_size=300, test_size=300,
                    dataset_config={"min_terms": 3, "max_terms": 3, "min_digits": 1, "max_digits": 1})
    first, _ = task("reasoning_gym", **settings).load_split("test")
    gym = task("reasoning_gym", test_seed=123, **settings)
    second, _ = gym.load_split("test")
    train, _ = gym.load_split("train")
    assert [r["question"] for r in second] != [r["question"] for r in first]
    assert not {r["question"] for r in train} & {r["question"] for r in second}
    with pytest.raises(ConfigError, match="task.test_seed='x' must be an integer"):
        task("reasoning_gym", test_seed="x", **settings)


def test_reasoning_gym_verifier_is_the_correctness_reward():
    cfg = compose_train("+task=reasoning_gym", "task.train_size=20", "task.test_size=20")
    rows, _ = build_task(cfg.task).load_split("train")
    reward = build_reward(cfg)
    completions = [f"<answer>{rows[0]['answer']}</answer>", "<answer>-99999</answer>", "no tag at all"]
    columns = {key: [rows[0][key]] * 3 for key in ("answer", "entry")}
    assert reward(completions=completions, **columns) == [1.0, 0.0, 0.0]


def test_arithmetic_operands_have_their_digits_and_answers_are_the_true_results():
    rows, _ = task("arithmetic", first_digits=2, second_digits=1, operators=["+", "-", "*"],
                   train_size=200).load_split("train")
    for row in rows:
        first, symbol, second = row["question"].rsplit(":", 1)[1].removesuffix("=").split()
        assert 10 <= int(first) <= 99 and 0 <= int(second) <= 9
        expected = {"+": int(first) + int(second), "-": int(first) - int(second), "*": int(first) * int(second)}[symbol]
        assert row["answer"] == str(expected)
    assert {row["question"].split()[-3] for row in rows} == {"+", "-", "*"}


def test_arithmetic_held_out_split_never_holds_a_training_expression_and_test_seed_redraws_it():
    arithmetic = task("arithmetic", train_size=500, test_size=1000)
    train, _ = arithmetic.load_split("train")
    test, report = arithmetic.load_split("test")
    assert not {r["question"] for r in train} & {r["question"] for r in test}
    assert report.dropped["also in the training split"] > 0  # 500 draws of 1,800 expressions repeat some
    assert len(test) >= 500
    second, _ = task("arithmetic", train_size=500, test_size=1000, test_seed=7).load_split("test")
    assert [r["question"] for r in second] != [r["question"] for r in test]
    assert not {r["question"] for r in train} & {r["question"] for r in second}


def test_arithmetic_reward_and_evaluation_agree_on_the_gold_number():
    cfg = compose_train("+task=arithmetic", "task.train_size=20")
    gym = build_task(cfg.task)
    rows, _ = gym.load_split("train")
    reward = build_reward(cfg)
    right = f"<answer>\n{rows[0]['answer']}\n</answer>"
    assert reward(completions=[right, "<answer>-99999</answer>", "no tag"], answer=[rows[0]["answer"]] * 3) == [1.0, 0.0, 0.0]
    assert gym.is_correct(right, rows[0], strict=True)


def test_cpu_learning_experiment_evaluates_on_at_least_500_expressions_it_never_trained_on():
    cfg = compose_train("+experiment=cpu-learning")
    arithmetic = build_task(cfg.task)
    train, _ = arithmetic.load_split("train")
    test, _ = arithmetic.load_split("test")
    assert cfg.eval.limit >= 500 and len(test) >= cfg.eval.limit
    assert not {r["question"] for r in train} & {r["question"] for r in test}


def test_cpu_gsm8k_experiment_gives_the_evaluated_questions_room_for_their_reference_solutions():
    """The format rate of part 2 (docs/results.md) must not be capped by the token budget: written in the
    trained format, the reference solutions of at least 98% of the evaluated questions fit in it."""
    from eval.suite import eval_seed, fixed_subset
    from grpo.embedded import embedded_tokenizer_dir
    from transformers import AutoTokenizer

    cfg = compose_train("+experiment=cpu-gsm8k")
    assert (cfg.sft.name, cfg.task.name, cfg.eval.limit) == ("gsm8k_cot", "gsm8k", 200)
    gsm8k = build_task(cfg.task)
    test, _ = gsm8k.load_split("test")
    evaluated = [test[i] for i in fixed_subset(len(test), cfg.eval.limit, eval_seed(cfg))]
    tokenizer = AutoTokenizer.from_pretrained(embedded_tokenizer_dir())
    lengths = [len(tokenizer(gsm8k.sft_completion(row)).input_ids) for row in evaluated]
    assert sum(n <= cfg.eval.max_new_tokens for n in lengths) >= 0.98 * len(lengths)
    assert cfg.trainer.max_completion_length >= cfg.eval.max_new_tokens


@pytest.mark.parametrize("field, value, message", [
    ("first_digits", 0, "task.first_digits=0 must be an integer from 1 to 9"),
    ("operators", ["/"], "task.operators=\\['/'\\] must be a list drawn from"),
    ("train_size", 0, "task.train_size=0 must be a positive integer"),
    ("question_template", "no slot", "task.question_template must contain {expression}"),
])
def test_arithmetic_bad_setting_names_the_field(field, value, message):
    with pytest.raises(ConfigError, match=message):
        task("arithmetic", **{field: value})


def test_reasoning_gym_unknown_dataset_lists_the_available_ones():
    with pytest.raises(ConfigError, match=r"not a reasoning-gym dataset; available: .*chain_sum.*leg_counting"):
        task("reasoning_gym", dataset="chain_summ")


def test_reasoning_gym_bad_dataset_setting_names_it():
    with pytest.raises(ConfigError, match="task.dataset_config for chain_sum"):
        task("reasoning_gym", dataset_config={"no_such_setting": 1})


def test_reasoning_gym_verifier_that_evals_completions_is_refused():
    with pytest.raises(ConfigError, match="calls eval"):
        task("reasoning_gym", dataset="spiral_matrix")


def test_unknown_task_field_suggests_the_real_one():
    with pytest.raises(ConfigError, match="task.answer_tagg is not a field of GSM8K; did you mean task.answer_tag"):
        task("gsm8k", answer_tagg="x")


def test_a_task_from_outside_the_package_builds_by_target():
    words = build_task({"_target_": "fixtures.my_tasks.Reverse", "name": "reverse", "system_prompt": "Reverse it.",
                        "reasoning_tag": None, "answer_type": "text",
                        "data_files": {"test": str(FIXTURES / "words.jsonl")}})
    rows, report = words.load_split("test")
    assert [r["answer"] for r in rows] == ["ammeg", "oprg"] and report.dropped == {"not a word": 1}


def test_target_that_is_not_a_task_is_refused():
    with pytest.raises(ConfigError, match="not a subclass of tasks.Task"):
        build_task({"_target_": "json.loads", "name": "x", "system_prompt": "s"})


def test_held_out_domain_can_be_any_task():
    from eval.suite import get_evaluator

    cfg = compose_train("+task=pubmedqa", "eval.domains=[gsm8k]", "model=tiny")
    evaluator = get_evaluator("gsm8k")
    rows = evaluator.load(cfg, 3)
    gold = {r["prompt"][-1]["content"]: r["answer"] for r in rows}
    result = evaluator.score(rows, StandInGenerator(lambda q: f"<reasoning>\nok\n</reasoning>\n<answer>{gold[q]}</answer>"),
                             cfg)
    assert result.name == "gsm8k" and result.metrics["accuracy_strict"] == 1.0


# rewards at the bottom, tasks on them, evaluation on tasks, training (which evaluates) on top. The one
# exception is the evaluation command, eval/run.py, which loads models the way training does.
LAYERS = {"rewards": set(), "tasks": {"rewards"}, "eval": {"rewards", "tasks"}}


@pytest.mark.parametrize("package", ["rewards", "tasks", "eval"])
def test_lower_layers_never_import_upwards(package):
    ours = {"rewards", "tasks", "eval", "grpo"}
    for path in (REPO / package).glob("*.py"):
        if path.relative_to(REPO).as_posix() == "eval/run.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
            for name in names:
                top = name.split(".")[0]
                assert top not in ours - LAYERS[package] - {package}, f"{path.name} imports {name}"
