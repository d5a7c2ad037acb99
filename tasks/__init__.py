"""Tasks: the layer between the rewards (below) and training and evaluation (above).

    from tasks import build_task
    task = build_task(cfg.task)             # conf/task/<name>.yaml's `task` block, checked
    rows, report = task.load_split("train")

Built in: `gsm8k`, `math`, `pubmedqa`, `reasoning_gym`, `arithmetic`, `custom` (conf/task/). A task of your own is a
yaml whose `_target_` names a `tasks.Task` subclass anywhere on PYTHONPATH (README, "Write your own task").
"""

from tasks.base import Task
from tasks.build import build_task, correctness_reward, load_task_file, task_names
from tasks.sources import DataReport
from tasks.errors import ConfigError

__all__ = ["ConfigError", "DataReport", "Task", "build_task", "correctness_reward", "load_task_file", "task_names"]
