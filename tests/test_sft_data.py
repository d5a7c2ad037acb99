"""SFT data: each domain's rows become prompt/completion conversations in the format its rewards check."""

import json
import re

import pytest
from omegaconf import open_dict

from compose import compose_train
from conftest import REPO
from grpo.sft_data import load_sft_dataset
from grpo.validate import ConfigError
from tasks import build_task
from tasks.gsm8k import final_answer

FIXTURES = REPO / "tests" / "fixtures" / "sft"
GSM8K_FORMAT = re.compile(r"<reasoning>\n(?P<steps>(?:[^\n]+\n)+)</reasoning>\n<answer>\n(?P<answer>-?[\d.]+)\n</answer>")


def _cfg(tmp_path, *overrides):
    cfg = compose_train("model=tiny", "profile=cpu", "logger=none", *overrides)
    with open_dict(cfg):
        cfg.output_dir = str(tmp_path)
    return cfg


def _fixture_rows(name):
    import json

    return [json.loads(line) for line in (FIXTURES / name).read_text().splitlines()]


def test_gsm8k_solution_becomes_exactly_the_reward_format():
    solution = _fixture_rows("gsm8k_train_head.jsonl")[0]["answer"]
    task = build_task(compose_train("+task=gsm8k").task)
    assert task.sft_completion({"answer": final_answer(solution), "solution": solution}) == (
        "<reasoning>\n"
        "Natalia sold 48/2 = 24 clips in May.\n"
        "Natalia sold 48+24 = 72 clips altogether in April and May.\n"
        "</reasoning>\n<answer>\n72\n</answer>"
    )


def test_converted_gsm8k_rows_score_full_correctness_and_structure(tmp_path):
    from rewards import get_reward

    cfg = _cfg(tmp_path, "+task=gsm8k", "sft=gsm8k_cot", f"sft.data_files={FIXTURES / 'gsm8k_train_head.jsonl'}")
    dataset, report = load_sft_dataset(cfg)
    raw = _fixture_rows("gsm8k_train_head.jsonl")
    assert report.kept == len(dataset) == len(raw) == 5
    correctness, structure = get_reward("correctness"), get_reward("structure")
    by_question = {row["question"]: row["answer"] for row in raw}
    for row in dataset:
        text = row["completion"][0]["content"]
        match = GSM8K_FORMAT.fullmatch(text)
        assert match, text
        assert "<<" not in text and "####" not in text
        question = row["prompt"][-1]["content"]
        gold = final_answer(by_question[question])
        assert match["answer"] == gold
        assert correctness(prompts=[row["prompt"]], completions=[row["completion"]], answer=[gold]) == [1.0]
        assert structure(prompts=[row["prompt"]], completions=[row["completion"]], answer=[gold]) == [1.0]


def test_gsm8k_sft_prompt_is_the_grpo_prompt(tmp_path):
    """Same system prompt, worked example and question as the GRPO stage, with or without +task."""
    for overrides in (["+task=gsm8k"], []):
        cfg = _cfg(tmp_path, *overrides, "sft=gsm8k_cot", f"sft.data_files={FIXTURES / 'gsm8k_train_head.jsonl'}")
        dataset, _ = load_sft_dataset(cfg)
        task = build_task(compose_train("+task=gsm8k").task)
        for row in dataset:
            assert row["prompt"] == task.prompt(row["prompt"][-1]["content"])
        assert [m["role"] for m in dataset[0]["prompt"]] == ["system", "user", "assistant", "user"]
        assert dataset[0]["completion"][0]["role"] == "assistant"


def test_reviewer_keeps_only_rows_whose_verdict_parses(tmp_path):
    cfg = _cfg(tmp_path, "sft=reviewer", f"sft.data_files={FIXTURES / 'reviewer.jsonl'}")
    dataset, report = load_sft_dataset(cfg)
    assert report.total == 7 and report.kept == len(dataset) == 3
    assert report.dropped == {
        "no (or conflicting) verdict line": 2,
        "missing paper or review": 1,
        "unreadable line": 1,
    }
    for row in dataset:
        assert re.search(r"I recommend this paper for (ACCEPTANCE|REJECTION)\s*$", row["completion"][0]["content"], re.I)
        assert row["prompt"][-1]["content"].startswith("Title:")


def test_pubmedqa_trains_on_the_non_test_questions_in_answer_tags(tmp_path):
    from tasks.pubmedqa import load_pubmedqa

    cfg = _cfg(tmp_path, "sft=pubmedqa")
    dataset, report = load_sft_dataset(cfg)
    assert report.kept == len(dataset) == 500
    test_questions = {row["question"] for row in load_pubmedqa("test")}
    for row in dataset:
        question = row["prompt"][-1]["content"].rsplit("Question: ", 1)[1]
        assert question not in test_questions
        assert re.fullmatch(r"<answer>\n(yes|no|maybe)\n</answer>", row["completion"][0]["content"])


def test_pubmedqa_with_a_reasoning_tag_teaches_the_conclusion_first(tmp_path):
    cfg = _cfg(tmp_path, "sft=pubmedqa", "+task=pubmedqa", "task.reasoning_tag=reasoning",
               f"sft.data_files={FIXTURES / 'pubmedqa.jsonl'}")
    dataset, _ = load_sft_dataset(cfg)
    assert dataset[0]["completion"][0]["content"] == (
        "<reasoning>\nDrug X lowers blood pressure.\n</reasoning>\n<answer>\nyes\n</answer>")


@pytest.mark.parametrize(
    "domain, fixture, kept, first_user, first_completion",
    [
        ("instruction", "dolly.jsonl", 2, "Name three primary colours.", "Red, yellow and blue."),
        ("science", "science.jsonl", 2, "Classify the claim given the abstract: ...", "SUPPORT"),
        ("medical", "medical.jsonl", 2, "A 45-year-old man has crushing chest pain. First test?",
         "<reasoning>\nChest pain suggests ACS; an ECG within 10 minutes is first.\n</reasoning>\n<answer>\nA 12-lead ECG.\n</answer>"),
        ("pubmedqa", "pubmedqa.jsonl", 1, None, "<answer>\nyes\n</answer>"),
    ],
)
def test_local_data_files_convert_and_bad_rows_are_counted(tmp_path, domain, fixture, kept, first_user, first_completion):
    cfg = _cfg(tmp_path, f"sft={domain}", f"sft.data_files={FIXTURES / fixture}")
    dataset, report = load_sft_dataset(cfg)
    assert len(dataset) == report.kept == kept
    assert report.total - report.kept == 1
    if first_user is not None:
        assert dataset[0]["prompt"][-1] == {"role": "user", "content": first_user}
    assert dataset[0]["completion"] == [{"role": "assistant", "content": first_completion}]


def test_max_steps_limits_rows_to_a_seeded_sample(tmp_path):
    cfg = _cfg(tmp_path, "+task=gsm8k", "sft=gsm8k_cot", "sft.trainer.max_steps=3",
               "sft.trainer.per_device_train_batch_size=2", "sft.trainer.gradient_accumulation_steps=2")
    first, _ = load_sft_dataset(cfg)
    again, _ = load_sft_dataset(cfg)
    assert len(first) == 3 * 2 * 2
    assert first["prompt"] == again["prompt"]


def test_offline_hub_dataset_fails_before_any_model_loads(tmp_path, monkeypatch):
    import grpo.models

    def no_model(*args, **kwargs):
        raise AssertionError("a model was loaded before the data check")

    monkeypatch.setattr(grpo.models, "load_model_and_tokenizer", no_model)
    from grpo.sft import run_sft

    cfg = _cfg(tmp_path, "sft=science")
    with pytest.raises(ConfigError) as caught:
        run_sft(cfg, tmp_path / "sft")
    message = str(caught.value)
    for fragment in ("allenai/SciRIFF", "HF_HUB_OFFLINE", "sft.data_files", "input, output"):
        assert fragment in message, message


def test_reviewer_without_data_files_says_what_to_give(tmp_path):
    with pytest.raises(ConfigError, match=r"sft.data_files.*paper, review"):
        load_sft_dataset(_cfg(tmp_path, "sft=reviewer"))


def test_any_task_warms_up_on_its_own_split_in_its_own_format(tmp_path):
    cfg = _cfg(tmp_path, "+task=reasoning_gym", "sft=task", "task.train_size=30", "task.test_size=10",
               "sft.trainer.max_steps=-1")
    dataset, report = load_sft_dataset(cfg)
    task = build_task(cfg.task)
    rows, _ = task.load_split("train")
    assert report.kept == len(dataset) == len(rows) == 30
    by_prompt = {json.dumps(r["prompt"]): r for r in rows}
    for row in dataset:
        source = by_prompt[json.dumps(row["prompt"])]
        assert row["completion"][0]["content"] == f"<answer>\n{source['answer']}\n</answer>"
        assert task.is_correct(row["completion"][0]["content"], source, strict=True)  # its verifier agrees


def test_sft_without_a_task_says_to_add_one(tmp_path):
    with pytest.raises(ConfigError, match=r"add \+task=<name>"):
        load_sft_dataset(_cfg(tmp_path, "sft=task"))
