"""Reward registry and the never-raise wrapper every reward goes through.

Why: the trainer should be configured by reward *names* (``rewards.stack`` in Hydra), not by
an if/elif over task names; a duplicate name is a bug and raises; an unknown name raises a
``ValueError`` that lists what exists (the verl ``@register`` pattern).

Every reward handed to TRL is a ``SafeReward``: it keeps ``__name__`` (TRL names its metrics
``rewards/<__name__>/mean``), swallows ``**kwargs`` it does not need, and never raises into
the trainer. An exception, a wrong-length result or a non-finite value scores 0.0 for the
completions concerned and is counted (``error_count``), and each call reports
``rewards/<name>/error_rate`` through TRL's ``log_metric`` callback when one is passed.
``None`` (TRL's "not applicable to this sample") passes through untouched.
"""

from __future__ import annotations

import inspect
import logging
import math
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["SafeReward", "available_rewards", "get_reward", "register_reward", "wrap_reward"]

logger = logging.getLogger(__name__)

RewardFn = Callable[..., Sequence[float | None]]
_REGISTRY: dict[str, Callable[..., RewardFn]] = {}


def register_reward(name: str) -> Callable[[Callable[..., RewardFn]], Callable[..., RewardFn]]:
    """Register a reward *factory* under ``name``; the factory's keyword arguments are its params."""
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"reward name must be an identifier-like string, got {name!r}")

    def decorator(factory: Callable[..., RewardFn]) -> Callable[..., RewardFn]:
        if name in _REGISTRY:
            raise ValueError(
                f"reward {name!r} is already registered (by {_REGISTRY[name].__module__}."
                f"{_REGISTRY[name].__qualname__}); pick another name"
            )
        _REGISTRY[name] = factory
        return factory

    return decorator


def available_rewards() -> list[str]:
    """Registered reward names, sorted."""
    return sorted(_REGISTRY)


def get_reward(name: str, **params: Any) -> SafeReward:
    """Build registered reward ``name`` with ``params`` and wrap it (see module docstring).

    Raises ``ValueError`` for an unknown name (listing the available ones) or for params the
    factory does not accept or rejects (naming the param).
    """
    if name not in _REGISTRY:
        raise ValueError(f"unknown reward {name!r}; available rewards: {', '.join(available_rewards())}")
    factory = _REGISTRY[name]
    signature = inspect.signature(factory)
    accepted = [p.name for p in signature.parameters.values() if p.kind is p.KEYWORD_ONLY or p.kind is p.POSITIONAL_OR_KEYWORD]
    for key in params:
        if key not in accepted:
            raise ValueError(
                f"reward {name!r} has no param {key!r}; its params are: {', '.join(accepted) or '(none)'}"
            )
    try:
        signature.bind(**params)
    except TypeError as exc:
        missing = [
            p.name for p in signature.parameters.values() if p.default is p.empty and p.name not in params
        ]
        raise ValueError(f"reward {name!r} needs param(s) {', '.join(missing)}: {exc}") from None
    return wrap_reward(factory(**params), name)


def _is_bad_number(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, bool):
        return False
    try:
        return not math.isfinite(float(value))
    except (TypeError, ValueError):
        return True


class SafeReward:
    """A reward function that never raises into the trainer and counts what went wrong.

    Attributes: ``__name__``; ``error_count`` (completions scored 0.0 because of an error),
    ``completion_count`` and ``call_count`` over the run; ``last_error`` (a short string).
    """

    def __init__(self, fn: RewardFn, name: str):
        self.fn = fn
        self.__name__ = name
        self.__qualname__ = name
        self.__doc__ = getattr(fn, "__doc__", None)
        self.__wrapped__ = fn
        self._accepted = _accepted_kwargs(fn)
        self.error_count = 0
        self.completion_count = 0
        self.call_count = 0
        self.last_error: str | None = None

    def __repr__(self) -> str:
        return f"SafeReward({self.__name__!r}, errors={self.error_count}/{self.completion_count})"

    @property
    def error_rate(self) -> float:
        return self.error_count / self.completion_count if self.completion_count else 0.0

    def __call__(self, prompts=None, completions=None, **kwargs: Any) -> list[float | None]:
        completions = list(completions) if completions is not None else []
        n = len(completions)
        if prompts is None:
            prompts = [None] * n
        scores, errors = self._score(prompts, completions, kwargs)
        self.call_count += 1
        self.completion_count += n
        self.error_count += errors
        log_metric = kwargs.get("log_metric")
        if callable(log_metric):
            try:
                log_metric(f"rewards/{self.__name__}/error_rate", errors / n if n else 0.0)
            except Exception:  # logging must not break scoring
                logger.debug("log_metric failed for reward %s", self.__name__, exc_info=True)
        return scores

    def _score(self, prompts, completions, kwargs) -> tuple[list[float | None], int]:
        n = len(completions)
        if self._accepted is not None:
            kwargs = {k: v for k, v in kwargs.items() if k in self._accepted}
        try:
            result = list(self.fn(prompts=prompts, completions=completions, **kwargs))
            if len(result) != n:
                raise ValueError(f"returned {len(result)} scores for {n} completions")
        except Exception as exc:
            self._note(exc)
            if n <= 1:
                return [0.0] * n, n
            return self._score_one_by_one(prompts, completions, kwargs)
        return self._clean(result)

    def _score_one_by_one(self, prompts, completions, kwargs) -> tuple[list[float | None], int]:
        """After a batch failed: score each completion alone so one bad sample costs only itself."""
        n = len(completions)
        scores: list[float | None] = []
        errors = 0
        for i in range(n):
            item_kwargs = {
                k: (v[i : i + 1] if isinstance(v, list) and len(v) == n else v)
                for k, v in kwargs.items()
                if k != "log_metric"
            }
            try:
                result = list(self.fn(prompts=prompts[i : i + 1], completions=completions[i : i + 1], **item_kwargs))
                if len(result) != 1:
                    raise ValueError(f"returned {len(result)} scores for 1 completion")
            except Exception as exc:
                self._note(exc)
                scores.append(0.0)
                errors += 1
                continue
            cleaned, bad = self._clean(result)
            scores.extend(cleaned)
            errors += bad
        return scores, errors

    def _clean(self, result: list[Any]) -> tuple[list[float | None], int]:
        scores: list[float | None] = []
        errors = 0
        for value in result:
            if value is None:
                scores.append(None)
            elif _is_bad_number(value):
                scores.append(0.0)
                errors += 1
            else:
                scores.append(float(value))
        if errors:
            row_error = getattr(self.fn, "last_row_error", None)  # set by rewards.builtin per-row scorers
            message = f"{errors} completion(s) errored or scored non-finite" + (f"; last: {row_error}" if row_error else "")
            if self.error_count == 0:
                logger.warning("reward %s: %s (scored 0.0, counted)", self.__name__, message)
            self.last_error = message
        return scores, errors

    def _note(self, exc: Exception) -> None:
        self.last_error = f"{type(exc).__name__}: {exc}"[:300]
        if self.error_count == 0:
            logger.warning("reward %s raised (scored 0.0, counted): %s", self.__name__, self.last_error)
        else:
            logger.debug("reward %s raised: %s", self.__name__, self.last_error)


def _accepted_kwargs(fn: Callable) -> frozenset[str] | None:
    """Keyword names ``fn`` takes, or None when it takes ``**kwargs`` (or cannot be inspected)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    return frozenset(p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD))


def wrap_reward(fn: RewardFn, name: str) -> SafeReward:
    """Wrap any ``f(prompts, completions, **kwargs)`` as a ``SafeReward`` named ``name``."""
    if isinstance(fn, SafeReward):
        fn = fn.fn
    return SafeReward(fn, name)
