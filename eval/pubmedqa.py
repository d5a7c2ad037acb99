"""PubMedQA yes/no/maybe accuracy on the expert-labelled set (Jin et al., 2019): a held-out domain.

The 1,000 expert-labelled questions ship gzipped in eval/data/pubmedqa (MIT, see its LICENSE and
README), so this runs offline. split `test` is the 500-question test set published results use
(SEEDS.md #000, #002 report on it); `all` is every expert-labelled question.

The prompt gives the abstract's contexts and the question and asks for the decision alone inside the
answer tag ("reasoning-required" setting: the abstract's conclusion is withheld). Decision-only answers
keep generation to a few tokens, which is what makes this affordable on a CPU.
"""

import gzip
import json
from importlib import resources

from eval.multiple_choice import score_choices
from eval.suite import eval_seed, fixed_subset, register, settings, stop_strings

LABELS = ("yes", "no", "maybe")

DEFAULTS = {
    "split": "test",
    "limit": None,
    "max_new_tokens": 32,
    "system_prompt": "Answer the biomedical research question from the abstract. Reply with only yes, no or "
    "maybe inside <answer> </answer> tags.",
    # One made-up worked example (not from the data) so base models see the format; null: zero-shot.
    "example": {
        "question": "Context: In 120 adults, daily walking for 12 weeks lowered resting blood pressure "
        "compared with controls (p<0.01).\n\nQuestion: Does daily walking lower blood pressure in adults?",
        "completion": "<answer>\nyes\n</answer>",
    },
}


def _data_file(name: str):
    return resources.files("eval") / "data" / "pubmedqa" / name


def load_pubmedqa(split: str = "test") -> list[dict]:
    """Rows {id, question, contexts, long_answer, label} from the shipped copy, in file order."""
    if split not in ("test", "all"):
        raise ValueError(f"pubmedqa split must be 'test' (500 questions) or 'all' (1000), got {split!r}")
    with gzip.open(str(_data_file("ori_pqal.json.gz")), "rt", encoding="utf-8") as handle:
        data = json.load(handle)
    ids = list(data)
    if split == "test":
        with gzip.open(str(_data_file("test_ground_truth.json.gz")), "rt", encoding="utf-8") as handle:
            ids = list(json.load(handle))
    return [
        {
            "id": pmid,
            "question": data[pmid]["QUESTION"],
            "contexts": list(data[pmid]["CONTEXTS"]),
            "long_answer": data[pmid]["LONG_ANSWER"],
            "label": data[pmid]["final_decision"],
        }
        for pmid in ids
    ]


def build_prompt(row: dict, system_prompt: str, example: dict | None) -> list[dict]:
    messages = [{"role": "system", "content": system_prompt}]
    if example:
        messages += [{"role": "user", "content": example["question"]},
                     {"role": "assistant", "content": example["completion"]}]
    context = "\n".join(row["contexts"])
    messages.append({"role": "user", "content": f"Context: {context}\n\nQuestion: {row['question']}"})
    return messages


def load(cfg, limit: int | None) -> list[dict]:
    opts = settings(cfg, "pubmedqa", DEFAULTS)
    rows = load_pubmedqa(opts["split"])
    limit = opts["limit"] if opts["limit"] is not None else limit
    return [
        {"prompt": build_prompt(rows[i], opts["system_prompt"], opts["example"]), "labels": list(LABELS),
         "gold": rows[i]["label"], "id": rows[i]["id"]}
        for i in fixed_subset(len(rows), limit, eval_seed(cfg))
    ]


def score(rows: list[dict], generator, cfg):
    opts = settings(cfg, "pubmedqa", DEFAULTS)
    return score_choices(rows, generator, name="pubmedqa", max_new_tokens=opts["max_new_tokens"],
                         stop=stop_strings(cfg))


register("pubmedqa", load, score)
