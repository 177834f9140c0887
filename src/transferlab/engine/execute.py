"""Executors run a list of jobs; the local one runs them in order in this process.

A job whose artifact already exists (and is intact) is skipped, so re-running a spec
does only what is missing, and a crash loses at most the job in flight. A failed job
is recorded and the jobs that depend on it are skipped; the others still run. Jobs are
claimed before they run (`claims`), so several processes can work through one spec, or
through specs that share artifacts, without doing a job twice: a job another worker holds,
or one whose inputs it is still making, is left for later and waited for at the end.

Every executor makes these decisions the same way through a `Ledger` (reuse, skip, wait,
claim; then record how each job ended) and runs a job's handler through `attempt`; the
local executor calls them in this process, the Ray executor (`engine.ray_executor`) on a
cluster.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from transferlab.engine import claims, integrity
from transferlab.errors import TransferlabError
from transferlab.engine.jobs import Job, Runtime, Tick, artifact_of, committer_of, handler_of


@dataclass
class RunReport:
    done: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    retried: dict[str, int] = field(default_factory=dict)  # job key -> times it ran again (its worker died)


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
    if store.job_status(job.key) != "done":  # made by another run sharing the artifacts: its rows belong here too
        commit = committer_of(job)
        if commit is not None:
            commit(job, runtime)
        store.record_job(job.key, job.kind, "done", "reused an existing artifact")
    return True


def _waits_for_rebuilt_input(job: Job, by_key: dict[str, Job], runtime: Runtime, bad: set[str]) -> bool:
    """An artifact whose input is missing (being rebuilt) is judged once that input exists again."""
    _, missing = integrity.changed_inputs(runtime.store, artifact_of(job), job.key)
    return any(d in by_key and d not in bad for d in missing)


@dataclass
class Outcome:
    """How one run of a job's handler ended, as plain data (it travels back from a Ray worker)."""

    ok: bool
    summary: str  # the handler's summary when ok, else the error in one line
    seconds: float
    trace: str = ""  # a short traceback for errors that are not TransferlabErrors (bugs, broken inputs)
    error_types: tuple[str, ...] = ()  # the error's class and bases, as Name and module.Name: what `transient` matches
    transient: bool = False  # the error says it may pass on a second try (an attribute `transient = True`)


def attempt(job: Job, runtime: Runtime, tick: Tick) -> Outcome:
    """Run `job`'s handler once; an error becomes a failed Outcome, never an exception."""
    start = time.perf_counter()
    try:
        summary = handler_of(job)(job, runtime, tick)
    except Exception as err:  # a bug or a broken input: keep the record, go on with the run
        user = isinstance(err, TransferlabError)
        names = tuple(n for c in type(err).__mro__ for n in (c.__name__, f"{c.__module__}.{c.__qualname__}"))
        return Outcome(False, str(err) if user else f"{type(err).__name__}: {err}", time.perf_counter() - start,
                       trace="" if user else traceback.format_exc(limit=3), error_types=names,
                       transient=bool(getattr(err, "transient", False)))
    return Outcome(True, str(summary), time.perf_counter() - start)


def progress_bars(console: Console, quiet: bool) -> Progress:
    """The driver's display: a bar over all jobs with the ETA (the local executor adds the running job's)."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("eta"), TimeRemainingColumn())
    return Progress(*columns, console=console, disable=quiet, transient=False)


WAIT, SETTLED, RUN = "wait", "settled", "run"  # what `Ledger.admit` decides for a job


class Ledger:
    """One executor run's account of its jobs: the decisions every executor makes alike (reuse an
    intact artifact, skip a job whose input failed, wait for inputs or for another worker's claim,
    claim the rest to run) and the record of how each claimed job ended (jobs table, lineage,
    report, console), so a job ends the same whether it ran here or on a cluster."""

    def __init__(self, jobs: Sequence[Job], runtime: Runtime, console: Console, bars: Progress):
        self.by_key = {job.key: job for job in jobs}
        self.runtime, self.console, self.bars = runtime, console, bars
        self.report = RunReport()
        self.bad: set[str] = set()  # failed or skipped: their dependants are skipped
        self.claims: dict[str, Path] = {}
        self.overall = bars.add_task("[bold]jobs", total=len(jobs))
        for orphan in integrity.clean_orphans(runtime.store):
            console.print(f"[yellow]removed[/] {orphan.name}, left behind by a job that did not finish")

    def admit(self, job: Job) -> str:
        """SETTLED (reused or skipped), WAIT (another worker holds it or its inputs) or RUN (claimed)."""
        store = self.runtime.store
        if _waits_for_rebuilt_input(job, self.by_key, self.runtime, self.bad):
            return WAIT
        complete = is_complete(job, self.runtime)
        self.print_notices()
        if complete:
            self._settled(job, reused=True)
            return SETTLED
        missing = [d for d in job.deps if d in self.bad]
        if missing:
            self.report.skipped[job.key] = f"depends on failed job {missing[0]}"
            store.record_job(job.key, job.kind, "skipped", self.report.skipped[job.key])
            self.bad.add(job.key)
            self._settled(job)
            return SETTLED
        if any(d in self.by_key and not store.has(artifact_of(self.by_key[d]), d) for d in job.deps):
            return WAIT  # an input is still being made (by this run or another worker)
        claim = claims.take(store.artifacts / "claims", job.key)
        if claim is None:
            return WAIT
        if is_complete(job, self.runtime):  # finished by another worker since we looked
            claims.release(claim)
            self._settled(job, reused=True)
            return SETTLED
        self.claims[job.key] = claim
        return RUN

    def waiting(self, count: int) -> None:
        self.bars.update(self.overall, description=f"[bold]jobs[/] (waiting for {count} held by another worker)")

    def finish(self, job: Job, outcome: Outcome, where: str = "") -> None:
        """Record how a claimed job ended, then release its claim."""
        store = self.runtime.store
        try:
            if outcome.ok:
                retried = self.report.retried.get(job.key)
                note = f" (after {retried} retr{'y' if retried == 1 else 'ies'})" if retried else ""
                store.record_job(job.key, job.kind, "done", outcome.summary + note, outcome.seconds)
                self.report.done.append(job.key)
                self.console.print(f"[green]done[/] {job.label} ({outcome.seconds:.0f} s{where}) "
                                   f"{outcome.summary}{note}")
                integrity.record_lineage(store, artifact_of(job), job.key,
                                         {d: artifact_of(self.by_key[d]) for d in job.deps if d in self.by_key})
            else:
                self.report.failed[job.key] = outcome.summary
                self.bad.add(job.key)
                store.record_job(job.key, job.kind, "failed", outcome.summary, outcome.seconds)
                self.console.print(f"[red]failed[/] {job.label}{where}: {outcome.summary}")
                if outcome.trace:
                    self.console.print(outcome.trace, style="dim")
        finally:
            claims.release(self.claims.pop(job.key))
        self._settled(job)

    def abandon(self) -> None:
        """Release the claims of jobs that did not finish (the run was interrupted): another run takes them."""
        for key in list(self.claims):
            claims.release(self.claims.pop(key))

    def print_notices(self) -> None:
        while self.runtime.store.notices:
            self.console.print(f"[yellow]{self.runtime.store.notices.pop(0)}[/]")

    def _settled(self, job: Job, reused: bool = False) -> None:
        if reused:
            self.report.reused.append(job.key)
        self.bars.advance(self.overall)


class LocalExecutor:
    """Runs jobs one at a time in this process, with a progress bar and ETA."""

    def __init__(self, console: Console | None = None, quiet: bool = False, poll_seconds: float = 5.0):
        self.console = console or Console(stderr=True)
        self.quiet = quiet
        self.poll_seconds = poll_seconds  # how often to look again at jobs other workers hold

    def run(self, jobs: Sequence[Job], runtime: Runtime) -> RunReport:
        with progress_bars(self.console, self.quiet) as bars:
            ledger = Ledger(jobs, runtime, self.console, bars)
            pending = list(jobs)
            while pending:
                held = []
                for job in pending:
                    verdict = ledger.admit(job)
                    if verdict == WAIT:
                        held.append(job)
                    elif verdict == RUN:
                        self._run_one(job, ledger)
                if len(held) == len(pending):  # every job left is another worker's: wait for them
                    ledger.waiting(len(held))
                    time.sleep(self.poll_seconds)
                pending = held
        return ledger.report

    def _run_one(self, job: Job, ledger: Ledger) -> None:
        current = ledger.bars.add_task(job.label or job.key, total=None)

        def tick(completed: float, total: float, note: str, _id=current) -> None:
            ledger.bars.update(_id, completed=completed, total=total,
                               description=f"{job.label}{'  ' + note if note else ''}")

        try:
            outcome = attempt(job, ledger.runtime, tick)
        except BaseException:  # interrupted: the job is not done, and not ours any more
            ledger.abandon()
            raise
        finally:
            ledger.bars.remove_task(current)
        ledger.finish(job, outcome)
