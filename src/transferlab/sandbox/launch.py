"""Start a program in a sandbox, wait for it with a deadline, and leave nothing behind."""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import math
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from transferlab.sandbox import cgroups, prelude
from transferlab.sandbox.bwrap import PROGRAM_DIR, Isolation, bwrap_command, require

Status = Literal["passed", "failed", "timeout", "memory", "error"]

# Throwaway uids for root runs: one per live sandbox, so each has its own RLIMIT_NPROC
# budget and leftovers can be swept by uid without touching other runs.
_UID_BASE = 61_000
_UID_SLOTS = 512
_slot_turn = itertools.count()
_PRELUDE = Path(prelude.__file__).read_text(encoding="utf-8")
# Joins the sandbox's cgroup (the files before `--`), then becomes bwrap: so every process
# of the sandbox is in the cgroup before the program starts.
_JOIN = 'while [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done; shift; exec "$@"'


@dataclass(frozen=True)
class Limits:
    """What one program may use. `memory_mb` and `max_procs` hold for its whole process tree
    where a cgroup is available, else per process (see `Isolation.protections`)."""

    timeout_s: float = 10.0  # wall clock
    memory_mb: int = 1024
    cpu_s: float | None = None  # default: the timeout plus a second
    max_procs: int = 64  # processes and threads
    max_file_mb: int = 64  # one file
    disk_mb: int = 64  # the private /tmp (and up to 16 MB more in /dev/shm)
    tail_bytes: int = 4096  # how much of stdout and stderr comes back

    def rlimits(self) -> str:
        cpu = math.ceil(self.cpu_s if self.cpu_s is not None else self.timeout_s + 1)
        limits = {
            "RLIMIT_AS": (self.memory_mb * 2**20,) * 2,
            "RLIMIT_CPU": (cpu, cpu + 1),  # SIGXCPU first, SIGKILL a second later
            "RLIMIT_FSIZE": (self.max_file_mb * 2**20,) * 2,
            "RLIMIT_NPROC": (self.max_procs,) * 2,
            "RLIMIT_NOFILE": (256, 256),
            "RLIMIT_CORE": (0, 0),
        }
        return ",".join(f"{name}={soft}:{hard}" for name, (soft, hard) in limits.items())


@dataclass(frozen=True)
class SandboxResult:
    """How one program ended, with the ends of its output and the protections it ran under.

    status: 'passed' (exit 0), 'failed' (any other exit), 'timeout' (killed at the
    wall-clock or CPU limit), 'memory' (out of memory), 'error' (could not be run).
    """

    status: Status
    returncode: int | None
    stdout: str
    stderr: str
    duration_s: float
    protections: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        return self.status == "passed"


@contextlib.contextmanager
def _uid_slot(sweep: bool) -> Iterator[int]:
    """Hold a throwaway uid for one sandbox; a lock file keeps it ours across threads and processes.

    `sweep`: kill what still runs as the uid when it is released (a cgroup, where there is
    one, has already made sure nothing does).
    """
    locks = Path(tempfile.gettempdir()) / "transferlab-sandbox-uids"
    locks.mkdir(mode=0o700, exist_ok=True)
    first = next(_slot_turn)  # rotate, so a released uid is not reused at once
    for offset in range(_UID_SLOTS):
        uid = _UID_BASE + (first + offset) % _UID_SLOTS
        handle = open(locks / f"{uid}.lock", "a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        try:
            yield uid
        finally:
            if sweep:
                _kill_uid(uid)
            handle.close()
        return
    raise RuntimeError(f"all {_UID_SLOTS} sandbox uids are busy")


def _live_processes_of(uid: int) -> list[int]:
    """Pids of the running (not zombie) processes whose real uid is `uid`."""
    pids = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/status") as f:
                    fields = dict(line.split(":", 1) for line in f if ":" in line)
            except OSError:
                continue
            if fields.get("Uid", "").split()[:1] == [str(uid)] and not fields.get("State", "").strip().startswith("Z"):
                pids.append(int(entry.name))
    return pids


def _kill_uid(uid: int, patience_s: float = 1.0) -> None:
    """Kill every process still running as `uid` (the PID namespace should have left none)."""
    deadline = time.monotonic() + patience_s
    while (pids := _live_processes_of(uid)) and time.monotonic() < deadline:
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.005)


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _tail(path: Path, limit: int) -> str:
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        f.seek(max(0, f.tell() - limit))
        return f.read().decode("utf-8", errors="replace")


class Running:
    """A started sandbox: `wait` for it, then `result` (the context manager cleans up)."""

    def __init__(self, proc: subprocess.Popen[bytes], root: Path, iso: Isolation, limits: Limits,
                 cgroup: cgroups.Cgroup | None, started: float):
        self.proc, self.root, self.iso, self.limits, self.cgroup = proc, root, iso, limits, cgroup
        self.started = started
        self.timed_out = False
        self.oom = False
        self.returncode: int | None = None

    def wait(self, timeout_s: float | None = None) -> bool:
        """Wait until the program ends or `timeout_s` passes (then kill it); True if it ended."""
        if self.returncode is not None:
            return not self.timed_out
        timeout_s = self.limits.timeout_s if timeout_s is None else timeout_s
        if not hasattr(os, "waitid"):  # macOS (unisolated only): reaping leaves a tiny window for pid reuse
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.timed_out = True
            self.stop()
            return not self.timed_out
        pid = self.proc.pid
        expired = threading.Event()

        def expire() -> None:
            expired.set()
            _kill_group(pid)

        timer = threading.Timer(max(timeout_s, 0), expire)
        timer.daemon = True
        timer.start()
        try:
            # Not reaped here, so its pid (its group id) cannot be reused before the kill lands.
            with contextlib.suppress(ChildProcessError):
                os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
        finally:
            timer.cancel()
            timer.join()
        self.timed_out = expired.is_set()
        self.stop()
        return not self.timed_out

    def stop(self) -> None:
        """Kill whatever is left of the sandbox and reap it."""
        if self.returncode is not None:
            return
        _kill_group(self.proc.pid)
        if self.cgroup is not None:
            self.oom = self.cgroup.oom_killed()
            self.cgroup.close()
        code = self.proc.wait()
        if self.iso.isolated and code > 128:  # bwrap reports a program killed by signal N as 128 + N
            code = -(code - 128)
        self.returncode = code

    def result(self) -> SandboxResult:
        """How it ended (after `wait` or `stop`)."""
        self.stop()
        code = self.returncode
        assert code is not None
        stderr = _tail(self.root / "stderr", self.limits.tail_bytes)
        stdout = _tail(self.root / "stdout", self.limits.tail_bytes)
        status: Status
        if self.timed_out or code == -signal.SIGXCPU:
            status = "timeout"
        elif code == 0:
            status = "passed"
        elif self.oom or "MemoryError" in stderr:
            status = "memory"
        elif self.iso.isolated and stderr.startswith("bwrap:"):
            status = "error"
        else:
            status = "failed"
        return SandboxResult(status, code, stdout, stderr, time.monotonic() - self.started,
                             self.iso.protections())


def _environment(home: str, extra: Mapping[str, str] | None) -> dict[str, str]:
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
        "HOME": home, "TMPDIR": home,
        "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
        **(extra or {}),
    }


@contextlib.contextmanager
def sandboxed(code: str, limits: Limits, *, mode: Sequence[str] = ("run",), pass_fds: Sequence[int] = (),
              env: Mapping[str, str] | None = None, allow_unsafe: bool | None = None) -> Iterator[Running]:
    """Start `code` as a program in a fresh sandbox; on leaving, nothing of it is left.

    `mode` is the prelude's (`run`, `serve ...`, `judge ...`); `pass_fds` are kept open for
    the program. Raises SandboxUnavailable where there is no isolation and none is waived.
    """
    iso = require(allow_unsafe)
    started = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="transferlab-sandbox-"))
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, root, ignore_errors=True)
        program = root / "main.py"
        program.write_text(code, encoding="utf-8")
        program.chmod(0o644)
        interpreter = [iso.python, "-I", "-S", "-B", "-X", "utf8", "-c", _PRELUDE]
        cgroup = None
        if iso.isolated:
            uid = stack.enter_context(_uid_slot(sweep=iso.cgroup is None)) if iso.setpriv else None
            if iso.cgroup is not None:
                cgroup = cgroups.Cgroup(iso.cgroup, limits.memory_mb * 2**20, limits.max_procs + 8)
                stack.callback(cgroup.close)
            command = [*bwrap_command(iso, program, limits.disk_mb, uid), *interpreter,
                       f"{PROGRAM_DIR}/main.py", limits.rlimits(), *mode]
            if cgroup is not None:
                command = ["/bin/sh", "-c", _JOIN, "sh", *cgroup.procs_files, "--", *command]
            cwd, home = root, "/tmp"
        else:  # allowed without isolation: only limits, a timeout and a scratch directory
            (root / "work").mkdir()
            command = [*interpreter, str(program), limits.rlimits(), *mode]
            cwd = root / "work"
            home = str(cwd)
        with open(root / "stdout", "wb") as out, open(root / "stderr", "wb") as err:
            proc = subprocess.Popen(command, cwd=cwd, env=_environment(home, env), stdin=subprocess.DEVNULL,
                                    stdout=out, stderr=err, start_new_session=True, pass_fds=tuple(pass_fds))
        running = Running(proc, root, iso, limits, cgroup, started)
        stack.callback(running.stop)
        yield running


def run_python(code: str, *, timeout_s: float = 10.0, memory_mb: int = 1024, cpu_s: float | None = None,
               env: Mapping[str, str] | None = None, max_procs: int = 64, max_file_mb: int = 64,
               disk_mb: int = 64, tail_bytes: int = 4096, allow_unsafe: bool | None = None) -> SandboxResult:
    """Run `code` as a Python program in a fresh sandbox and report how it ended.

    `cpu_s` defaults to the wall-clock timeout plus a second. `env` adds variables to the
    minimal environment. Raises SandboxUnavailable where no isolation works, unless
    `allow_unsafe` (or TRANSFERLAB_ALLOW_UNSAFE_CODE=1) accepts running it without.
    """
    limits = Limits(timeout_s, memory_mb, cpu_s, max_procs, max_file_mb, disk_mb, tail_bytes)
    start = time.monotonic()
    try:
        with sandboxed(code, limits, env=env, allow_unsafe=allow_unsafe) as running:
            running.wait()
            return running.result()
    except OSError as e:
        return SandboxResult("error", None, "", f"could not start the sandbox: {e}", time.monotonic() - start)
