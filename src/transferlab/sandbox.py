"""Run untrusted, model-generated Python in a throwaway subprocess.

Generated code is executed to score it (HumanEval-style unit tests), so it must not be
able to hang the evaluator, eat its memory, fill its disk, reach the network or damage
files. Each program gets, in layers (the outer ones hold even if the inner ones fail):

- a fresh temporary directory as its working directory, removed afterwards;
- `python -I` (no user site, no PYTHONPATH) and a minimal environment;
- a fresh network namespace (`unshare --net`: no interfaces but a loopback that is down)
  where the machine allows it, detected once;
- when we run as root, a throwaway unprivileged uid (`setpriv`), because the kernel
  never applies RLIMIT_NPROC to root; it keeps read access only, so it can still import
  the standard library from a private directory such as /root/.pyenv;
- resource limits (address space, CPU seconds, file size, processes, no core dumps);
- a prelude that disables sockets and the obviously destructive calls (killing,
  forking, deleting, chmod/chown) before the program's own code runs;
- a wall-clock timeout that kills the whole process group (and any process left
  running under the throwaway uid).

It is a guard against accidents and sloppy code, not a hardened jail.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

Status = Literal["passed", "failed", "timeout", "memory", "error"]

# Throwaway uids for root runs: one per concurrent program, so each has its own
# RLIMIT_NPROC budget and leftovers can be swept by uid without touching other runs.
_UID_BASE = 61_000
_UID_SLOTS = 512
_TAIL_BYTES = 4096
_slot_turn = itertools.count()

# Runs in the child before the program: limits, then guards, then the program itself as
# __main__. It reads the program from a file so tracebacks show its lines. Guards sit at the
# lowest Python layer (_socket, os/posix, _posixsubprocess), which `socket`, `subprocess`,
# `shutil` and `multiprocessing` all go through, so they need not be imported here: startup
# time is most of the cost of a run.
_PRELUDE = r'''
import sys

def _sandbox_start():
    import builtins, errno, os, posix, resource, types
    import _posixsubprocess, _socket

    path, limits = sys.argv[1], sys.argv[2]
    with open(path, encoding="utf-8") as f:
        source = f.read()
    for item in limits.split(","):
        name, values = item.split("=")
        resource.setrlimit(getattr(resource, name), tuple(int(v) for v in values.split(":")))

    def refuse(what):
        def refused(*args, **kwargs):
            raise PermissionError(errno.EPERM, f"{what} is disabled in the sandbox")
        return refused

    class NoNetworkSocket(_socket.socket):
        # A class, not a function, so that `class socket(_socket.socket)` and `class
        # SSLSocket(socket)` still define: only making one fails.
        __slots__ = ()

        def __init__(self, *args, **kwargs):
            raise PermissionError(errno.EACCES, "network access is disabled in the sandbox")

    _socket.socket = _socket.SocketType = NoNetworkSocket
    for name in ("socketpair", "getaddrinfo", "gethostbyname", "gethostbyname_ex", "gethostbyaddr"):
        setattr(_socket, name, refuse(f"socket.{name}"))
    if "socket" in sys.modules:  # imported at startup after all: patch its copies too
        socket = sys.modules["socket"]
        for name in ("create_connection", "create_server", "socketpair", "fromfd", "getaddrinfo",
                     "gethostbyname", "gethostbyname_ex", "gethostbyaddr"):
            setattr(socket, name, refuse(f"socket.{name}"))

    risky = (
        "kill", "killpg", "system", "popen", "fork", "forkpty", "posix_spawn", "posix_spawnp",
        "execv", "execve", "execvp", "execvpe", "execl", "execle", "execlp", "execlpe",
        "spawnv", "spawnve", "spawnvp", "spawnvpe", "setsid", "setuid", "setgid",
        "remove", "unlink", "rmdir", "removedirs", "rename", "renames", "replace", "truncate",
        "chmod", "fchmod", "lchmod", "chown", "fchown", "lchown", "chroot",
    )
    for module in (os, posix):  # posix.fork is os.fork under another name
        for name in risky:
            if hasattr(module, name):
                setattr(module, name, refuse(f"os.{name}"))
    _posixsubprocess.fork_exec = refuse("starting a subprocess")

    code = compile(source, path, "exec")
    main = types.ModuleType("__main__")
    main.__file__ = path
    main.__builtins__ = builtins
    sys.modules["__main__"] = main
    sys.argv = [path]
    exec(code, main.__dict__)

_sandbox_start()
'''


@dataclass(frozen=True)
class SandboxResult:
    """How one program ended, with the ends of its output.

    status: 'passed' (exit 0), 'failed' (any other exit), 'timeout' (killed at the
    wall-clock or CPU limit), 'memory' (died of MemoryError), 'error' (could not be run).
    """

    status: Status
    returncode: int | None
    stdout: str
    stderr: str
    duration_s: float

    @property
    def passed(self) -> bool:
        return self.status == "passed"


@dataclass(frozen=True)
class SandboxFeatures:
    """Which isolation layers this machine supports (probed once per process)."""

    netns: tuple[str, ...]  # the command prefix that gives a fresh network namespace, or ()
    drop_uid: bool  # running as root and able to run the child as a throwaway uid

    @property
    def nproc_enforced(self) -> bool:
        """Whether RLIMIT_NPROC really limits the child (the kernel exempts root)."""
        return self.drop_uid or os.geteuid() != 0


_features: SandboxFeatures | None = None
_features_lock = threading.Lock()


def _succeeds(command: Sequence[str]) -> bool:
    try:
        done = subprocess.run(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def sandbox_features() -> SandboxFeatures:
    """Probe once which isolation this machine allows: `unshare --net` needs root or user namespaces."""
    global _features
    with _features_lock:
        if _features is None:
            netns: tuple[str, ...] = ()
            if shutil.which("unshare"):
                for prefix in (("unshare", "--net", "--"), ("unshare", "--user", "--map-root-user", "--net", "--")):
                    if _succeeds([*prefix, "true"]):
                        netns = prefix
                        break
            drop_uid = (os.geteuid() == 0 and shutil.which("setpriv") is not None
                        and _succeeds([*netns, *_setpriv(_UID_BASE), sys.executable, "-I", "-c", "import math"]))
            _features = SandboxFeatures(netns=netns, drop_uid=drop_uid)
        return _features


def _setpriv(uid: int) -> list[str]:
    """Become `uid` with no groups, keeping only the capability to read and search any file.

    Reading is what root had anyway; writing outside the work directory, signalling other
    processes and escaping RLIMIT_NPROC are what it loses. no_new_privs stops setuid
    binaries from giving anything back.
    """
    return ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--no-new-privs",
            "--inh-caps=-all,+dac_read_search", "--ambient-caps=+dac_read_search", "--"]


@contextlib.contextmanager
def _uid_slot() -> Iterator[int]:
    """Hold a throwaway uid for one run; a lock file keeps it ours across threads and processes."""
    locks = Path(tempfile.gettempdir()) / "transferlab-sandbox-uids"
    locks.mkdir(mode=0o700, exist_ok=True)
    first = next(_slot_turn)  # rotate, so a released uid's zombies are reaped long before its reuse
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
    """Kill every process still running as `uid` (one that left the process group, say)."""
    deadline = time.monotonic() + patience_s
    while (pids := _live_processes_of(uid)) and time.monotonic() < deadline:
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.005)


def _wait_unreaped(proc: subprocess.Popen[bytes], timeout_s: float) -> bool:
    """Wait for `proc` to exit, killing its group at the timeout; True if it exited in time.

    The child is not reaped here, so its pid (and so its group id) cannot be reused by
    another process before we are done killing its group.
    """
    if not hasattr(os, "waitid"):  # macOS: reaping while waiting leaves a tiny window for pid reuse
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            return False
        return True
    pid = proc.pid
    expired = threading.Event()

    def expire() -> None:
        expired.set()
        _kill_group(pid)

    timer = threading.Timer(timeout_s, expire)
    timer.daemon = True
    timer.start()
    try:
        with contextlib.suppress(ChildProcessError):  # someone else reaped it
            os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
    finally:
        timer.cancel()
        timer.join()  # a kill in flight lands before the pid can be reaped
    return not expired.is_set()


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _tail(path: Path, limit: int) -> str:
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        f.seek(max(0, f.tell() - limit))
        return f.read().decode("utf-8", errors="replace")


def _status(returncode: int, stderr: str, timed_out: bool) -> Status:
    if timed_out or returncode == -signal.SIGXCPU:
        return "timeout"
    if returncode == 0:
        return "passed"
    return "memory" if "MemoryError" in stderr else "failed"


def run_python(code: str, *, timeout_s: float = 10.0, memory_mb: int = 1024, cpu_s: float | None = None,
               env: Mapping[str, str] | None = None, max_procs: int = 64, max_file_mb: int = 64,
               tail_bytes: int = _TAIL_BYTES) -> SandboxResult:
    """Run `code` as a Python program in the sandbox and report how it ended.

    `cpu_s` defaults to the wall-clock timeout plus a second. `max_procs` counts threads
    too and, for a non-root user, all of that user's processes. `env` adds variables to
    the minimal environment.
    """
    features = sandbox_features()
    cpu = math.ceil(cpu_s if cpu_s is not None else timeout_s + 1)
    limits = {
        "RLIMIT_AS": (memory_mb * 2**20,) * 2,
        "RLIMIT_CPU": (cpu, cpu + 1),  # SIGXCPU first, SIGKILL a second later
        "RLIMIT_FSIZE": (max_file_mb * 2**20,) * 2,
        "RLIMIT_NPROC": (max_procs,) * 2,
        "RLIMIT_CORE": (0, 0),
    }
    limits_arg = ",".join(f"{name}={soft}:{hard}" for name, (soft, hard) in limits.items())
    start = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="transferlab-sandbox-"))
    try:
        with contextlib.ExitStack() as stack:
            work = root / "work"
            work.mkdir()
            prefix = list(features.netns)
            if features.drop_uid:
                uid = stack.enter_context(_uid_slot())
                os.chown(work, uid, uid)
                os.chmod(root, 0o711)
                prefix += _setpriv(uid)
            (work / "main.py").write_text(code, encoding="utf-8")
            base_env = {
                "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
                "HOME": str(work), "TMPDIR": str(work),
                "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
            }
            command = [*prefix, sys.executable, "-I", "-B", "-X", "utf8", "-c", _PRELUDE,
                       "main.py", limits_arg]
            with open(root / "stdout", "wb") as out, open(root / "stderr", "wb") as err:
                try:
                    proc = subprocess.Popen(command, cwd=work, env={**base_env, **(env or {})},
                                            stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                            start_new_session=True, close_fds=True)
                except OSError as e:
                    return SandboxResult("error", None, "", f"could not start the sandbox: {e}",
                                         time.monotonic() - start)
                try:
                    timed_out = not _wait_unreaped(proc, timeout_s)
                finally:
                    _kill_group(proc.pid)  # whatever the program left behind in its group
                    returncode = proc.wait()
            duration = time.monotonic() - start
            stderr = _tail(root / "stderr", tail_bytes)
            return SandboxResult(_status(returncode, stderr, timed_out), returncode,
                                 _tail(root / "stdout", tail_bytes), stderr, duration)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def run_many(codes: Sequence[str], workers: int | None = None, **options: Any) -> list[SandboxResult]:
    """Run many programs concurrently (each in its own sandbox), results in input order.

    Threads only wait on subprocesses, so a thread pool is enough. `workers` defaults to
    twice the number of CPUs: a short program spends much of its time starting up and
    being set up and cleaned after, so some overlap pays; many more would let busy
    programs run into their wall-clock timeout.
    """
    if not codes:
        return []
    workers = max(1, min(workers or 2 * (os.cpu_count() or 2), len(codes)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sandbox") as pool:
        return list(pool.map(lambda code: run_python(code, **options), codes))
