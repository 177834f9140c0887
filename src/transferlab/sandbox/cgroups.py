"""One cgroup per sandbox, so one memory and one process limit hold the whole process tree.

RLIMIT_AS limits each process alone: four children of a 1 GB program could hold 4 GB. A
cgroup counts them together (and the pages they write to their tmpfs). Both cgroup v2
(`memory.max`, `pids.max`) and v1 (`memory.limit_in_bytes`, `pids.max`) are used, under
the cgroup the harness itself runs in, where the harness may create one: as root on most
machines, or in a systemd-delegated subtree. Where it may not, `probe()` says None and the
sandbox falls back to per-process limits (and records that it did).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

CGROUP_FS = Path("/sys/fs/cgroup")
_PREFIX = "transferlab-sandbox-"
_turn = itertools.count()


@dataclass(frozen=True)
class CgroupParents:
    """Where this process may create sandbox cgroups: one directory per controller."""

    version: int  # 1 or 2
    memory: Path
    pids: Path | None  # None: no pids controller (RLIMIT_NPROC still applies)

    def describe(self) -> str:
        return f"cgroup v{self.version} memory{' + pids' if self.pids else ''} limit on the whole process tree"


def _own_paths() -> dict[str, str]:
    """This process's cgroup path per controller ('' for the v2 unified hierarchy)."""
    paths: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            for controller in controllers.split(",") if controllers else [""]:
                paths[controller] = path
    return paths


def _candidates() -> list[CgroupParents]:
    paths = _own_paths()
    found = []
    if "" in paths and (CGROUP_FS / "cgroup.controllers").exists():  # v2 only
        base = CGROUP_FS / paths[""].lstrip("/")
        found.append(CgroupParents(2, base, base))
    if "memory" in paths and (CGROUP_FS / "memory").is_dir():  # v1 (or hybrid)
        pids = CGROUP_FS / "pids" / paths["pids"].lstrip("/") if "pids" in paths else None
        found.append(CgroupParents(1, CGROUP_FS / "memory" / paths["memory"].lstrip("/"),
                                   pids if pids is not None and pids.is_dir() else None))
    return found


class Cgroup:
    """A fresh cgroup (one directory per controller) with a memory and a process limit."""

    def __init__(self, parents: CgroupParents, memory_bytes: int, max_procs: int):
        self.parents = parents
        name = f"{_PREFIX}{os.getpid()}-{next(_turn)}"
        self.memory = parents.memory / name
        self.pids = parents.pids / name if parents.pids is not None else None
        self.dirs = [self.memory] if parents.version == 2 or self.pids is None else [self.memory, self.pids]
        made: list[Path] = []
        try:
            for d in self.dirs:
                d.mkdir()
                made.append(d)
            if parents.version == 2:
                controllers = (self.memory / "cgroup.controllers").read_text().split()
                if "memory" not in controllers:
                    raise OSError("the memory controller is not enabled for child cgroups")
                _write(self.memory / "memory.max", memory_bytes)
                _write(self.memory / "memory.swap.max", 0, optional=True)
                if "pids" in controllers:
                    _write(self.memory / "pids.max", max_procs)
            else:
                _write(self.memory / "memory.limit_in_bytes", memory_bytes)
                _write(self.memory / "memory.memsw.limit_in_bytes", memory_bytes, optional=True)
                if self.pids is not None:
                    _write(self.pids / "pids.max", max_procs)
        except OSError:
            for d in reversed(made):
                with contextlib.suppress(OSError):
                    d.rmdir()
            raise

    @property
    def procs_files(self) -> list[str]:
        """The files a process writes its pid to, to join (all controllers)."""
        return [str(d / "cgroup.procs") for d in self.dirs]

    def oom_killed(self) -> bool:
        """Whether the kernel killed a process here for going over the memory limit."""
        name = "memory.events" if self.parents.version == 2 else "memory.oom_control"
        with contextlib.suppress(OSError, ValueError):
            for line in (self.memory / name).read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill" and int(value) > 0:
                    return True
        return False

    def pids_left(self) -> list[int]:
        pids: set[int] = set()
        for d in self.dirs:
            with contextlib.suppress(OSError, ValueError):
                pids.update(int(p) for p in (d / "cgroup.procs").read_text().split())
        return sorted(pids)

    def close(self, patience_s: float = 2.0) -> bool:
        """Kill whatever still runs here and remove the cgroup; False if something would not die."""
        kill = self.memory / "cgroup.kill"
        if self.parents.version == 2 and kill.exists():
            with contextlib.suppress(OSError):
                _write(kill, 1)
        deadline = time.monotonic() + patience_s
        while (pids := self.pids_left()) and time.monotonic() < deadline:
            for pid in pids:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.005)
        empty = not self.pids_left()
        for d in self.dirs:
            for _ in range(50):  # a task that just died may hold the directory a moment longer
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.01)
        return empty


def _write(path: Path, value: int, optional: bool = False) -> None:
    if optional and not path.exists():
        return
    path.write_text(f"{value}\n")


def _orphaned(directory: Path) -> bool:
    """Whether a sandbox cgroup was made by a process that no longer runs (its pid is in the name)."""
    pid = directory.name[len(_PREFIX):].split("-")[0]
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


def probe() -> CgroupParents | None:
    """Where sandbox cgroups can be made, tried by making one; None if nowhere.

    Also removes the sandbox cgroups that crashed runs left behind.
    """
    for parents in _candidates():
        for d in (parents.memory, parents.pids):
            if d is not None:
                for stale in d.glob(f"{_PREFIX}*"):
                    if _orphaned(stale):  # only empty ones can go: rmdir refuses the others
                        with contextlib.suppress(OSError):
                            stale.rmdir()
        try:
            Cgroup(parents, 64 * 2**20, 8).close()
        except OSError:
            continue
        return parents
    return None
