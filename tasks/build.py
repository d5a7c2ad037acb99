"""From a `task` config block to a checked `Task`, and the task's correctness as a TRL reward.

`_target_` names the class, as everywhere else in our configs; it is imported with the reward stack's
importer, so a task of a user's own needs no change to this package.
"""

import functools
import json
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from tasks.base import Task
from tasks.errors import ConfigError

TASK_DIR = Path(__file__).resolve().parent.parent / "conf" / "task"


def task_names() -> list[str]:
    """The tasks conf/task/ ships."""
    return sorted(p.stem for p in TASK_DIR.glob("*.yaml"))


def load_task_file(name: str) -> DictConfig:
    """The `task` block of conf/task/<name>.yaml (a held-out domain, or SFT without `+task`)."""
    path = TASK_DIR / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"no task named {name!r}; available: {', '.join(task_names())}")
    return OmegaConf.load(path).task


def build_task(task_cfg: DictConfig | dict) -> Task:
    """The task a config block describes. Raises ConfigError naming the field and the fix."""
    settings = _plain(task_cfg)
    return _build(json.dumps(settings, sort_keys=True, default=str))


@functools.lru_cache(maxsize=16)
def _build(settings_json: str) -> Task:
    """Built once per distinct settings: training, its evaluation and the rewards share the instance
    (a reasoning-gym task generates its problems once)."""
    settings = json.loads(settings_json)
    target = settings.pop("_target_", None)
    if not target:
        raise ConfigError("task._target_ is missing: name the Task class, e.g. task._target_=tasks.gsm8k.GSM8K")
    from rewards.stack import import_target

    try:
        cls = import_target(target)
    except (ImportError, AttributeError) as error:
        raise ConfigError(
            f"task._target_={target!r} cannot be imported ({type(error).__name__}: {error}); give the dotted "
            "path of a tasks.Task subclass and make sure its package is on PYTHONPATH"
        ) from None
    if not (isinstance(cls, type) and issubclass(cls, Task)):
        raise ConfigError(f"task._target_={target!r} is not a subclass of tasks.Task")
    return cls.from_settings(settings)


def _plain(task_cfg) -> dict[str, Any]:
    if task_cfg is None:
        raise ConfigError("no task chosen: add one with +task=<name>, e.g. +task=gsm8k")
    if isinstance(task_cfg, DictConfig):
        return OmegaConf.to_container(task_cfg, resolve=True)
    return dict(task_cfg)


def correctness_reward(task: dict):
    """The task's own correctness as a reward (conf/rewards: `_target_: tasks.correctness_reward` with
    `params: {task: ${task}}`): the completion's answer, read as evaluation reads it, scored against the
    row's gold answer by `Task.score_answer`. A verifier that gives up raises, and the reward wrapper
    counts it as an error."""
    built = build_task(task)

    def correctness(prompts=None, completions=(), **columns):
        from rewards.normalize import completion_text

        n = len(completions)
        rows = [{key: value[i] for key, value in columns.items() if isinstance(value, list) and len(value) == n}
                for i in range(n)]
        return [built.score_answer(built.extract(completion_text(c)), row) for c, row in zip(completions, rows)]

    return correctness
