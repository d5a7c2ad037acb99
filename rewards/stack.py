"""Turn the Hydra ``rewards.stack`` mapping into TRL's ``reward_funcs`` and ``reward_weights``.

Why a separate step: it runs before any model loads, so a typo in a reward name, a weight of
"high" or a ``_target_`` that does not import fails in a second with a message naming the
entry and the fix, instead of an hour into a run. It only imports what ``_target_`` names.

Entry forms (``weight`` defaults to 1.0, ``params`` to {})::

    correctness: {weight: 1.0}                                  # registered reward, by key
    fmt: {name: numeric_format, weight: 0.25, params: {tag: answer}}  # registered, by name
    mine: {_target_: my_pkg.rewards.my_reward, weight: 0.5}     # any f(prompts, completions, **kw)
    mine2: {_target_: my_pkg.rewards.make_reward, params: {k: 3}}     # factory: make_reward(k=3) -> f
    mine3: {_target_: my_pkg.rewards.scored, _partial_: true, params: {k: 3}}  # f bound with k=3

A ``null`` entry means "registered reward with defaults". Every function comes back wrapped
by ``rewards.registry.SafeReward`` named after its stack key.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import math
from collections.abc import Callable, Mapping
from typing import Any

from rewards.registry import SafeReward, available_rewards, get_reward, wrap_reward

__all__ = ["build_reward_stack", "import_target"]

_ENTRY_KEYS = {"name", "_target_", "weight", "params", "_partial_"}


def import_target(path: str) -> Any:
    """Import ``pkg.module.attr`` (attribute chains allowed); raises ImportError/AttributeError."""
    if not isinstance(path, str) or not path or path.startswith(".") or path.endswith("."):
        raise ImportError(f"{path!r} is not a dotted path like 'my_pkg.rewards.my_reward'")
    parts = path.split(".")
    for i in range(len(parts) - 1, 0, -1):
        module_name = ".".join(parts[:i])
        try:
            obj = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and not module_name.startswith(exc.name):
                raise  # the module exists but one of *its* imports is missing: say so
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(f"no importable module in {path!r}")


def _where(key: str) -> str:
    return f"rewards.stack.{key}"


def _weight(key: str, entry: Mapping[str, Any]) -> float:
    weight = entry.get("weight", 1.0)
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight):
        raise ValueError(f"{_where(key)}.weight must be a finite number, got {weight!r}; e.g. {_where(key)}.weight=0.5")
    return float(weight)


def _params(key: str, entry: Mapping[str, Any]) -> dict[str, Any]:
    params = entry.get("params")
    if params is None:
        return {}
    if not isinstance(params, Mapping):
        raise ValueError(f"{_where(key)}.params must be a mapping of keyword arguments, got {params!r}")
    bad = [k for k in params if not isinstance(k, str)]
    if bad:
        raise ValueError(f"{_where(key)}.params keys must be strings, got {bad!r}")
    return dict(params)


def _from_target(key: str, entry: Mapping[str, Any], params: dict[str, Any]) -> Callable:
    target = entry["_target_"]
    try:
        obj = import_target(target)
    except (ImportError, AttributeError) as exc:
        raise ValueError(
            f"{_where(key)}._target_={target!r} cannot be imported ({type(exc).__name__}: {exc}); "
            "give a dotted path to a function, e.g. my_pkg.rewards.my_reward, and make sure its package is "
            "on PYTHONPATH"
        ) from None
    if not callable(obj):
        raise ValueError(f"{_where(key)}._target_={target!r} is a {type(obj).__name__}, not a function")
    partial = entry.get("_partial_", False)
    if not isinstance(partial, bool):
        raise ValueError(f"{_where(key)}._partial_ must be true or false, got {partial!r}")
    if partial:
        fn = functools.partial(obj, **params)
    elif params:
        try:
            fn = obj(**params)
        except Exception as exc:
            raise ValueError(
                f"{_where(key)}: calling factory {target}(**params) failed ({type(exc).__name__}: {exc}); "
                "with params and without _partial_, _target_ must return the reward function "
                f"(set {_where(key)}._partial_=true to bind params into each call instead)"
            ) from None
        if not callable(fn):
            raise ValueError(f"{_where(key)}: factory {target}(**params) returned {type(fn).__name__}, not a function")
    else:
        fn = obj
    if inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(getattr(fn, "__call__", None)):
        raise ValueError(f"{_where(key)}._target_={target!r} is async; the reward stack takes plain functions")
    return fn


def build_reward_stack(stack: Mapping[str, Mapping[str, Any] | None]) -> tuple[list[SafeReward], list[float]]:
    """Validate ``rewards.stack`` and build ``(reward_funcs, reward_weights)`` for ``GRPOTrainer``.

    Raises ``ValueError`` naming the entry (``rewards.stack.<key>``) and the fix.
    """
    if not isinstance(stack, Mapping) or not stack:
        raise ValueError(
            f"rewards.stack must be a non-empty mapping of reward entries, got {stack!r}; "
            f"available rewards: {', '.join(available_rewards())}"
        )
    funcs: list[SafeReward] = []
    weights: list[float] = []
    for key, entry in stack.items():
        if not isinstance(key, str) or not key:
            raise ValueError(f"rewards.stack keys must be non-empty strings, got {key!r}")
        entry = {} if entry is None else entry
        if not isinstance(entry, Mapping):
            raise ValueError(
                f"{_where(key)} must be a mapping like {{weight: 1.0, params: {{}}}}, got {entry!r}"
            )
        unknown = sorted(str(k) for k in entry if k not in _ENTRY_KEYS)
        if unknown:
            raise ValueError(
                f"{_where(key)} has unknown key(s) {unknown}; allowed: {sorted(_ENTRY_KEYS)} "
                f"(reward arguments go under {_where(key)}.params)"
            )
        weight, params = _weight(key, entry), _params(key, entry)
        if "_target_" in entry:
            if "name" in entry:
                raise ValueError(f"{_where(key)} sets both name and _target_; keep one")
            funcs.append(wrap_reward(_from_target(key, entry, params), key))
        else:
            if "_partial_" in entry:
                raise ValueError(f"{_where(key)}._partial_ only applies with _target_")
            name = entry.get("name", key)
            if name not in available_rewards():
                raise ValueError(
                    f"{_where(key)}: unknown reward {name!r}; available rewards: {', '.join(available_rewards())}. "
                    f"For your own function set {_where(key)}._target_=my_pkg.module.my_reward"
                )
            try:
                reward = get_reward(name, **params)
            except ValueError as exc:
                raise ValueError(f"{_where(key)}.params: {exc}") from None
            funcs.append(wrap_reward(reward, key))
        weights.append(weight)
    return funcs, weights
