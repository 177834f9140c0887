"""Rebuilding a run's results table from its artifacts: the table is derived data.

    transferlab results rebuild runs/cross_domain       # after "results.sqlite is corrupted"

Every number in `results.sqlite` comes from a stored artifact (an evaluation's per-example
scores, a probe's fitted scores) or from the study's summary over them, so a lost or damaged
database costs nothing: the old file is moved aside, the study is planned again from its
spec, each finished job's rows are committed again from its artifact (no job runs), and the
study's summary and report are redone.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console

from transferlab.engine.execute import RunReport, is_complete
from transferlab.engine.jobs import Job, Runtime, committer_of
from transferlab.engine.store import write_json
from transferlab.errors import TransferlabError

SPEC_RECORD = "spec-source.json"  # in a run directory: which spec file made it


def remember_spec(run_dir: Path, spec_path: Path) -> None:
    """Note the spec a run came from, so `results rebuild` can plan it again."""
    text = spec_path.read_text()
    write_json(run_dir / SPEC_RECORD, {"path": str(spec_path.resolve()),
                                       "sha256": hashlib.sha256(text.encode()).hexdigest()}, indent=1)


def recorded_spec(run_dir: Path) -> Path:
    """The spec file `run_dir` was made from, checked to be unchanged since."""
    try:
        record = json.loads((run_dir / SPEC_RECORD).read_text())
    except (OSError, ValueError):
        raise TransferlabError(f"{run_dir} does not say which spec made it ({SPEC_RECORD} is missing): "
                               "pass it with --spec SPEC") from None
    path = Path(record["path"])
    if not path.is_file():
        raise TransferlabError(f"the spec {path} that made {run_dir} is gone: pass it with --spec SPEC")
    if hashlib.sha256(path.read_text().encode()).hexdigest() != record["sha256"]:
        raise TransferlabError(f"the spec {path} changed since it made {run_dir}: pass the one that made it "
                               "with --spec SPEC")
    return path


def set_aside(db_path: Path) -> Path | None:
    """Move a (corrupted) results database out of the way; never delete it."""
    if not db_path.exists():
        return None
    aside = db_path.with_name(f"{db_path.name}.broken-{time.strftime('%Y%m%d-%H%M%S')}")
    db_path.rename(aside)
    for suffix in ("-wal", "-shm", "-journal"):
        db_path.with_name(db_path.name + suffix).unlink(missing_ok=True)
    return aside


class RebuildExecutor:
    """Commits each finished job's rows again from its artifact; runs nothing."""

    def __init__(self, console: Console | None = None):
        self.console = console or Console(stderr=True)

    def run(self, jobs: Sequence[Job], runtime: Runtime) -> RunReport:
        report = RunReport()
        for job in jobs:
            if not is_complete(job, runtime):
                report.skipped[job.key] = "not run yet (rebuild runs nothing)"
                continue
            commit = committer_of(job)
            if commit is not None:
                commit(job, runtime)
            report.reused.append(job.key)
        if report.skipped:
            self.console.print(f"[yellow]{len(report.skipped)} jobs have no artifact yet[/]: run the spec to "
                               "finish them")
        self.console.print(f"rebuilt from {len(report.reused)} finished jobs")
        return report


def rebuild_run(run_dir: Path, spec_path: Path | None, console: Any) -> Path | None:
    """Recreate `run_dir`'s results table from its artifacts; returns where the old one went."""
    from transferlab.engine.studies import runner, study_kind

    if not run_dir.is_dir():
        raise TransferlabError(f"{run_dir} is not a run directory: give the output directory of a run")
    spec_path = spec_path or recorded_spec(run_dir)
    kind = study_kind(spec_path)
    aside = set_aside(run_dir / "results.sqlite")
    if aside:
        console.print(f"moved the old table to {aside}")
    runner(kind)(spec_path, run_dir, False, console, executor=RebuildExecutor(console))
    return aside
