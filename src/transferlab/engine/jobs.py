"""Jobs: the serialisable units of work every study is made of, and the registry of their kinds.

A job is plain data (kind, key, params, deps) so any executor, local or distributed, can
ship it; its key is the hash of everything that determines its output, and its output is
one artifact of the store, of the kind its job kind declares. A study adds the job kinds
it needs by `register_job_kind` (the probe study's extract, fit and score; translation's
translate); `train` and `evaluate`, which every adapter study shares, are in
`engine.adapter_jobs`. A handler is named as "module:function" and imported when a job of
its kind first runs; a study's kinds are registered by the module that holds their handlers,
which the study's plan imports, so planning a study makes its jobs runnable.
"""

from __future__ import annotations

import gc
import importlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from transferlab import models
from transferlab.errors import TransferlabError
from transferlab.engine.store import Store


@dataclass(frozen=True)
class Job:
    kind: str  # a registered job kind: "train", "evaluate", "extract", ...
    key: str
    params: dict[str, Any]
    deps: tuple[str, ...] = ()
    label: str = ""

    def __post_init__(self) -> None:
        # Params are stored exactly as they travel (JSON), so a shipped job equals the local one.
        object.__setattr__(self, "params", json.loads(json.dumps(self.params)))
        object.__setattr__(self, "deps", tuple(self.deps))

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Job:
        data = json.loads(text)
        return cls(data["kind"], data["key"], data["params"], tuple(data["deps"]), data.get("label", ""))


@dataclass
class Runtime:
    """What a worker holds while running jobs: the store, the models it has loaded (once each)
    and a memo that consecutive jobs share (e.g. one dataset's activations for all its fits)."""

    store: Store
    device: str = "auto"
    dtype: str = "auto"
    bootstrap: int = 1000
    loaded: dict[str, models.LoadedModel] = field(default_factory=dict)
    memo: dict[Any, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.own: set[str] = set()  # models this runtime loaded by name (others may not be reloadable)

    def model(self, name: str, alone: bool = False) -> models.LoadedModel:
        """The model `name`, loaded on first use. `alone` first releases the other models this
        runtime loaded itself, for jobs that go through models one after another (probe extraction)."""
        released = [n for n in self.loaded if alone and n != name and n in self.own]
        for other in released:
            del self.loaded[other]
            self.own.discard(other)
        if released:
            gc.collect()
        if name not in self.loaded:
            self.loaded[name] = models.load(name, device=self.device, dtype=self.dtype)
            self.own.add(name)
        return self.loaded[name]

    def adapter_dir(self, key: str | None) -> Path | None:
        return self.store.path("adapter", key) if key else None


Tick = Callable[[float, float, str], None]  # (completed, total, note)


Handler = Callable[[Job, Runtime, Tick], dict[str, Any]]


@dataclass(frozen=True)
class JobKind:
    """What a kind of job makes (a store artifact kind) and the function that runs it."""

    name: str
    artifact: str  # the store kind its output is written as: "adapter", "evaluation", "activations", ...
    handler: str  # "module:function", imported on first use
    # "module:function(job, runtime)" that commits the job's result rows from its artifact, for
    # kinds whose rows go to the results table as the job ends ("" = none); `results rebuild` uses it
    commit: str = ""


JOB_KINDS: dict[str, JobKind] = {}


def register_job_kind(name: str, artifact: str, handler: str, commit: str = "") -> JobKind:
    """Declare a job kind; registering the same kind again with the same values is a no-op."""
    kind = JobKind(name, artifact, handler, commit)
    if JOB_KINDS.get(name, kind) != kind:
        raise TransferlabError(f"job kind {name!r} is registered twice with different handlers: rename one")
    JOB_KINDS[name] = kind
    return kind


def job_kind(name: str) -> JobKind:
    if name not in JOB_KINDS:
        raise TransferlabError(f"unknown job kind {name!r} (known: {', '.join(sorted(JOB_KINDS))}): "
                               "import the study that registers it before running its jobs")
    return JOB_KINDS[name]


def artifact_of(job: Job) -> str:
    """The store kind of the artifact that marks `job` as done."""
    return job_kind(job.kind).artifact


def _imported(target: str) -> Any:
    module, _, function = target.partition(":")
    return getattr(importlib.import_module(module), function)


def handler_of(job: Job) -> Handler:
    return _imported(job_kind(job.kind).handler)


def committer_of(job: Job) -> Callable[[Job, Runtime], Any] | None:
    """The function that commits `job`'s rows from its artifact, if its kind has rows."""
    target = job_kind(job.kind).commit
    return _imported(target) if target else None


register_job_kind("train", "adapter", "transferlab.engine.adapter_jobs:run_train")
register_job_kind("evaluate", "evaluation", "transferlab.engine.adapter_jobs:run_evaluate",
                  commit="transferlab.engine.adapter_jobs:commit_evaluation")
