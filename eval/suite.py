"""The evaluator registry and what the CLI and the training callback share: results, subsets, settings.

Every evaluator is two steps, `load(cfg, limit) -> rows` and `score(rows, generator, cfg) -> EvalResult`,
so the standalone run loads (and checks) all its data before it spends a minute loading a model, and
the training callback loads its fixed subset once and scores it at every evaluation.
"""

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from omegaconf import OmegaConf

from tasks import ConfigError


class DatasetUnavailable(ConfigError):
    """An evaluation's data cannot be had here (offline, missing files); the message says what to do."""


@dataclass
class EvalResult:
    """One evaluator's numbers (`metrics`, unprefixed) and one record per question (`samples`)."""

    name: str
    metrics: dict[str, Any]
    samples: list[dict] = field(default_factory=list)

    def prefixed(self, prefix: str = "") -> dict[str, Any]:
        """{"<prefix><name>/<metric>": value}, e.g. `eval/gsm8k/accuracy_strict`."""
        return {f"{prefix}{self.name}/{key}": value for key, value in self.metrics.items()}


@dataclass(frozen=True)
class Evaluator:
    name: str
    load: Callable[[Any, int | None], list[dict]]
    score: Callable[[list[dict], Any, Any], EvalResult]


_EVALUATORS: dict[str, Evaluator] = {}


def register(name: str, load, score) -> Evaluator:
    if name in _EVALUATORS:
        raise ValueError(f"evaluator '{name}' is already registered")
    _EVALUATORS[name] = Evaluator(name, load, score)
    return _EVALUATORS[name]


def get_evaluator(name: str) -> Evaluator:
    """A held-out domain by name: a registered evaluator (mmlu, verdict), else a task of conf/task/."""
    _import_builtin_evaluators()
    if name in _EVALUATORS:
        return _EVALUATORS[name]
    from tasks import ConfigError, load_task_file, task_names

    try:
        task_cfg = load_task_file(name)
    except ConfigError:
        known = sorted({*_EVALUATORS, *task_names()})
        raise ConfigError(f"no evaluator named '{name}'; available: {', '.join(known)}") from None
    return task_evaluator(task_cfg, domain=True)


def _import_builtin_evaluators() -> None:
    """Importing a module registers its evaluator (one place lists them, no if/elif over names)."""
    import eval.multiple_choice  # noqa: F401
    import eval.verdict  # noqa: F401


def selected_evaluators(cfg) -> list[Evaluator]:
    """The task's evaluator (unless `eval.task=false`), then each of `eval.domains`, in order."""
    evaluators = [task_evaluator(cfg.task)] if cfg.eval.get("task", True) else []
    evaluators += [get_evaluator(str(d)) for d in (cfg.eval.get("domains") or [])]
    if not evaluators:
        raise ConfigError("nothing to evaluate: eval.task=false and eval.domains is empty")
    return evaluators


def task_evaluator(task_cfg, domain: bool = False) -> Evaluator:
    """Evaluate a task on the fixed subset of its test split, scored by the task itself.

    `domain`: a held-out domain (eval.domains) rather than the trained task: `eval.<name>` may override its
    task fields, and its `max_new_tokens` replaces the run's budget."""
    from omegaconf import OmegaConf

    from tasks import build_task

    name = str(task_cfg.name)

    def task(cfg):
        if not domain or cfg is None or cfg.eval.get(name) is None:
            return build_task(task_cfg)
        merged = OmegaConf.merge(task_cfg, cfg.eval[name])
        return build_task(merged)

    def load(cfg, limit):
        rows, _ = task(cfg).load_split("test")
        return [rows[i] for i in fixed_subset(len(rows), limit, eval_seed(cfg))]

    def score(rows, generator, cfg):
        from eval.answers import score_answers
        from eval.multiple_choice import score_choices

        built = task(cfg)
        max_new_tokens = (built.max_new_tokens if domain else None) or cfg.eval.max_new_tokens \
            or cfg.trainer.max_completion_length
        stop = built.stop or None
        if built.evaluator == "choices":
            return score_choices(rows, generator, name=built.name, labels=built.labels, tag=built.answer_tag,
                                 max_new_tokens=max_new_tokens, stop=stop)
        ks = cfg.eval.get("ks")
        return score_answers(
            built, rows, generator, max_new_tokens=max_new_tokens, num_samples=int(cfg.eval.get("num_samples", 1)),
            temperature=float(cfg.eval.get("temperature", 0.0)), ks=list(ks) if ks else None, stop=stop,
        )

    return Evaluator(name, load, score)


def fixed_subset(n_rows: int, limit: int | None, seed: int) -> list[int]:
    """Indices of the first `limit` rows after a seeded shuffle: the same subset every time, spread over
    the whole set (the first N rows of a file are often not representative). None: all rows, in order."""
    if limit is None or limit >= n_rows:
        return list(range(n_rows))
    order = list(range(n_rows))
    random.Random(seed).shuffle(order)
    return order[:limit]


def settings(cfg, name: str, defaults: Mapping[str, Any]) -> dict[str, Any]:
    """An evaluator's settings: its defaults overlaid with `cfg.eval.<name>` when the config has them
    (the training config need not carry every evaluator's block; conf/eval.yaml documents them all)."""
    merged = dict(defaults)
    block = cfg.eval.get(name) if cfg is not None else None
    if block is not None:
        merged.update(OmegaConf.to_container(block, resolve=True) if OmegaConf.is_config(block) else dict(block))
    return merged


def eval_seed(cfg) -> int:
    seed = cfg.eval.get("seed")
    return int(cfg.seed if seed is None else seed)
