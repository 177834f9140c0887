"""Executors run a list of jobs; the local one runs them in order in this process.

A job whose artifact already exists (and is intact) is skipped, so re-running a spec
does only what is missing, and a crash loses at most the job in flight. A failed job
is recorded and the jobs that depend on it are skipped; the others still run. Jobs are
claimed before they run (`claims`), so several processes can work through one spec, or
through specs that share artifacts, without doing a job twice: a job another worker holds,
or one whose inputs it is still making, is left for later and waited for at the end.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from transferlab.engine import claims, integrity
from transferlab.errors import TransferlabError
from transferlab.engine.jobs import Job, Runtime, artifact_of, handler_of


@dataclass
class RunReport:
    done: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)


class Executor(Protocol):
    def run(self, jobs: Sequence[Job], runtime: Runtime) -> RunReport: ...


def is_complete(job: Job, runtime: Runtime) -> bool:
    """An intact artifact made from its inputs as they are now is a finished job, whichever run
    (sharing the artifacts) produced it. One made from an input that was rebuilt differently is
    stale: it is removed and runs again."""
    store = runtime.store
    if not store.has(artifact_of(job), job.key):
        return False
    changed, _ = integrity.changed_inputs(store, artifact_of(job), job.key)
    if changed:
        integrity.discard(store, artifact_of(job), job.key)
        store.notices.append(f"{job.label or job.key} is stale (its input {changed[0]} was rebuilt and differs): "
                             "it runs again")
        return False
    if store.job_status(job.key) != "done":
        store.record_job(job.key, job.kind, "done", "reused an existing artifact")
    return True


def _waits_for_rebuilt_input(job: Job, by_key: dict[str, Job], runtime: Runtime, bad: set[str]) -> bool:
    """An artifact whose input is missing (being rebuilt) is judged once that input exists again."""
    _, missing = integrity.changed_inputs(runtime.store, artifact_of(job), job.key)
    return any(d in by_key and d not in bad for d in missing)


class LocalExecutor:
    """Runs jobs one at a time in this process, with a progress bar and ETA."""

    def __init__(self, console: Console | None = None, quiet: bool = False, poll_seconds: float = 5.0):
        self.console = console or Console(stderr=True)
        self.quiet = quiet
        self.poll_seconds = poll_seconds  # how often to look again at jobs other workers hold

    def run(self, jobs: Sequence[Job], runtime: Runtime) -> RunReport:
        report = RunReport()
        bad: set[str] = set()
        for orphan in integrity.clean_orphans(runtime.store):
            self.console.print(f"[yellow]removed[/] {orphan.name}, left behind by a job that did not finish")
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   TextColumn("eta"), TimeRemainingColumn())
        with Progress(*columns, console=self.console, disable=self.quiet, transient=False) as bars:
            overall = bars.add_task("[bold]jobs", total=len(jobs))
            by_key = {job.key: job for job in jobs}
            pending = list(jobs)
            while pending:
                held = [job for job in pending if not self._settle(job, by_key, runtime, report, bad, bars, overall)]
                if len(held) == len(pending):  # every job left is another worker's: wait for them
                    bars.update(overall, description=f"[bold]jobs[/] (waiting for {len(held)} held by another worker)")
                    time.sleep(self.poll_seconds)
                pending = held
        return report

    def _settle(self, job: Job, by_key: dict[str, Job], runtime: Runtime, report: RunReport, bad: set[str],
                bars: Progress, overall: int) -> bool:
        """Reuse, skip or run one job; False when it must wait (another worker holds it or its inputs)."""
        if _waits_for_rebuilt_input(job, by_key, runtime, bad):
            return False
        complete = is_complete(job, runtime)
        self._print_notices(runtime)
        if complete:
            report.reused.append(job.key)
            bars.advance(overall)
            return True
        missing = [d for d in job.deps if d in bad]
        if missing:
            report.skipped[job.key] = f"depends on failed job {missing[0]}"
            runtime.store.record_job(job.key, job.kind, "skipped", report.skipped[job.key])
            bad.add(job.key)
            bars.advance(overall)
            return True
        if any(d in by_key and not runtime.store.has(artifact_of(by_key[d]), d) for d in job.deps):
            return False  # an input is still being made by another worker
        claim = claims.take(runtime.store.artifacts / "claims", job.key)
        if claim is None:
            return False
        try:
            if is_complete(job, runtime):  # finished by another worker since we looked
                report.reused.append(job.key)
            else:
                self._run_one(job, runtime, report, bad, bars)
                if job.key in report.done:
                    integrity.record_lineage(runtime.store, artifact_of(job), job.key,
                                             {d: artifact_of(by_key[d]) for d in job.deps if d in by_key})
        finally:
            claims.release(claim)
        bars.advance(overall)
        return True

    def _run_one(self, job: Job, runtime: Runtime, report: RunReport, bad: set[str], bars: Progress) -> None:
        current = bars.add_task(job.label or job.key, total=None)

        def tick(completed: float, total: float, note: str, _id=current) -> None:
            bars.update(_id, completed=completed, total=total,
                        description=f"{job.label}{'  ' + note if note else ''}")

        start = time.perf_counter()
        try:
            summary = handler_of(job)(job, runtime, tick)
        except TransferlabError as err:
            self._fail(job, runtime, report, bad, str(err), start)
        except Exception as err:  # a bug or a broken input: keep the record, go on with the run
            detail = f"{type(err).__name__}: {err}"
            self._fail(job, runtime, report, bad, detail, start)
            self.console.print(traceback.format_exc(limit=3), style="dim")
        else:
            seconds = time.perf_counter() - start
            runtime.store.record_job(job.key, job.kind, "done", str(summary), seconds)
            report.done.append(job.key)
            self.console.print(f"[green]done[/] {job.label} ({seconds:.0f} s) {summary}")
        bars.remove_task(current)

    def _print_notices(self, runtime: Runtime) -> None:
        while runtime.store.notices:
            self.console.print(f"[yellow]{runtime.store.notices.pop(0)}[/]")

    def _fail(self, job: Job, runtime: Runtime, report: RunReport, bad: set[str], detail: str, start: float) -> None:
        report.failed[job.key] = detail
        bad.add(job.key)
        runtime.store.record_job(job.key, job.kind, "failed", detail, time.perf_counter() - start)
        self.console.print(f"[red]failed[/] {job.label}: {detail}")
