"""Several real `transferlab run` processes on one spec at once: what the claim tests share."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path


def run_workers(spec: Path, count: int = 2) -> list[tuple[int, int]]:
    """Start `count` `transferlab run SPEC` processes together; (jobs ran, jobs reused) of each."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [str(Path(sys.executable).parent / "transferlab"), "run", str(spec)]
    workers = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
               for _ in range(count)]
    outputs = [w.communicate(timeout=600)[0] for w in workers]
    assert all(w.returncode == 0 for w in workers), "\n".join(outputs)
    found = [re.search(r"ran (\d+) jobs, reused (\d+)", out) for out in outputs]
    assert all(found), textwrap.shorten("\n".join(outputs), 2000)
    return [(int(m.group(1)), int(m.group(2))) for m in found if m]


def assert_each_job_ran_once(counts: list[tuple[int, int]], total: int, claims: Path) -> None:
    assert sum(ran for ran, _ in counts) == total, f"jobs run by each worker: {counts}"
    assert all(ran + reused == total for ran, reused in counts), counts
    assert not list(claims.iterdir()), "every claim is released"
