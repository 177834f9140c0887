"""The task audit: every study loads its tasks once before planning, and one that fails is
written to `OUTPUT/audit.json` and left out; the run goes on without it (the user asked
for a matrix, not a crash).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from transferlab.engine.store import write_json
from transferlab.engine.workload import is_hub_task, split_count
from transferlab.errors import TransferlabError
from transferlab.tasks import get_task, stable_hash


def audit_tasks(names: list[str], split: str, targets: set[str] | None = None,
                load: bool = True) -> tuple[dict[str, str], dict[str, str]]:
    """Load each task's data once; return (fingerprints, failures). A target (all names by
    default) with nothing in the evaluated split is an error: there would be nothing to score.

    With `load` false (a dry run) a hub task is not loaded: its fingerprint is a stand-in
    (`provisional_fingerprint`) and its published split sizes say whether it has examples."""
    fingerprints, failures = {}, {}
    for name in names:
        try:
            task = get_task(name)
            fingerprints[name] = task.fingerprint() if load or not is_hub_task(task) else provisional_fingerprint(task)
        except Exception as err:  # a data problem in one task must not stop the matrix
            failures[name] = f"{type(err).__name__}: {err}"
            continue
        if (targets is None or name in targets) and not split_count(name, split, load):
            raise TransferlabError(f"task {name!r} has no {split} examples after splitting: "
                                   "it cannot be a target; remove it from tasks")
    return fingerprints, failures


def provisional_fingerprint(task: Any) -> str:
    """What stands for a hub task's fingerprint in a dry run: the keys of its jobs are provisional
    (the run fingerprints the data itself), so a dry run cannot tell which of them are done."""
    return "unloaded-" + stable_hash(task.name, task.version, task.hub_id, getattr(task, "hub_config", None))[:8]


def write_audit(output: Path, audit: dict[str, str]) -> Path:
    path = output / "audit.json"
    return write_json(path, {"failed_tasks": audit}, indent=2)
