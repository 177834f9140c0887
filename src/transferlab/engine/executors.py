"""Which executor runs a spec: the local one (the default) or a Ray cluster.

    transferlab run spec.yaml --executor ray                  # start Ray on this machine
    transferlab run spec.yaml --executor ray --address auto   # join the cluster `ray start` made here
    transferlab run spec.yaml --address HEAD:6379             # the same, naming the head

or in the spec itself (the command line wins over it):

    executor:
      kind: ray
      address: auto
      resources:                       # what one job of each kind holds while it runs
        default: {num_cpus: 1}
        train: {num_cpus: 2, num_gpus: 1, memory: 8GiB}
        evaluate: {num_gpus: 1}
      actors_per_model: 4              # at most this many actors keep each model loaded (0: as many as fit)
      max_retries: 2                   # runs again of a job whose worker died (or raised a transient error)
      transient: [ConnectionError]     # errors, by class name, that are retried like a dead worker

The field is read here, not by the studies: how a spec runs never changes what it computes,
so it is in no job's key. The values are checked when the spec is read, the job kinds named
under `resources` when the jobs are known (`ray_executor`), both before any work starts.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transferlab import safe_yaml
from transferlab.constraints import Interval, Matches, Names, Options
from transferlab.engine.spec import Located, check_keys, checked
from transferlab.errors import TransferlabError, missing_package

KINDS = ("local", "ray")
ADDRESS = Matches(r"auto|(ray://)?[A-Za-z0-9_.\-]+:\d{1,5}", "auto, HOST:PORT or ray://HOST:PORT")
FIELDS: dict[str, Any] = {"kind": Options(KINDS), "address": ADDRESS, "actors_per_model": Interval(int, 0, 10_000),
                          "max_retries": Interval(int, 0, 100), "transient": Names(empty=True)}
RESOURCE_FIELDS: dict[str, Any] = {"num_cpus": Interval(float, 0, 4096), "num_gpus": Interval(float, 0, 1024)}
UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
         "k": 2**10, "kib": 2**10, "m": 2**20, "mib": 2**20, "g": 2**30, "gib": 2**30, "t": 2**40, "tib": 2**40}
INSTALL = "pip install 'transferlab[cluster]'"


@dataclass(frozen=True)
class Resources:
    """What one job holds on the cluster while it runs (Ray's own units; memory in bytes, 0 = none)."""

    num_cpus: float = 1
    num_gpus: float = 0
    memory: int = 0

    def options(self) -> dict[str, Any]:
        """Ray's `.options(...)` for this shape."""
        memory = {"memory": self.memory} if self.memory else {}
        return {"num_cpus": self.num_cpus, "num_gpus": self.num_gpus, **memory}

    def describe(self) -> str:
        parts = [f"{self.num_cpus:g} CPU", *([f"{self.num_gpus:g} GPU"] if self.num_gpus else []),
                 *([f"{self.memory / 2**30:.1f} GiB"] if self.memory else [])]
        return ", ".join(parts)


@dataclass(frozen=True)
class ExecutorConfig:
    kind: str = "local"
    address: str | None = None  # None: start Ray on this machine
    resources: dict[str, Resources] = field(default_factory=dict)  # job kind (or "default") -> shape
    actors_per_model: int = 0
    max_retries: int = 2
    transient: tuple[str, ...] = ()
    where: dict[str, str] = field(default_factory=dict)  # job kind -> "file:line" of its resources entry

    def resources_for(self, kind: str) -> Resources:
        return self.resources.get(kind) or self.resources.get("default") or Resources()


def parse_memory(value: Any) -> int:
    """Bytes from an integer or a size such as 8GiB, 512MB, 2G (binary for G/GiB, decimal for GB)."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", value) if isinstance(value, str) else None
    if not found or found.group(2).lower() not in UNITS:
        raise TransferlabError(f"memory must be a number of bytes or a size such as 8GiB or 512MB, got {value!r}")
    return int(float(found.group(1)) * UNITS[found.group(2).lower()])


def parse_executor(data: Any, at: Located) -> ExecutorConfig:
    """The `executor:` field of a spec (absent: the local executor), each value checked at its line."""
    if data is None:
        return ExecutorConfig()
    if isinstance(data, str):  # `executor: ray` for short
        data = {"kind": data}
    if not isinstance(data, dict):
        raise at.error(("executor",), "expected a mapping such as {kind: ray, address: auto}, or local / ray")
    check_keys(data, {*FIELDS, "resources"}, ("executor",), at)
    values = checked(data, FIELDS, at, ("executor",))
    resources, where = {}, {}
    shapes = values.pop("resources", None) or {}
    if not isinstance(shapes, dict):
        raise at.error(("executor", "resources"), "expected a mapping of job kind to {num_cpus, num_gpus, memory}")
    for kind, shape in shapes.items():
        path = ("executor", "resources", kind)
        if not isinstance(shape, dict):
            raise at.error(path, "expected a mapping such as {num_cpus: 1, num_gpus: 1, memory: 8GiB}")
        check_keys(shape, {*RESOURCE_FIELDS, "memory"}, path, at)
        shape = checked(shape, RESOURCE_FIELDS, at, path)
        try:
            shape["memory"] = parse_memory(shape.get("memory", 0))
        except TransferlabError as err:
            raise at.error((*path, "memory"), str(err)) from None
        resources[str(kind)] = Resources(**shape)
        where[str(kind)] = f"{at.filename}:{at.lines.get(path, 1)}"
    return ExecutorConfig(**{**values, "transient": tuple(values.get("transient", ()))}, resources=resources,
                          where=where)


def spec_executor(spec: Path) -> ExecutorConfig:
    """The executor a spec file asks for (the local one when it says nothing)."""
    at = Located(str(spec), safe_yaml.read_text(spec, "spec file"))
    return parse_executor(at.data.get("executor") if isinstance(at.data, dict) else None, at)


def require_ray() -> Any:
    """The `ray` module, or the one-line error that says how to install it."""
    try:
        import ray
    except ImportError:
        raise missing_package("ray", "the ray executor (--executor ray)", INSTALL) from None
    return ray


def choose(spec: Path, kind: str | None, address: str | None) -> ExecutorConfig:
    """The spec's executor with the command line's `--executor` and `--address` over it, checked."""
    config = spec_executor(spec)
    if address is not None:  # a cluster's address means the ray executor
        address = ADDRESS.normalise("--address", address)
        if kind == "local":
            raise TransferlabError("--address names a Ray cluster: use it with --executor ray")
        kind = "ray"
    if kind is not None:
        config = dataclasses.replace(config, kind=Options(KINDS).normalise("--executor", kind))
    if address is not None:
        config = dataclasses.replace(config, address=address)
    return config


def fits(shape: Resources, node: dict[str, float]) -> bool:
    """Whether a node with these total resources can ever hold a job of this shape."""
    return (node.get("CPU", 0) >= shape.num_cpus and node.get("GPU", 0) >= shape.num_gpus
            and node.get("memory", math.inf) >= shape.memory)
