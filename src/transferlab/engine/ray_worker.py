"""What runs on a Ray worker: one job's handler, against the shared artifact store.

A worker writes artifacts where the driver would (the artifact root is a path every node
sees), but never the results database: the sqlite file has one writer, the driver. The
rows a handler commits (an evaluation's scores) are kept in the worker's store as a journal
and sent back with the job's outcome; the driver commits them (`replay`) before it records
the job as done, in the order the local executor would.

Each worker process keeps one `Runtime` per run set-up, so what the local runtime shares
between consecutive jobs is shared here too: a `ModelWorker` actor holds its model loaded
for every job that goes to it, and a plain task's process keeps its memo between tasks.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transferlab.engine.execute import Outcome, attempt
from transferlab.engine.jobs import Job, JobKind, Runtime, register_job_kind
from transferlab.engine.store import Store
from transferlab.errors import TransferlabError

JOURNALED = ("add_results", "set_labels", "set_learner_methods", "add_similarity")  # Store's writes of rows


class WorkerStore(Store):
    """The store as a worker sees it: the shared artifacts, and a journal instead of the database."""

    def __init__(self, root: str | Path, artifacts: str | Path):  # Store.__init__ would open the database
        self.root = Path(root)
        self.db_path = self.root / "results.sqlite"
        self.artifacts = Path(artifacts)
        self._verified: dict[Path, tuple] = {}
        self.notices: list[str] = []
        self.journal: list[tuple[str, Any]] = []

    def _db(self) -> Any:
        raise TransferlabError("a job on a Ray worker read the results database, which only the driver opens: "
                               "a job reads its inputs from artifacts")

    def add_results(self, rows: Any) -> int:
        rows = list(rows)
        self.journal.append(("add_results", rows))
        return len(rows)

    def set_labels(self, labels: dict[str, str]) -> None:
        self.journal.append(("set_labels", dict(labels)))

    def set_learner_methods(self, methods: dict[str, str]) -> None:
        self.journal.append(("set_learner_methods", dict(methods)))

    def add_similarity(self, frame: Any) -> None:
        self.journal.append(("add_similarity", frame))


def replay(journal: list[tuple[str, Any]], store: Store) -> None:
    """Commit a worker's journaled rows to the driver's database."""
    for method, value in journal:
        if method not in JOURNALED:
            raise TransferlabError(f"a worker sent an unknown database write {method!r}")
        getattr(store, method)(value)


@dataclass(frozen=True)
class WorkerSetup:
    """What a worker needs to run the jobs of one run: where the store is, the runtime's settings,
    the job kinds and the YAML task files the driver registered (a worker process starts bare)."""

    root: str
    artifacts: str
    device: str
    dtype: str
    bootstrap: int
    kinds: tuple[JobKind, ...]
    task_files: tuple[str, ...]

    def runtime(self) -> Runtime:
        from transferlab.tasks.yaml_task import register_task_file

        for kind in self.kinds:
            register_job_kind(kind.name, kind.artifact, kind.handler, kind.commit)
        for path in self.task_files:
            register_task_file(path)
        return Runtime(WorkerStore(self.root, self.artifacts), device=self.device, dtype=self.dtype,
                       bootstrap=self.bootstrap)


def setup_for(runtime: Runtime, kinds: list[JobKind]) -> WorkerSetup:
    """The set-up that makes a worker's runtime equal the driver's `runtime` (absolute paths)."""
    from transferlab.tasks import yaml_task

    store = runtime.store
    files = tuple(sorted(yaml_task._registered.values()))  # the task files this process registered
    return WorkerSetup(str(store.root.resolve()), str(store.artifacts.resolve()), runtime.device, runtime.dtype,
                       runtime.bootstrap, tuple(sorted(kinds, key=lambda k: k.name)), files)


@dataclass
class Result:
    """A job's outcome as it travels back to the driver, with the rows to commit and where it ran."""

    outcome: Outcome
    journal: list[tuple[str, Any]] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    host: str = ""
    pid: int = 0
    node: str = ""


_RUNTIMES: dict[WorkerSetup, Runtime] = {}  # per worker process: what consecutive jobs share


def run_job(setup: WorkerSetup, job_json: str) -> Result:
    """Run one job (the body of a Ray task, and of `ModelWorker.run`); errors come back as its outcome."""
    where = {"host": socket.gethostname(), "pid": os.getpid(), "node": _node()}
    try:
        runtime = _RUNTIMES.get(setup) or _RUNTIMES.setdefault(setup, setup.runtime())
    except Exception as err:  # e.g. a task file this node cannot read: the job fails, with the reason
        return Result(Outcome(False, f"cannot set up a worker on {where['host']}: {err}", 0.0), **where)
    store = runtime.store
    store.journal, store.notices = [], []
    outcome = attempt(Job.from_json(job_json), runtime, lambda completed, total, note: None)
    return Result(outcome, store.journal, store.notices, **where)


def _node() -> str:
    try:
        import ray

        return ray.get_runtime_context().get_node_id()[:8]
    except Exception:  # not on a Ray worker (a test calling run_job directly)
        return ""


class ModelWorker:
    """A Ray actor for one model (and the device its resources give it): every job that names the
    model comes to one of these, which loads the model on its first job and keeps it."""

    def __init__(self, setup: WorkerSetup):
        self.setup = setup

    def pid(self) -> int:
        return os.getpid()

    def run(self, job_json: str) -> Result:
        return run_job(self.setup, job_json)
