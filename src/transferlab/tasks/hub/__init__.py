"""Built-in tasks on the standard hub benchmarks at full size, named `hub-<name>`.

    transferlab tasks list          # the hub tasks, and whether their data is cached here
    hf download --repo-type dataset openai/gsm8k   # fetch one where the hub is reachable

Families, one module each: `math` (GSM8K, MATH, MATH-500), `code` (MBPP, HumanEval),
`choice` (ARC, OpenBookQA, CommonsenseQA, SciQ, PIQA, BoolQ), `mmlu` (all subjects with
the auxiliary train set, and each subject), `ifeval`; `probe_sets` names the probe study's
hub datasets. `task` holds the shared `HubTask`, `source` the loader and its errors,
`cache` where Hugging Face keeps data here. docs/hub_tasks.md lists every task with its
hub id, config, splits and sizes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from transferlab.tasks.base import Task
from transferlab.tasks.hub import choice, code, ifeval, math, mmlu
from transferlab.tasks.hub.task import PREFIX, HubTask

# name -> a factory building a fresh task (getting a task reads no data).
FACTORIES: dict[str, Callable[[], HubTask]] = {}
for _family in (math, code, choice, mmlu, ifeval):
    FACTORIES.update(_family.factories())


def data_status(task: Task) -> str:
    """What `tasks list` says of a task's data: packaged offline, or on the hub and cached or not."""
    if not isinstance(task, HubTask):
        return "offline"
    return "hub, cached" if task.availability() == "cached" else "hub, needs download"


def download_commands(tasks: Iterable[Task]) -> list[str]:
    """The distinct download commands the given hub tasks still need, in order."""
    commands: dict[str, None] = {}
    for task in tasks:
        if isinstance(task, HubTask):
            state = task.availability()
            if state != "cached":
                commands.update(dict.fromkeys(state.removeprefix("download: ").split(" && ")))
    return list(commands)


def _register() -> None:
    from transferlab.tasks.registry import TASKS

    for name, factory in FACTORIES.items():
        TASKS.add(name, factory)


_register()

__all__ = ["FACTORIES", "PREFIX", "HubTask", "data_status", "download_commands"]
