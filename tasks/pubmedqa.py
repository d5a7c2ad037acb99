"""PubMedQA (Jin et al., 2019): a biomedical question and its abstract, answered yes, no or maybe.

The 1,000 expert-labelled questions ship gzipped in tasks/data/pubmedqa (MIT, see its LICENSE and
README). `test` is the 500-question test set published results use (the gemma4-4b-sci and medical QLoRA recipes in conf/experiment report on it);
`train` is the other 500. The prompt gives the abstract's contexts and the question, without the
abstract's conclusion ("reasoning-required" setting); the conclusion (`long_answer`) is the reasoning
SFT teaches when the task has a reasoning tag. The same prompt serves GRPO, SFT and the held-out
domain `eval.domains=[pubmedqa]`.
"""

import gzip
import json
from importlib import resources

from tasks.base import Task

LABELS = ("yes", "no", "maybe")


def _shipped(name: str):
    with gzip.open(str(resources.files("tasks") / "data" / "pubmedqa" / name), "rt", encoding="utf-8") as handle:
        return json.load(handle)


def load_pubmedqa(split: str) -> list[dict]:
    """Rows {id, question, contexts, long_answer, final_decision} of the shipped copy, in file order."""
    data = _shipped("ori_pqal.json.gz")
    test_ids = list(_shipped("test_ground_truth.json.gz"))
    ids = test_ids if split == "test" else [pmid for pmid in data if pmid not in set(test_ids)]
    return [
        {"id": pmid, "question": data[pmid]["QUESTION"], "contexts": list(data[pmid]["CONTEXTS"]),
         "long_answer": data[pmid]["LONG_ANSWER"], "final_decision": data[pmid]["final_decision"]}
        for pmid in ids
    ]


class PubMedQA(Task):
    def parse(self, raw):
        question = raw.get("question")
        contexts = raw.get("contexts")
        if isinstance(contexts, str):
            contexts = [contexts]
        label = raw.get("final_decision", raw.get("label"))
        if not isinstance(question, str) or not isinstance(contexts, list) or not contexts:
            return None, None, "missing question or contexts"
        if not all(isinstance(c, str) for c in contexts):
            return None, None, "contexts are not text"
        if not isinstance(label, str) or label.strip().lower() not in LABELS:
            return None, None, "decision not yes/no/maybe"
        context = "\n".join(contexts)
        return f"Context: {context}\n\nQuestion: {question.strip()}", label.strip().lower(), None

    def builtin_rows(self, split):
        return load_pubmedqa(split), f"PubMedQA expert-labelled {split} (shipped copy)"

    def columns_hint(self):
        return "JSON lines with question, contexts (list or text), final_decision (yes/no/maybe), long_answer"

    def sft_completion(self, row):
        reasoning = row.get("long_answer") if isinstance(row.get("long_answer"), str) else None
        return self.format_completion(row["answer"], reasoning)
