"""Job claims: several `transferlab run` processes can share one artifact store without doing
a job twice (two workers on one spec, or two specs sharing `artifacts:`).

Before it starts a job, a worker creates `<artifacts>/claims/<key>` exclusively, holding its
host and pid; a worker that finds the file leaves the job to its holder and comes back to it
later. The claim is removed when the job ends, done or failed. A claim whose holder is gone
(same host, no such process: the run was killed) is stale and is taken over, so a crash never
blocks a job for good.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path


def take(directory: Path, key: str) -> Path | None:
    """Claim `key` for this process: the claim's path, or None when a live worker holds it."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / key
    for _ in range(2):  # a second try after clearing a stale claim
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            if holder_alive(path):
                return None
            path.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as f:
            json.dump({"host": socket.gethostname(), "pid": os.getpid()}, f)
        return path
    return None


def release(path: Path) -> None:
    path.unlink(missing_ok=True)


def holder_alive(path: Path) -> bool:
    """True unless the claim's process is known to be gone. A claim from another host counts
    as alive (we cannot tell), and so does an unreadable one for a minute (being written)."""
    try:
        holder = json.loads(path.read_text())
    except FileNotFoundError:
        return False
    except ValueError:
        try:
            return time.time() - path.stat().st_mtime < 60
        except FileNotFoundError:
            return False
    if holder.get("host") != socket.gethostname():
        return True
    try:
        os.kill(int(holder["pid"]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
