"""How many threads a probe sweep runs on: torch's and the BLAS / OpenMP libraries', set together.

A sweep is thousands of small batched solves. Left alone, torch and each BLAS library
(numpy's, scipy's OpenBLAS) keep their own pool of one thread per core, and their OpenMP
threads spin while they wait for each other. On a machine whose cores are busy with other
work a parallel region then waits for a descheduled thread at every call: measured here (two
cores, load average above 3), the full seed-003 sweep took 15x longer on two threads than on
one. So the sweep asks for no more threads than there are idle cores (cores minus the
one-minute load average, at least one, at most what torch is set to), and sets that number
for torch and every BLAS / OpenMP pool at once (threadpoolctl), restoring them after. On an
idle machine it uses every core; on a loaded one it runs as fast as on one thread.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch

_depth = [0]  # nested sweeps (evaluate -> score_bank) keep the outer setting


def idle_cores() -> int:
    """Cores this process may use minus the one-minute load average, at least 1."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    try:
        busy = os.getloadavg()[0]
    except OSError:  # no load average on this platform: trust the core count
        busy = 0.0
    return max(1, int(cores - busy + 0.5))


def sweep_threads(requested: int | None = None) -> int:
    """Threads for a sweep: `requested`, else torch's setting capped at the idle cores."""
    if requested is not None:
        return max(1, int(requested))
    return max(1, min(torch.get_num_threads(), idle_cores()))


@contextmanager
def limited(requested: int | None = None) -> Iterator[int]:
    """Run the block with torch and every BLAS / OpenMP pool on `sweep_threads(requested)` threads."""
    if _depth[0]:
        yield torch.get_num_threads()
        return
    from threadpoolctl import threadpool_limits

    n = sweep_threads(requested)
    before = torch.get_num_threads()
    _depth[0] += 1
    try:
        with threadpool_limits(n):
            torch.set_num_threads(n)
            yield n
    finally:
        torch.set_num_threads(before)
        _depth[0] -= 1
