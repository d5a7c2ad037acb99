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


class DatasetUnavailable(RuntimeError):
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
    _import_builtin_evaluators()
    if name not in _EVALUATORS:
        raise ValueError(f"no evaluator named '{name}'; available: {', '.join(sorted(_EVALUATORS))}")
    return _EVALUATORS[name]


def _import_builtin_evaluators() -> None:
    """Importing a module registers its evaluator (one place lists them, no if/elif over names)."""
    import eval.gsm8k  # noqa: F401
    import eval.multiple_choice  # noqa: F401
    import eval.pubmedqa  # noqa: F401
    import eval.verdict  # noqa: F401


def selected_evaluators(cfg) -> list[Evaluator]:
    """The task's evaluator (unless `eval.task=false`), then each of `eval.domains`, in order."""
    names = [cfg.task.name] if cfg.eval.get("task", True) else []
    names += [str(d) for d in (cfg.eval.get("domains") or [])]
    if not names:
        raise ValueError("nothing to evaluate: eval.task=false and eval.domains is empty")
    return [get_evaluator(name) for name in names]


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


DEFAULT_STOP = ("</answer>",)


def stop_strings(cfg) -> list[str] | None:
    """`eval.stop` (conf/eval.yaml), else stop at `</answer>`: every evaluator here reads its answer from
    that tag, and on a CPU the tokens after it are most of the cost. An empty list: no stop strings."""
    stops = cfg.eval.get("stop", list(DEFAULT_STOP))
    return [str(s) for s in stops] if stops else None


def eval_seed(cfg) -> int:
    return int(cfg.eval.get("seed") or cfg.seed)
