"""Which isolation this machine gives generated code, and the bubblewrap command that gives it.

bubblewrap (`bwrap`) builds each sandbox: new PID, mount, network, IPC, UTS and user
namespaces; a root that is an empty tmpfs, remounted read-only, holding only read-only
binds of /usr (and its /bin, /lib links) and the Python installation; a fresh /proc for
the PID namespace, a minimal /dev, and private, size-limited tmpfs mounts on /tmp and
/dev/shm as the only writable places; no further user namespaces; the process tree dies
with it (`--die-with-parent`, and the kernel kills a PID namespace with its first process).

Run as root, bwrap sets up the mounts with root's rights and then `setpriv` switches to a
throwaway uid with no capabilities before a second, unprivileged bwrap adds the user
namespace: mapped into one, root would still own root's files, and the kernel never
applies RLIMIT_NPROC to it. A cgroup (`cgroups.py`) puts one memory and process limit on
the whole tree where this process may create one.

Probed once per process by running a real sandbox. Where no working bubblewrap is found,
running generated code is refused (`require`) unless the user accepts the risk with
TRANSFERLAB_ALLOW_UNSAFE_CODE=1 (or `allow_unsafe=True`).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from transferlab.errors import TransferlabError
from transferlab.sandbox import cgroups

ALLOW_UNSAFE_ENV = "TRANSFERLAB_ALLOW_UNSAFE_CODE"
PROGRAM_DIR = "/sandbox"  # where the program file is bound, read-only, inside the sandbox
INSTALL_HINT = "install bubblewrap (`apt-get install bubblewrap`; `make setup` does it when run as root)"
_SYSTEM_LINKS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")  # usually links into /usr
_NAMESPACES = ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
log = logging.getLogger("transferlab.sandbox")


class SandboxUnavailable(TransferlabError):
    """Generated code would run without isolation, and the user has not accepted that."""


@dataclass(frozen=True)
class Isolation:
    """What a sandbox on this machine gets, as probed."""

    bwrap: str | None  # the bwrap binary, None if no working one
    setpriv: str | None  # root only: switches to a throwaway uid inside the sandbox
    userns: bool  # the program runs in its own user namespace, with further ones disabled
    cgroup: cgroups.CgroupParents | None
    python: str  # the base interpreter (a virtual environment's packages stay outside)
    problem: str = ""  # why there is no isolation; "" when there is

    @property
    def isolated(self) -> bool:
        return self.bwrap is not None

    def protections(self) -> tuple[str, ...]:
        """One phrase per protection that holds for each run, for the record."""
        memory = (self.cgroup.describe() if self.cgroup
                  else "memory limit per process only (RLIMIT_AS x RLIMIT_NPROC: no cgroup here)")
        if not self.isolated:
            return (f"UNSAFE: no isolation ({self.problem})", "rlimits per process",
                    "wall-clock timeout, process group killed")
        namespaces = "pid, mount, network, ipc, uts" + (", user (no nested ones)" if self.userns else "")
        return (
            f"bubblewrap: new {namespaces} namespaces",
            "read-only view of /usr and the Python installation only",
            "size-limited private tmpfs /tmp and /dev/shm are the only writable places",
            *(["throwaway uid without capabilities"] if self.setpriv else []),
            memory,
            "rlimits: address space, cpu, file size, processes, open files",
            "wall-clock timeout; the whole pid namespace is killed at the end",
        )


def base_python() -> str:
    """The interpreter beneath any virtual environment: it sees only the standard library
    and what is installed with it, not this project's environment."""
    return os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)


def _python_roots(python: str) -> list[str]:
    """The directories the interpreter needs, outside /usr, without duplicates or nesting."""
    roots = {os.path.realpath(p) for p in (sys.base_prefix, sys.base_exec_prefix, str(Path(python).parents[1]))}
    roots = {r for r in roots if not (r == "/usr" or r.startswith("/usr/"))}
    return sorted(r for r in roots if not any(r != o and r.startswith(o + "/") for o in roots))


def bwrap_command(iso: Isolation, program: Path, disk_mb: int, uid: int | None) -> list[str]:
    """The command prefix (up to the interpreter) that runs `program` in a fresh sandbox.

    The program is bound read-only at /sandbox/main.py; /tmp is the working directory.
    """
    assert iso.bwrap is not None
    command = [iso.bwrap, "--die-with-parent", "--new-session", *_NAMESPACES]
    if iso.userns and not iso.setpriv:
        command += ["--unshare-user", "--disable-userns"]
    command += ["--ro-bind", "/usr", "/usr"]
    for name in _SYSTEM_LINKS:
        path = Path("/") / name
        if path.is_symlink():
            command += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            command += ["--ro-bind", str(path), str(path)]
    made: set[str] = set()
    for root in _python_roots(iso.python):
        for parent in reversed(Path(root).parents[:-1]):  # mode 0755, so the throwaway uid can enter
            if str(parent) not in made:
                made.add(str(parent))
                command += ["--perms", "0755", "--dir", str(parent)]
        command += ["--ro-bind", root, root]
    shm_mb = max(1, min(16, disk_mb))
    command += [
        "--proc", "/proc", "--dev", "/dev",
        "--perms", "1777", "--size", str(disk_mb * 2**20), "--tmpfs", "/tmp",
        "--perms", "1777", "--size", str(shm_mb * 2**20), "--tmpfs", "/dev/shm",
        "--perms", "0755", "--dir", PROGRAM_DIR, "--ro-bind", str(program), f"{PROGRAM_DIR}/main.py",
        "--remount-ro", "/dev", "--remount-ro", "/", "--chdir", "/tmp", "--",
    ]
    if iso.setpriv:
        assert uid is not None
        command += [iso.setpriv, f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--no-new-privs",
                    "--inh-caps=-all", "--bounding-set=-all", "--"]
        if iso.userns:
            command += [iso.bwrap, "--unshare-user", "--disable-userns", "--die-with-parent",
                        "--dev-bind", "/", "/", "--chdir", "/tmp", "--"]
    return command


def _works(command: Sequence[str]) -> str:
    """'' if `command` succeeds, else the last line it wrote to stderr."""
    try:
        done = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError) as e:
        return str(e)
    if done.returncode == 0:
        return ""
    lines = done.stderr.decode(errors="replace").strip().splitlines()
    return lines[-1] if lines else f"exit status {done.returncode}"


def detect() -> Isolation:
    """Probe this machine: find bwrap (and setpriv as root), then run a real sandbox with it."""
    python = base_python()
    root = os.geteuid() == 0
    bwrap, setpriv = shutil.which("bwrap"), shutil.which("setpriv") if root else None
    cgroup = cgroups.probe()
    if bwrap is None:
        return Isolation(None, None, False, cgroup, python, "bubblewrap (bwrap) is not installed")
    if root and setpriv is None:
        return Isolation(None, None, False, cgroup, python, "running as root needs setpriv (util-linux)")
    probe_dir = Path(tempfile.mkdtemp(prefix="transferlab-sandbox-probe-"))
    problem = ""
    try:
        program = probe_dir / "main.py"
        program.write_text("")
        program.chmod(0o644)
        for userns in (True, False):  # no user namespace: a root sandbox still runs, recorded
            iso = Isolation(bwrap, setpriv, userns, cgroup, python)
            problem = _works([*bwrap_command(iso, program, 1, 61_999 if root else None),
                              python, "-I", "-c", "import sys, encodings"])
            if not problem:
                return iso
    finally:
        shutil.rmtree(probe_dir, ignore_errors=True)
    return Isolation(None, None, False, cgroup, python, f"bubblewrap does not work here: {problem}")


_cached: Isolation | None = None
_lock = threading.Lock()
_warned = False


def isolation() -> Isolation:
    """This machine's isolation, probed on first use."""
    global _cached
    with _lock:
        if _cached is None:
            _cached = detect()
        return _cached


def unsafe_allowed(allow_unsafe: bool | None = None) -> bool:
    """The explicit choice if given, else TRANSFERLAB_ALLOW_UNSAFE_CODE (1, true or yes)."""
    if allow_unsafe is not None:
        return allow_unsafe
    return os.environ.get(ALLOW_UNSAFE_ENV, "").strip().lower() in {"1", "true", "yes"}


def require(allow_unsafe: bool | None = None) -> Isolation:
    """The isolation to run generated code with; SandboxUnavailable (one line) if there is
    none and the user has not accepted running it without."""
    global _warned
    iso = isolation()
    if iso.isolated:
        return iso
    if not unsafe_allowed(allow_unsafe):
        raise SandboxUnavailable(
            f"refusing to run generated code without isolation: {iso.problem}; {INSTALL_HINT}, "
            f"or set {ALLOW_UNSAFE_ENV}=1 to run it unisolated at your own risk")
    if not _warned:
        _warned = True
        log.warning("running generated code WITHOUT isolation (%s), as %s allows", iso.problem, ALLOW_UNSAFE_ENV)
    return iso
