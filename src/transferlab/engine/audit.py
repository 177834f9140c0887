"""The task audit: every study loads its tasks once before planning, and one that fails is
written to `OUTPUT/audit.json` and left out; the run goes on without it (the user asked
for a matrix, not a crash).
"""

from __future__ import annotations

from pathlib import Path

from transferlab.engine.store import write_json
from transferlab.errors import TransferlabError
from transferlab.tasks import get_task


def audit_tasks(names: list[str], split: str, targets: set[str] | None = None) -> tuple[dict[str, str], dict[str, str]]:
    """Load each task's data once; return (fingerprints, failures). A target (all names by
    default) with nothing in the evaluated split is an error: there would be nothing to score."""
    fingerprints, failures = {}, {}
    for name in names:
        try:
            task = get_task(name)
            fingerprints[name] = task.fingerprint()
        except Exception as err:  # a data problem in one task must not stop the matrix
            failures[name] = f"{type(err).__name__}: {err}"
            continue
        if (targets is None or name in targets) and not task.examples(split):
            raise TransferlabError(f"task {name!r} has no {split} examples after splitting: "
                                   "it cannot be a target; remove it from tasks")
    return fingerprints, failures


def write_audit(output: Path, audit: dict[str, str]) -> Path:
    path = output / "audit.json"
    return write_json(path, {"failed_tasks": audit}, indent=2)
