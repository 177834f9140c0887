"""Run untrusted, model-generated Python in a sandbox built on bubblewrap.

Generated code is executed to score it (HumanEval's unit tests, and so GRPO's reward), so
it must not reach the network, read or change files outside, outlive its run, hold more
memory or processes than it is given, fill a disk, or fake its own verdict.

Threat model: the program is hostile and knows how this sandbox works; it may use ctypes,
raw syscalls, subprocesses and anything installed under /usr. What holds:

- isolation (`bwrap.py`): bubblewrap gives each program new pid, mount, network, ipc,
  uts and user namespaces; a read-only view of /usr and the Python installation and
  nothing else of the host (no /home, /root, /etc, /sys, host /tmp or /dev/shm); size-
  limited private tmpfs mounts on /tmp and /dev/shm as the only writable places; as root,
  a throwaway uid without capabilities. The kernel kills the whole pid namespace when its
  first process ends, so no daemon outlives a run;
- limits (`launch.py`, `cgroups.py`): one cgroup per run bounds the memory and process
  count of the whole tree where this machine lets us create one (else RLIMIT_AS and
  RLIMIT_NPROC per process, and the record says so); CPU seconds, file size, open files;
  a wall-clock timeout;
- verdicts (`judge.py`): tests run in a second sandbox, apart from the candidate, and see
  its answers only as plain data, so the verdict cannot be forged from inside.

Where bubblewrap is missing or does not work, running generated code is refused with a
one-line error, unless TRANSFERLAB_ALLOW_UNSAFE_CODE=1 (or `allow_unsafe=True`) accepts
running it with limits and a timeout only. Every result lists the protections it ran under.
`python -m transferlab.sandbox` reports what this machine gives.

Not defended: kernel exploits (no seccomp filter), and a run's use of the CPU it is
allowed; timing side channels.
"""

from transferlab.sandbox.bwrap import ALLOW_UNSAFE_ENV, Isolation, SandboxUnavailable, isolation, require
from transferlab.sandbox.judge import CheckResult, run_checked, run_checked_many, run_many
from transferlab.sandbox.launch import Limits, SandboxResult, Status, run_python

__all__ = [
    "ALLOW_UNSAFE_ENV", "CheckResult", "Isolation", "Limits", "SandboxResult", "SandboxUnavailable", "Status",
    "isolation", "require", "run_checked", "run_checked_many", "run_many", "run_python",
]
