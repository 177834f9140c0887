"""What a dry run says besides the plan: the models' sizes, the hub tasks' split sizes, and
what is not in the local cache yet, with the command that fetches it.

Nothing here downloads, loads weights or reads a hub task's data: a GPU study's dry run must
work on a laptop with neither network nor cache (HF_HUB_OFFLINE=1 and an empty HF_HOME).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from transferlab.engine.model_shapes import cached_snapshot, has_weights, model_shape
from transferlab.engine.workload import is_hub_task



def download(args: str) -> str:
    """The hub's download command for these arguments (`hf`, or `huggingface-cli` before huggingface_hub 1.0)."""
    from transferlab.tasks.hub.cache import download_cli

    return f"{download_cli()} download {args}"


@dataclass(frozen=True)
class Missing:
    """Something a run needs that is not on this machine yet."""

    what: str  # "model" or "dataset"
    name: str  # as the spec names it
    command: str  # what fetches it


def missing_models(names: Iterable[str]) -> list[Missing]:
    """Models whose weights are neither installed (built-in), in a directory, nor in the hub cache."""
    from importlib import metadata

    from transferlab import models

    out = []
    for name in dict.fromkeys(names):
        ref = models.resolve(name)
        if ref.builtin is not None:
            try:
                metadata.distribution(ref.builtin.distribution)
            except metadata.PackageNotFoundError:
                out.append(Missing("model", name, ref.builtin.install))
        elif ref.kind == "hub":
            snapshot = cached_snapshot(ref.location)
            if snapshot is None or not has_weights(snapshot):
                out.append(Missing("model", name, download(ref.location)))
    return out


def missing_tasks(names: Iterable[str]) -> list[Missing]:
    """Hub tasks whose dataset is not in the local cache (each task says so through `availability()`)."""
    from transferlab.tasks import get_task

    out = []
    for name in dict.fromkeys(names):
        task = get_task(name)
        if not is_hub_task(task):
            continue
        state = str(task.availability()) if hasattr(task, "availability") else f"download: {hub_command(task.hub_id)}"
        for command in ([] if state == "cached" else state.removeprefix("download:").strip().split(" && ")):
            out.append(Missing("dataset", name, command))
    return out


def hub_command(dataset_id: str) -> str:
    return download(f"--repo-type dataset {dataset_id}")


def print_requirements(console: Any, missing: list[Missing]) -> None:
    """One line per download (shared datasets once), or one line saying nothing is missing."""
    if not missing:
        console.print("every model and dataset is available locally", highlight=False)
        return
    console.print("not in the local cache (a dry run downloads nothing; fetch these before the run):", highlight=False)
    by_command: dict[str, list[Missing]] = {}
    for m in missing:
        by_command.setdefault(m.command, []).append(m)
    for command, items in by_command.items():
        names = ", ".join(m.name for m in items[:4]) + (f" and {len(items) - 4} more" if len(items) > 4 else "")
        console.print(f"  {items[0].what} {names}: {command}", highlight=False)


def print_models(console: Any, names: Iterable[str]) -> None:
    for name in dict.fromkeys(names):
        console.print(f"model {name}: {model_shape(name).describe()}", highlight=False)


def print_task_sizes(console: Any, names: Iterable[str]) -> None:
    """The published split sizes of the plan's hub tasks (what the estimate counts; nothing loaded)."""
    from transferlab.tasks import get_task

    for name in dict.fromkeys(names):
        task = get_task(name)
        if is_hub_task(task):
            sizes = " / ".join(f"{split} {n:,}" for split, n in task.split_sizes.items())
            ids = " + ".join(dict.fromkeys(s.hub_id for s in getattr(task, "sources", ()))) or task.hub_id
            console.print(f"task {name}: {ids} {sizes} (published split sizes; not loaded)", highlight=False)


def print_dry_run(console: Any, describe: str, jobs: list[Any], model_names: Iterable[str], task_names: Iterable[str],
                  output: Any, device: str, extra: dict[str, float] | None = None, list_jobs: bool = True) -> Any:
    """Everything a study's dry run prints after its own header: the plan with its estimate, the
    models' sizes, the hub tasks' sizes, what must be downloaded, and the jobs. Returns the estimate."""
    from transferlab.engine.estimate import plan_estimate
    from transferlab.tasks import get_task

    model_names, task_names = list(dict.fromkeys(model_names)), list(dict.fromkeys(task_names))
    estimate = plan_estimate(jobs, output, device, extra)
    console.print(f"plan: {describe}; estimate {estimate.describe()}", highlight=False)
    for note in estimate.notes:
        console.print(f"  assumed: {note}", highlight=False)
    print_models(console, model_names)
    print_task_sizes(console, task_names)
    print_requirements(console, missing_models(model_names) + missing_tasks(task_names))
    on_hub = sum(1 for j in jobs if isinstance(j.params.get("task"), str) and is_hub_task(get_task(j.params["task"])))
    if on_hub:
        console.print(f"the keys of the {on_hub} jobs on hub tasks are provisional: the run fingerprints their data "
                      "(so the estimate counts them as not done)", highlight=False)
    if list_jobs:
        for job in jobs:
            console.print(f"  {job.kind:8s} {job.key}  {job.label}", highlight=False)
    return estimate
