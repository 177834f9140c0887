"""The task registry: built-in tasks register lazily by name; user tasks come from YAML files."""

from __future__ import annotations

import importlib

from transferlab.registry import Registry
from transferlab.tasks.base import Task

TASKS: Registry[Task] = Registry("task")

# Each module registers its tasks when imported; the data itself loads only on first use.
_BUILTIN_MODULES = (
    "transferlab.tasks.mmlu",
    "transferlab.tasks.gsm8k",
    "transferlab.tasks.humaneval",
    "transferlab.tasks.ifeval",
    "transferlab.tasks.truth",
    "transferlab.tasks.instructions",
    "transferlab.tasks.hub",  # the full-size hub twins (hub-<name>), after the offline tasks they mirror
)
_loaded = False


def _ensure_builtins() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        for module in _BUILTIN_MODULES:
            importlib.import_module(module)


def get_task(name: str) -> Task:
    """The task registered under `name`; unknown names suggest the closest ones."""
    _ensure_builtins()
    return TASKS.get(name)


def task_names() -> list[str]:
    _ensure_builtins()
    return TASKS.names()
