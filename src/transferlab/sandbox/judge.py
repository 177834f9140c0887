"""Checked runs: the candidate's function runs in one sandbox, the tests in another.

A candidate that shares an interpreter with its tests can make them pass without being
right: print the pass marker, replace `check` through `sys.settrace`, or return an object
whose `__eq__` is always true. So the tests never run where the candidate does:

- the candidate's sandbox holds the candidate program only (prompt and answer, not the
  tests). It runs it, then answers calls of its function, one line per call;
- the judge's sandbox holds the trusted test code only. Its `check(candidate)` gets a
  stand-in whose calls travel over two pipes; each answer is decoded as plain data
  (`prelude.decode`: exact builtin types, fresh objects, bounded size), so the test's own
  comparisons run on values the candidate cannot give behaviour to;
- the verdict is the judge's exit status and last line, read by the harness from a file
  the candidate's sandbox cannot see. The sandboxes share nothing but the two pipes, and
  when run as root each has its own throwaway uid, so neither can signal, trace or read
  the other.

What the candidate controls is only what its function returns (or raises), as it should.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from transferlab.sandbox import prelude
from transferlab.sandbox.bwrap import require
from transferlab.sandbox.launch import Limits, SandboxResult, Status, run_python, sandboxed

_STARTUP_S = 5.0  # room for the judge's own start on a busy machine, beyond the test's deadline
_EXIT_GRACE_S = 0.5  # how long the candidate may take to end once the judge has finished

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class CheckResult:
    """The verdict of a checked run, with both sandboxes' own results.

    status: 'passed' (every test passed), 'failed', 'timeout', 'memory' (the candidate ran
    out), 'error' (the judge could not run the tests).
    """

    status: Status
    reason: str
    calls: int  # how many times the tests called the candidate
    candidate: SandboxResult
    judge: SandboxResult

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    @property
    def protections(self) -> tuple[str, ...]:
        return self.candidate.protections


def _verdict_of(judge: SandboxResult) -> tuple[str, int, str] | None:
    """(outcome, calls, reason) from the judge's last line, None if it wrote none."""
    for line in reversed(judge.stdout.splitlines()):
        if line.startswith(prelude.VERDICT):
            outcome, calls, reason = (line[len(prelude.VERDICT):].split(" ", 2) + ["", ""])[:3]
            return (outcome, int(calls), reason) if calls.isdigit() else None
    return None


def _combine(candidate: SandboxResult, judge: SandboxResult) -> CheckResult:
    verdict = _verdict_of(judge)
    outcome, calls, reason = verdict or ("", 0, "")
    if outcome == "passed" and judge.returncode == 0:
        return CheckResult("passed", "", calls, candidate, judge)
    status: Status
    if candidate.status in ("memory", "error"):
        status, reason = candidate.status, f"{reason} ({' '.join(candidate.stderr.strip().splitlines()[-1:])})"
    elif candidate.status == "timeout" or judge.status == "timeout" or outcome == "timeout":
        status = "timeout"
    elif verdict is None:
        status, reason = "error", "the judge ended without a verdict: " + " ".join(judge.stderr.strip().splitlines()[-1:])
    else:
        status = "failed"
    return CheckResult(status, reason, calls, candidate, judge)


def run_checked(program: str, tests: str, entry_point: str, *, timeout_s: float = 10.0, memory_mb: int = 1024,
                max_procs: int = 16, allow_unsafe: bool | None = None) -> CheckResult:
    """Run `program` in one sandbox and `tests` (which define `check(candidate)`) in another;
    `candidate`, and the name `entry_point` in the tests, call the program's `entry_point`.

    `timeout_s` bounds the tests' run, from the judge's start; `memory_mb` and `max_procs`
    limit the candidate. Raises SandboxUnavailable where no isolation works (unless waived).
    """
    calls_r, calls_w = os.pipe()
    answers_r, answers_w = os.pipe()
    ends = [calls_r, calls_w, answers_r, answers_w]
    candidate_limits = Limits(timeout_s=timeout_s + _STARTUP_S, memory_mb=memory_mb, cpu_s=timeout_s + 1,
                              max_procs=max_procs, max_file_mb=16)
    judge_limits = Limits(timeout_s=timeout_s + _STARTUP_S, memory_mb=max(memory_mb, 512), max_procs=8, max_file_mb=16)
    try:
        with contextlib.ExitStack() as stack:
            candidate = stack.enter_context(sandboxed(
                program, candidate_limits, mode=("serve", entry_point, str(calls_r), str(answers_w)),
                pass_fds=(calls_r, answers_w), allow_unsafe=allow_unsafe))
            judge = stack.enter_context(sandboxed(
                tests, judge_limits, mode=("judge", entry_point, str(calls_w), str(answers_r), str(timeout_s)),
                pass_fds=(calls_w, answers_r), allow_unsafe=allow_unsafe))
            while ends:  # each sandbox holds its own ends now; the judge's EOF ends the candidate
                os.close(ends.pop())
            judge.wait()
            candidate.wait(_EXIT_GRACE_S)
            candidate_result = candidate.result()
            # A candidate still running when the judge is done was stopped by us: not its timeout.
            if candidate.timed_out and judge.returncode is not None and not judge.timed_out:
                candidate_result = SandboxResult("failed", candidate_result.returncode, candidate_result.stdout,
                                                 candidate_result.stderr, candidate_result.duration_s,
                                                 candidate_result.protections)
            return _combine(candidate_result, judge.result())
    except OSError as e:
        failed = SandboxResult("error", None, "", f"could not start the sandbox: {e}", 0.0)
        return CheckResult("error", str(e), 0, failed, failed)
    finally:
        for fd in ends:
            with contextlib.suppress(OSError):
                os.close(fd)


def _pool_map(function: Callable[[T], R], items: Sequence[T], workers: int) -> list[R]:
    """`function` over `items` in a thread pool (threads only wait on sandboxes), in order."""
    if not items:
        return []
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(items))), thread_name_prefix="sandbox") as pool:
        return list(pool.map(function, items))


def run_many(codes: Sequence[str], workers: int | None = None, **options: Any) -> list[SandboxResult]:
    """`run_python` over many programs at once (each in its own sandbox), results in input order.

    `workers` defaults to twice the number of CPUs: a short program spends much of its time
    starting up and being cleaned after, so some overlap pays; many more would let busy
    programs run into their wall-clock timeout.
    """
    if codes:
        require(options.get("allow_unsafe"))  # refuse once, before any work
    return _pool_map(lambda code: run_python(code, **options), codes, workers or 2 * (os.cpu_count() or 2))


def run_checked_many(jobs: Sequence[tuple[str, str, str]], workers: int | None = None,
                     **options: Any) -> list[CheckResult]:
    """`run_checked` over many (program, tests, entry point) jobs at once, results in input order.

    Identical jobs (the same answer to the same problem, common among sampled answers) run
    once and share their result. `workers` defaults to four times the number of CPUs: each
    job is two sandboxes that mostly wait on each other.
    """
    if not jobs:
        return []
    require(options.get("allow_unsafe"))  # refuse once, before any work
    jobs = [tuple(job) for job in jobs]
    unique = list(dict.fromkeys(jobs))
    results = dict(zip(unique, _pool_map(lambda job: run_checked(*job, **options), unique,
                                         workers or 4 * (os.cpu_count() or 2))))
    return [results[job] for job in jobs]
