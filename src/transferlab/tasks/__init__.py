"""Tasks: data + prompt + scorer + deterministic splits, registered by name."""

from transferlab.tasks.base import SPLITS, Example, Task, score_choices, split_of, stable_hash
from transferlab.tasks.registry import TASKS, get_task, task_names

__all__ = ["SPLITS", "Example", "Task", "TASKS", "get_task", "task_names", "score_choices", "split_of", "stable_hash"]
