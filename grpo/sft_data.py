"""SFT data: each domain's rows as TRL prompt-completion conversations, bad rows counted, never fatal.

Every row becomes `{"prompt": [messages...], "completion": [{"role": "assistant", "content": ...}]}`
(TRL's conversational prompt-completion format), so SFTTrainer applies the same chat template the GRPO
stage uses and, with `completion_only_loss`, trains on the completion tokens only.

Two small registries, chosen by name in conf/sft/<domain>.yaml:
- `sft.loader`: where raw rows come from (`task`: a task's train split, its prompts built by the task;
  `hub`: datasets on the Hugging Face Hub by name). `sft.data_files` (local JSON-lines) replaces any
  loader's source.
- `sft.format`: one raw row -> (prompt, completion), or the reason it is unusable. `task`: the task's
  own completion (`Task.sft_completion`), in the answer format its rewards and evaluation read.

Hub datasets we cannot ship fail early, before any model is loaded, with a message naming the dataset
and the `sft.data_files` columns to provide instead.
"""

import logging
import os
import random
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from omegaconf import open_dict

from tasks import ConfigError, DataReport, build_task, load_task_file
from tasks.sources import hub_reachable, read_jsonl
from tasks.sources import offline as datasets_offline

log = logging.getLogger(__name__)

Row = dict[str, Any]
Converted = tuple[Row | None, str | None]

_LOADERS: dict[str, Callable] = {}
_FORMATS: dict[str, Callable] = {}


def _registrar(table: dict, kind: str, name: str):
    def decorator(fn):
        if name in table:
            raise ValueError(f"SFT {kind} '{name}' is already registered")
        table[name] = fn
        return fn

    return decorator


def register_loader(name: str):
    return _registrar(_LOADERS, "loader", name)


def register_format(name: str):
    return _registrar(_FORMATS, "format", name)


def get_loader(name: str) -> Callable:
    if name not in _LOADERS:
        raise ConfigError(f"sft.loader={name!r} is unknown; available: {', '.join(sorted(_LOADERS))}")
    return _LOADERS[name]


def get_format(name: str) -> Callable:
    if name not in _FORMATS:
        raise ConfigError(f"sft.format={name!r} is unknown; available: {', '.join(sorted(_FORMATS))}")
    return _FORMATS[name]


def load_sft_dataset(cfg):
    """(datasets.Dataset of prompt/completion rows, DataReport) for `cfg.sft`; raises ConfigError when
    the data cannot be had here or no row is usable."""
    from datasets import Dataset

    sft = cfg.sft
    convert = get_format(sft.format)
    raw_rows, source = get_loader(sft.loader)(cfg)
    report = DataReport(source=source, split="sft")

    def convert_checked(raw: dict):
        row, problem = convert(raw, cfg)
        if problem is None and not row["completion"][0]["content"].strip():
            return None, "empty completion"
        return row, problem

    rows = report.keep_usable(raw_rows, convert_checked)
    log.info("SFT data: %s", report.summary())
    if not rows:
        raise ConfigError(f"sft={sft.name}: no usable rows in {report.summary()}; check sft.data_files")
    limit = rows_needed(cfg)
    if limit is not None and limit < len(rows):
        random.Random(cfg.seed).shuffle(rows)  # a seeded sample spread over the whole set, not its head
        rows = rows[:limit]
        log.info("SFT data: training on a seeded sample of %d rows (sft.max_rows / sft.trainer.max_steps)", limit)
    return Dataset.from_list(rows), report


def rows_needed(cfg) -> int | None:
    """sft.max_rows, and no more rows than `max_steps` optimizer steps read (tokenizing the rest would
    only cost time); None: every row."""
    trainer = cfg.sft.trainer
    limits = [cfg.sft.get("max_rows")]
    if trainer.get("max_steps", -1) > 0:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        limits.append(trainer.max_steps * trainer.per_device_train_batch_size * trainer.gradient_accumulation_steps * world)
    limits = [n for n in limits if n]
    return min(limits) if limits else None


def assistant(content: str) -> list[dict]:
    return [{"role": "assistant", "content": content}]


def tagged(reasoning: str, answer: str) -> str:
    """Reasoning, then the answer alone in its tag (the hub domains' completions; tasks format their own)."""
    return f"<reasoning>\n{reasoning.strip()}\n</reasoning>\n<answer>\n{answer.strip()}\n</answer>"


def _system_and_user(cfg, user: str) -> list[dict]:
    system = cfg.sft.get("system_prompt")
    return ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]


def _text(raw: Row, *names: str) -> str | None:
    """The first of `names` that holds a non-empty string."""
    for name in names:
        value = raw.get(name)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


# -- loaders ---------------------------------------------------------------------------------------
def _local_rows(data_files) -> tuple[list, str]:
    paths = [data_files] if isinstance(data_files, str) else list(data_files)
    rows = []
    for path in paths:
        if not Path(path).is_file():
            raise ConfigError(f"sft.data_files: {path} does not exist")
        rows += list(read_jsonl(Path(path)))
    return rows, ", ".join(str(p) for p in paths)


def sft_task_cfg(cfg):
    """The task the SFT prompts are built for: `+task=...` when given, else conf/task/<sft.task>.yaml, so
    `python -m grpo.sft sft=gsm8k_cot` and the chained run build the very same prompts."""
    if "task" in cfg and cfg.task is not None:
        if cfg.sft.get("task") and cfg.task.name != cfg.sft.task:
            raise ConfigError(f"sft={cfg.sft.name} teaches task {cfg.sft.task} but +task={cfg.task.name}")
        return cfg.task
    if not cfg.sft.get("task"):
        raise ConfigError(f"sft={cfg.sft.name} reads a task's data: add +task=<name>")
    return load_task_file(cfg.sft.task)


def sft_task(cfg):
    """The task of `sft_task_cfg`, its train split replaced by `sft.data_files` when given."""
    task_cfg = sft_task_cfg(cfg).copy()
    if cfg.sft.get("data_files"):
        with open_dict(task_cfg):
            task_cfg.data_files = {"train": str(cfg.sft.data_files)}
    return build_task(task_cfg)


@register_loader("task")
def load_task_rows(cfg) -> tuple[Iterable[Row], str]:
    """The task's train split (`sft.data_files` replaces it), each raw row already converted by the task:
    `{"converted": (prompt/completion row, None) | (None, reason)}`, so the SFT report counts the rows the
    task cannot read too. Pair it with `sft.format=task`."""
    task = sft_task(cfg)
    raw_rows, source = task.raw_rows("train")

    def convert(raw):
        row, problem = task.to_row(raw) if isinstance(raw, dict) else (None, "unreadable line")
        if problem:
            return None, problem
        completion = task.sft_completion(row)
        if completion is None:
            return None, "no worked solution"
        return {"prompt": row["prompt"], "completion": assistant(completion)}, None

    return ({"converted": convert(raw)} for raw in raw_rows), source


@register_loader("hub")
def load_hub_rows(cfg) -> tuple[Iterable[Row], str]:
    """Every dataset in `sft.hub` (datasets.load_dataset by name), concatenated; `sft.data_files`
    replaces them. Offline or unreachable: a ConfigError naming the dataset and the columns needed."""
    sft = cfg.sft
    if sft.get("data_files"):
        return _local_rows(sft.data_files)
    if not sft.get("hub"):
        raise ConfigError(
            f"sft={sft.name} has no public dataset to load: point sft.data_files at a local JSON-lines file "
            f"with the columns {sft.get('columns', '(see conf/sft/' + sft.name + '.yaml)')}"
        )
    rows: list = []
    for entry in sft.hub:
        rows += _hub_dataset_rows(sft, entry)
    return rows, " + ".join(entry.id for entry in sft.hub)


def _hub_dataset_rows(sft, entry) -> list:
    offline = datasets_offline()
    why = "the Hub is offline here (HF_HUB_OFFLINE=1)" if offline else None
    if not offline and not hub_reachable():
        why = "the Hugging Face Hub is unreachable from this machine"
    if why is None or offline:  # offline mode may still find it in the local datasets cache
        try:
            from datasets import load_dataset

            return list(load_dataset(entry.id, entry.get("config"), split=entry.get("split", "train")))
        except Exception as error:  # any hub/cache failure: the message below says what to do
            why = why or f"loading it failed ({type(error).__name__}: {str(error)[:200]})"
    raise ConfigError(
        f"sft={sft.name} needs the dataset {entry.id}"
        + (f" (config {entry.config})" if entry.get("config") else "")
        + f" from the Hugging Face Hub, but {why}. Download it where the Hub is reachable and point "
        f"sft.data_files at a local JSON-lines copy (one object per line) with the columns "
        f"{sft.get('columns', '(see conf/sft/' + sft.name + '.yaml)')}, e.g. sft.data_files=/data/{sft.name}.jsonl"
    )


# -- formats ---------------------------------------------------------------------------------------
@register_format("task")
def convert_task_row(row: Row, cfg) -> Converted:
    """The task's own prompt and completion, as the `task` loader converted them (Task.sft_completion)."""
    if "converted" not in row:
        raise ConfigError(f"sft={cfg.sft.name}: sft.format=task needs sft.loader=task")
    return row["converted"]


@register_format("chat")
def convert_chat(raw: Row, cfg) -> Converted:
    """`messages` (a chat ending in the assistant turn) or `input`/`output` (SciRIFF) -> prompt/completion."""
    messages = raw.get("messages")
    if isinstance(messages, list) and messages:
        if not all(isinstance(m, dict) and isinstance(m.get("content"), str) for m in messages):
            return None, "malformed messages"
        if messages[-1].get("role") != "assistant" or len(messages) < 2:
            return None, "messages do not end in an assistant turn"
        prompt = [{"role": m["role"], "content": m["content"]} for m in messages[:-1]]
        system = cfg.sft.get("system_prompt")
        if system and prompt[0]["role"] != "system":
            prompt.insert(0, {"role": "system", "content": system})
        return {"prompt": prompt, "completion": assistant(messages[-1]["content"])}, None
    user, output = _text(raw, "input", "prompt", "instruction"), _text(raw, "output", "completion", "response")
    if user is None or output is None:
        return None, "neither messages nor input/output"
    return {"prompt": _system_and_user(cfg, user), "completion": assistant(output)}, None


@register_format("medical_cot")
def convert_medical(raw: Row, cfg) -> Converted:
    """Question, Complex_CoT, Response (medical-o1-reasoning-SFT) -> reasoning/answer tags."""
    question, reasoning = _text(raw, "Question", "question"), _text(raw, "Complex_CoT", "reasoning")
    response = _text(raw, "Response", "response", "answer")
    if question is None or response is None:
        return None, "missing question or response"
    completion = tagged(reasoning, response) if reasoning else response
    return {"prompt": _system_and_user(cfg, question), "completion": assistant(completion)}, None


@register_format("reviewer")
def convert_reviewer(raw: Row, cfg) -> Converted:
    """paper -> review; kept only when the review's verdict line parses (`sft.verdict_pattern`, the same
    regex the regex_verdict reward and the verdict evaluator use)."""
    from rewards import extract_verdict

    paper, review = _text(raw, "paper", "text"), _text(raw, "review")
    if paper is None or review is None:
        return None, "missing paper or review"
    if extract_verdict(review, cfg.sft.verdict_pattern) is None:
        return None, "no (or conflicting) verdict line"
    return {"prompt": _system_and_user(cfg, paper), "completion": assistant(review)}, None


@register_format("instruction")
def convert_instruction(raw: Row, cfg) -> Converted:
    """Dolly: instruction (+ context) -> response."""
    instruction, response = _text(raw, "instruction"), _text(raw, "response")
    if instruction is None or response is None:
        return None, "missing instruction or response"
    context = _text(raw, "context")
    user = f"{instruction}\n\nContext: {context}" if context else instruction
    return {"prompt": _system_and_user(cfg, user), "completion": assistant(response)}, None
