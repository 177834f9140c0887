"""The Ray executor: every job of a study as Ray work, on one machine or a cluster.

    transferlab run spec.yaml --executor ray --address auto    # docs/cluster.md

The driver (this process) decides what runs exactly as the local executor does, through the
same `execute.Ledger`: intact artifacts are reused, a job whose input failed is skipped, a
job starts once its inputs exist, claims keep other runs off the jobs it holds, and it alone
writes the results database (a worker's rows come back in its `Result` and are committed
here, `ray_worker`). What changes is where a job runs:
- a job that names a model goes to a `ModelWorker` actor of that model, which keeps it
  loaded; each (model, resources) has a pool of such actors, at most `actors_per_model`
  (by default as many as the cluster holds), placed by Ray's scheduler, and an idle one is
  let go when other work waits for the resources it holds;
- every other job is a plain Ray task;
- resources per job kind come from the spec's `executor.resources`.
A job whose worker died (the process killed, its node lost) runs again, at most
`max_retries` times, and so does one that raised an error declared transient (after 2, 4, 8 s);
any other error fails the job at once, as locally. Retries are made here rather than by Ray
so that each one is said on the console and counted in `RunReport.retried`. Ray is started
(or joined) when the first job must run, so re-running a finished study never starts it.
"""

from __future__ import annotations

import math
import os
import shutil
import socket
import tempfile
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from transferlab.engine.execute import RUN, WAIT, Ledger, Outcome, RunReport, progress_bars
from transferlab.engine.executors import ExecutorConfig, Resources, fits, require_ray
from transferlab.engine.jobs import JOB_KINDS, Job, Runtime, artifact_of, job_kind
from transferlab.engine.ray_worker import ModelWorker, Result, WorkerSetup, replay, run_job, setup_for
from transferlab.errors import TransferlabError, closest

TRANSIENT_DELAY = 2.0  # seconds before the first retry of a transient error; doubled for each next one


def model_of(job: Job) -> str | None:
    """The model a job loads, when its params name one: such jobs go to that model's actors."""
    model = job.params.get("model")
    return model if isinstance(model, str) else None


def connect(ray: Any, address: str | None) -> None:
    """Join the cluster at `address`, or start Ray on this machine (None); reuse a live connection."""
    if ray.is_initialized():
        return
    try:
        if address is None:
            ray.init(include_dashboard=False, logging_level="WARNING", log_to_driver=False)
        else:
            ray.init(address=address, logging_level="WARNING", log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as err:
        where = f"the Ray cluster at {address}" if address else "a Ray instance on this machine"
        raise TransferlabError(f"cannot reach {where}: {str(err).strip().split('. ')[0]}; start the head with "
                               "`ray start --head` and pass --address HEAD:6379 (or auto on a node of it)") from None


def check_reachable(address: str) -> None:
    """Ray waits without end for a head that does not answer: look first (a TCP connection to it).
    `auto` is the cluster `ray start` recorded on this machine, or $RAY_ADDRESS."""
    if address == "auto":
        recorded = Path(tempfile.gettempdir()) / "ray" / "ray_current_cluster"
        address = os.environ.get("RAY_ADDRESS") or (recorded.read_text().strip() if recorded.is_file() else "")
        if not address:
            raise TransferlabError("--address auto: no Ray cluster was started on this machine: start one with "
                                   "`ray start --head`, or pass its head as --address HEAD:6379")
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return
    try:
        socket.create_connection((host, int(port)), timeout=10).close()
    except OSError as err:
        raise TransferlabError(f"no Ray head answers at {host}:{port} ({err.strerror or err}): start it with "
                               f"`ray start --head --port={port}`, or pass the address it printed") from None


@dataclass
class Pool:
    """The actors of one (model, resources): those idle, how many live, and the jobs waiting for one."""

    model: str
    shape: Resources
    limit: int
    actors: list[Any] = field(default_factory=list)
    idle: list[Any] = field(default_factory=list)
    queue: deque[Job] = field(default_factory=deque)


@dataclass
class Running:
    job: Job
    pool: Pool | None  # None: a plain task
    actor: Any
    started: float


def is_transient(outcome: Outcome, names: tuple[str, ...]) -> bool:
    """An error that may pass on a second try: it says so itself, or its class is named in `transient:`."""
    return outcome.transient or bool(set(outcome.error_types) & set(names))


class RayExecutor:
    """Runs jobs on a Ray cluster (started here, or joined at `config.address`) with the local
    executor's decisions and records, and its progress bar and ETA on the driver."""

    def __init__(self, config: ExecutorConfig, console: Console | None = None, quiet: bool = False,
                 poll_seconds: float = 5.0):
        require_ray()  # a machine without Ray learns it here, before the study makes anything
        if config.address is not None:
            check_reachable(config.address)  # and so does one that names a cluster it cannot reach
        self.config = config
        self.console = console or Console(stderr=True)
        self.quiet = quiet
        self.poll_seconds = poll_seconds  # how often to look again at jobs other workers hold

    def run(self, jobs: Sequence[Job], runtime: Runtime) -> RunReport:
        self._check(jobs, runtime)
        flight: _Flight | None = None  # connected when the first job must run: a finished study never starts Ray
        with progress_bars(self.console, self.quiet) as bars:
            ledger = Ledger(jobs, runtime, self.console, bars)
            try:
                pending = list(jobs)
                while pending or (flight and flight.busy()):
                    held = []
                    for job in pending:
                        verdict = ledger.admit(job)
                        if verdict == WAIT:
                            held.append(job)
                        elif verdict == RUN:
                            flight = flight or self._connect(jobs, ledger)
                            flight.submit(job)
                    pending = held
                    if flight and flight.busy():
                        flight.collect(self.poll_seconds if pending else None)
                    elif pending:  # every job left is another worker's: wait for them
                        ledger.waiting(len(pending))
                        time.sleep(self.poll_seconds)
            except BaseException:
                if flight:
                    flight.cancel()
                ledger.abandon()
                raise
            finally:
                if flight:
                    flight.close()
        return ledger.report

    def _connect(self, jobs: Sequence[Job], ledger: Ledger) -> _Flight:
        ray = require_ray()
        connect(ray, self.config.address)
        self._check_cluster(ray, jobs)
        setup = setup_for(ledger.runtime, [job_kind(k) for k in sorted({job.kind for job in jobs})])
        return _Flight(ray, self.config, setup, ledger, len(jobs))

    def _check(self, jobs: Sequence[Job], runtime: Runtime) -> None:
        """What can be told before connecting: resources for kinds that exist, models that can be shipped."""
        for kind, where in self.config.where.items():
            if kind != "default" and kind not in JOB_KINDS:
                near = closest(kind, JOB_KINDS)
                hint = f"did you mean {near[0]!r}?" if near else f"job kinds: default, {', '.join(sorted(JOB_KINDS))}"
                raise TransferlabError(f"{where}: executor.resources.{kind}: not a job kind: {hint}")
        given = {name for name in runtime.loaded if name not in runtime.own}
        for job in jobs:
            if model_of(job) in given:
                raise TransferlabError(f"model {model_of(job)!r} was handed to the study in memory, which Ray "
                                       "workers cannot share: name it by a path every node sees, or run locally")

    def _check_cluster(self, ray: Any, jobs: Sequence[Job]) -> None:
        """A job no node can ever hold would wait forever: say so before anything runs."""
        nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
        for kind in sorted({job.kind for job in jobs}):
            shape = self.config.resources_for(kind)
            if not any(fits(shape, node) for node in nodes):
                biggest = ", ".join(f"{k} {v:g}" for k, v in sorted(max(nodes, key=lambda n: n.get("CPU", 0)).items())
                                    if k in ("CPU", "GPU")) if nodes else "none"
                raise TransferlabError(f"executor.resources.{kind} asks for {shape.describe()}, which no node of the "
                                       f"Ray cluster has (largest: {biggest}): lower it or add a node that has it")


class _Flight:
    """The jobs on the cluster: submitted to pools or as tasks, collected, retried."""

    def __init__(self, ray: Any, config: ExecutorConfig, setup: WorkerSetup, ledger: Ledger, total: int):
        self.ray, self.config, self.setup, self.ledger = ray, config, setup, ledger
        self.task = ray.remote(run_job)
        self.actor_class = ray.remote(ModelWorker)
        self.cluster = ray.cluster_resources()
        self.total = total
        self.pools: dict[tuple[str, Resources], Pool] = {}
        self.inflight: dict[Any, Running] = {}
        self.later: list[tuple[float, Job]] = []  # transient retries, when they are due

    def busy(self) -> bool:
        return bool(self.inflight or self.later or any(p.queue for p in self.pools.values()))

    # ---- sending work ------------------------------------------------------------------------
    def submit(self, job: Job, front: bool = False) -> None:
        shape = self.config.resources_for(job.kind)
        model = model_of(job)
        if model is None:
            ref = self.task.options(**shape.options(), max_retries=0).remote(self.setup, job.to_json())
            self._started(ref, job, None, None)
            return
        pool = self.pools.get((model, shape))
        if pool is None:
            pool = self.pools[(model, shape)] = Pool(model, shape, self._limit(shape))
        (pool.queue.appendleft if front else pool.queue.append)(job)
        self._dispatch(pool)

    def _limit(self, shape: Resources) -> int:
        """How many actors one model may have: the spec's number, or as many as the cluster holds."""
        if self.config.actors_per_model:
            return self.config.actors_per_model
        room = [self.cluster.get(name, 0) / need for name, need in
                (("CPU", shape.num_cpus), ("GPU", shape.num_gpus), ("memory", shape.memory)) if need]
        return max(1, min(self.total, math.floor(min(room)) if room else self.total))

    def _dispatch(self, pool: Pool) -> None:
        while pool.queue and (pool.idle or len(pool.actors) < pool.limit):
            if pool.idle:
                actor = pool.idle.pop()
            else:
                actor = self.actor_class.options(**pool.shape.options(), max_restarts=0).remote(self.setup)
                pool.actors.append(actor)
            job = pool.queue.popleft()
            self._started(actor.run.remote(job.to_json()), job, pool, actor)

    def _started(self, ref: Any, job: Job, pool: Pool | None, actor: Any) -> None:
        self.inflight[ref] = Running(job, pool, actor, time.perf_counter())
        self._show()

    def _show(self) -> None:
        self.ledger.bars.update(self.ledger.overall, description=f"[bold]jobs[/] ({len(self.inflight)} on Ray)")

    # ---- results -----------------------------------------------------------------------------
    def collect(self, timeout: float | None) -> None:
        """Wait (at most `timeout` s) for jobs to end, and settle every one that did."""
        now = time.monotonic()
        for due in [item for item in self.later if item[0] <= now]:
            self.later.remove(due)
            self.submit(due[1], front=True)
        if self.later:
            soonest = min(t for t, _ in self.later) - now
            timeout = soonest if timeout is None else min(timeout, soonest)
        if not self.inflight:
            time.sleep(max(0.0, timeout or 0.0))
            return
        ready, rest = self.ray.wait(list(self.inflight), num_returns=1, timeout=timeout)
        if ready and rest:
            ready += self.ray.wait(rest, num_returns=len(rest), timeout=0)[0]
        for ref in ready:
            self._settle(ref, self.inflight.pop(ref))
        self._let_go_idle()
        self._show()

    def _settle(self, ref: Any, running: Running) -> None:
        job, ledger = running.job, self.ledger
        seconds = time.perf_counter() - running.started
        try:
            result: Result = self.ray.get(ref)
        except self.ray.exceptions.RayTaskError as err:  # raised outside the handler (e.g. unpicklable)
            self._release(running)
            cause = getattr(err, "cause", None) or err
            ledger.finish(job, Outcome(False, f"{type(cause).__name__}: {cause}", seconds))
            return
        except self.ray.exceptions.RayError as err:  # the worker died: its process, its node
            self._drop(running)
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            if not self._retry(job, f"its worker died ({type(err).__name__})", delay=0.0):
                ledger.finish(job, Outcome(False, f"its worker died {self.config.max_retries + 1} times: {reason}",
                                           seconds))
            if running.pool is not None:
                self._dispatch(running.pool)  # a new actor takes the dead one's place
            return
        self._release(running)
        outcome = result.outcome
        ledger.runtime.store.notices.extend(result.notices)
        ledger.print_notices()
        if outcome.ok:
            try:
                replay(result.journal, ledger.runtime.store)
            except Exception as err:  # as a handler's own commit failing would fail the job locally
                outcome = Outcome(False, f"committing its rows failed: {type(err).__name__}: {err}", outcome.seconds)
        elif is_transient(outcome, self.config.transient):
            tries = ledger.report.retried.get(job.key, 0)
            if self._retry(job, f"transient error: {outcome.summary}", delay=TRANSIENT_DELAY * 2 ** tries):
                return
        ran = "actor" if running.pool is not None else "task"
        ledger.finish(job, outcome, where=f", {ran} pid {result.pid} on {result.host} node {result.node}")

    def _retry(self, job: Job, why: str, delay: float) -> bool:
        """Run `job` again if it has retries left (its claim stays held); False when it has none."""
        tries = self.ledger.report.retried.get(job.key, 0)
        if tries >= self.config.max_retries:
            return False
        self.ledger.report.retried[job.key] = tries + 1
        self.ledger.console.print(f"[yellow]retrying[/] {job.label or job.key}: {why} "
                                  f"(retry {tries + 1} of {self.config.max_retries})")
        if delay:
            self.later.append((time.monotonic() + delay, job))
        else:
            self.submit(job, front=True)
        return True

    # ---- actors ------------------------------------------------------------------------------
    def _release(self, running: Running) -> None:
        """A finished job's actor takes the next job of its pool."""
        if running.pool is not None:
            running.pool.idle.append(running.actor)
            self._dispatch(running.pool)

    def _drop(self, running: Running) -> None:
        """A dead worker's actor leaves its pool (a new one replaces it), and its half-written artifact
        goes: the driver holds the job's claim, so no one else writes that key (on any node)."""
        if running.pool is not None:
            running.pool.actors.remove(running.actor)
            self._kill(running.actor)
        job = running.job
        for partial in self.ledger.runtime.store.path(artifact_of(job), job.key).parent.glob(f".{job.key}.*.tmp"):
            shutil.rmtree(partial, ignore_errors=True)

    def _let_go_idle(self) -> None:
        """An idle actor whose model has nothing queued holds resources other work may wait for: end it
        when there is other work (it stays while its model is all that runs)."""
        for pool in self.pools.values():
            if pool.queue or not pool.idle:
                continue
            elsewhere = any(r.pool is not pool for r in self.inflight.values()) or self.later or any(
                p.queue for p in self.pools.values() if p is not pool)
            if elsewhere:
                for actor in pool.idle:
                    pool.actors.remove(actor)
                    self._kill(actor)
                pool.idle.clear()

    def _kill(self, actor: Any) -> None:
        try:
            self.ray.kill(actor, no_restart=True)
        except Exception:  # already gone
            pass

    def cancel(self) -> None:
        """The run was interrupted: stop what is in flight (its claims are released by the ledger)."""
        for ref, running in list(self.inflight.items()):
            try:
                self.ray.cancel(ref, force=running.pool is None)
            except Exception:  # finished meanwhile, or an actor call Ray cannot force
                pass
        self.inflight.clear()

    def close(self) -> None:
        """End every actor of this run: the models they hold are freed for the next run."""
        for pool in self.pools.values():
            for actor in pool.actors:
                self._kill(actor)
            pool.actors.clear()
            pool.idle.clear()
