"""The bad-input corpus (`fuzz_corpus.py`): every malformed spec, task YAML, import and command on
a corrupted or mistyped run directory is refused with one line on stderr, a non-zero exit, no
traceback, within seconds, and with nothing written.

The corpus runs through the command line's own `main()` in this process (one CLI start costs
1-2 s, the corpus has some 200 cases); a sample runs as real `transferlab` subprocesses to show
the entry point behaves the same. The counts (tried / clear errors / tracebacks / hangs /
silently accepted) are printed at the end of the module, and by

    .venv/bin/python tests/test_fuzz_inputs.py        # the table of outcomes, one line per case
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
import traceback
from collections import Counter
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from fuzz_corpus import Case, controls, corpus  # noqa: E402

CASES = corpus()
LIMIT_S = 10.0  # in-process: a case that takes longer counts as a hang (a clear error takes well under 1 s)
SUBPROCESS_LIMIT_S = 60.0  # a fresh interpreter's start (torch, pandas) on a busy machine included
OUTCOMES: Counter[str] = Counter()


class Hang(BaseException):
    """Raised by the alarm: a BaseException, so no `except Exception` in the code under test eats it."""


@dataclass
class Outcome:
    code: int | None
    stderr: str
    stdout: str
    seconds: float
    crash: str = ""  # the traceback of an exception that escaped main()
    hung: bool = False
    written: tuple[str, ...] = ()

    @property
    def lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]

    @property
    def verdict(self) -> str:
        if self.hung:
            return "hang"
        if self.crash or "Traceback" in self.stderr:
            return "traceback"
        if self.code == 0:
            return "silently accepted"
        if len(self.lines) != 1 or self.written:
            return "unclear"  # refused, but not in one line, or it wrote something first
        return "clear error"


def materialise(case: Case, root: Path) -> tuple[str, ...]:
    """Write the case's files into `root`; its command line with `{d}` filled in."""
    for name, content in case.files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        data = content if isinstance(content, bytes) else content.replace("{d}", str(root)).encode()
        path.write_bytes(data)
    if case.setup:
        case.setup(root)
    return tuple(a.replace("{d}", str(root)) for a in case.args)


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) if p.is_file() else (-1, 0)
            for p in root.rglob("*")}


def changes(before: dict[str, tuple[int, int]], root: Path) -> tuple[str, ...]:
    after = snapshot(root)
    return tuple(sorted(p for p in set(before) | set(after) if before.get(p) != after.get(p)))


def run_in_process(args: tuple[str, ...], limit: float = LIMIT_S) -> Outcome:
    """`transferlab ARGS` through `cli.main()`, with stdout and stderr captured and an alarm."""
    from transferlab import cli

    out, err = io.StringIO(), io.StringIO()
    saved_argv, code, crash, hung = sys.argv, None, "", False

    def alarm(signum, frame):
        raise Hang()

    previous = signal.signal(signal.SIGALRM, alarm)
    sys.argv = ["transferlab", *args]
    start = time.perf_counter()
    try:
        signal.setitimer(signal.ITIMER_REAL, limit)
        with redirect_stdout(out), redirect_stderr(err):
            cli.main()
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    except Hang:
        hung = True
    except BaseException:  # what a user would see as a traceback
        crash = traceback.format_exc()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        sys.argv = saved_argv
    return Outcome(code, err.getvalue(), out.getvalue(), time.perf_counter() - start, crash, hung)


def run_subprocess(args: tuple[str, ...], cwd: Path) -> Outcome:
    script = Path(sys.executable).with_name("transferlab")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "transferlab"]
    start = time.perf_counter()
    try:
        proc = subprocess.run([*command, *args], capture_output=True, text=True, cwd=cwd, timeout=SUBPROCESS_LIMIT_S,
                              env={**os.environ, "COLUMNS": "80"})
    except subprocess.TimeoutExpired as timeout:
        return Outcome(None, str(timeout.stderr or ""), str(timeout.stdout or ""), SUBPROCESS_LIMIT_S, hung=True)
    return Outcome(proc.returncode, proc.stderr, proc.stdout, time.perf_counter() - start)


def attempt(case: Case, root: Path, in_process: bool = True, limit: float = LIMIT_S) -> Outcome:
    args = materialise(case, root)
    before = snapshot(root)
    cwd = os.getcwd()
    os.chdir(root)  # anything written relative to the working directory lands where it is seen
    try:
        outcome = run_in_process(args, limit) if in_process else run_subprocess(args, root)
    finally:
        os.chdir(cwd)
    outcome.written = changes(before, root)
    return outcome


def explain(case: Case, outcome: Outcome) -> str:
    return (f"{case.id}: {outcome.verdict} (exit {outcome.code}, {outcome.seconds:.1f} s, "
            f"wrote {list(outcome.written)})\nstderr:\n{outcome.stderr[-3000:]}\n{outcome.crash[-3000:]}")


@pytest.fixture(scope="module", autouse=True)
def tally(request):
    """Print the counts once the module's cases have run."""
    yield
    if OUTCOMES:
        plugins = request.config.pluginmanager
        reporter, capture = plugins.get_plugin("terminalreporter"), plugins.get_plugin("capturemanager")
        line = (f"bad inputs: {sum(OUTCOMES.values())} tried, {OUTCOMES['clear error']} clear errors, "
                f"{OUTCOMES['traceback']} tracebacks, {OUTCOMES['hang']} hangs, "
                f"{OUTCOMES['silently accepted']} silently accepted, {OUTCOMES['unclear']} unclear")
        if reporter and capture:
            with capture.global_and_fixture_disabled():
                reporter.write_line("")
                reporter.write_line(line)


def test_the_corpus_is_large_enough():
    kinds = Counter(c.kind for c in CASES)
    assert len(CASES) >= 100 and len({c.id for c in CASES}) == len(CASES)
    assert kinds["spec-transfer"] + kinds["spec-probes"] + kinds["spec-translation"] >= 36
    assert min(kinds["spec-probes"], kinds["spec-translation"]) >= 10
    assert kinds["task"] >= 30 and kinds["import"] >= 15 and kinds["store"] >= 17


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_clear_line(case, tmp_path):
    outcome = attempt(case, tmp_path)
    OUTCOMES[outcome.verdict] += 1
    assert outcome.verdict == "clear error", explain(case, outcome)
    assert outcome.lines[0].startswith("error: "), explain(case, outcome)
    if case.kind.startswith("spec-"):  # refused by the spec's reader, naming the file (and line), not by a later step
        assert "spec.yaml" in outcome.lines[0] or "nowhere.yaml" in outcome.lines[0] or "/specs" in outcome.lines[0], \
            explain(case, outcome)


@pytest.mark.parametrize("case", controls(), ids=[c.id for c in controls()])
def test_the_well_formed_twin_is_accepted(case, tmp_path):
    # A valid spec's dry run plans real tasks (seconds on a loaded machine): only refusals must be fast.
    outcome = attempt(case, tmp_path, limit=SUBPROCESS_LIMIT_S)
    assert outcome.code == 0 and not outcome.crash, explain(case, outcome)


def test_the_translation_twin_parses(tmp_path):
    """The translation family's base spec (its dry run needs the Gemma package, which may be missing)."""
    from fuzz_corpus import TRANSLATION

    from transferlab.translation.spec import parse_translation_spec

    spec = parse_translation_spec(TRANSLATION.replace("{d}", str(tmp_path)), str(tmp_path / "spec.yaml"))
    assert spec.model_y == "gemma3-270m" and len(spec.tasks) == 4


# One case of each family as a real subprocess: the installed entry point prints the same one line.
SAMPLE = ["spec-transfer-billion-laughs", "spec-transfer-rank-float", "spec-transfer-device-quantum",
          "spec-transfer-target-modules-comma-string", "spec-probes-report-string", "spec-translation-anchor-rank-float",
          "task-billion-laughs", "task-template-big-string", "task-template-nested-range", "task-template-undefined",
          "import-csv-nan", "import-parquet-garbage", "import-lm-eval-deep-json", "store-garbage-results-show",
          "store-wrong-schema-report", "wrong-dir-probes-report", "wrong-dir-results-show"]


@pytest.mark.parametrize("name", SAMPLE)
def test_the_real_entry_point_agrees(name, tmp_path):
    case = next(c for c in CASES if c.id == name)
    outcome = attempt(case, tmp_path, in_process=False)
    assert outcome.verdict == "clear error", explain(case, outcome)
    assert outcome.seconds < SUBPROCESS_LIMIT_S


if __name__ == "__main__":  # the whole table, for a closing note
    import tempfile

    for case in [*controls(), *CASES]:
        with tempfile.TemporaryDirectory() as d:
            result = attempt(case, Path(d))
        OUTCOMES[result.verdict] += 1
        first = (result.lines or [result.crash.strip().splitlines()[-1] if result.crash else ""])[0]
        print(f"{result.verdict:18s} {result.seconds:5.2f}s {case.id}: {first[:200]}", flush=True)
    print(dict(OUTCOMES))


class _EveryJobFails:
    """An executor whose jobs all fail, recorded as the real one records them."""

    def __init__(self, *args, **kwargs):
        pass

    def run(self, jobs, runtime):
        from transferlab.engine.execute import RunReport

        report = RunReport()
        for job in jobs:
            runtime.store.record_job(job.key, job.kind, "failed", "RuntimeError: out of luck")
            report.failed[job.key] = "RuntimeError: out of luck"
        return report


def test_a_run_whose_jobs_failed_exits_1_and_names_results_jobs(tmp_path, monkeypatch):
    from transferlab.transfer import study

    monkeypatch.setattr(study, "LocalExecutor", _EveryJobFails)
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"models: [smollm2-135m]\ntasks: [cities]\nsimilarity: []\noutput: {tmp_path / 'run'}\n")
    outcome = run_in_process(("run", str(spec), "--no-report"))
    assert outcome.code == 1 and not outcome.crash, outcome.stderr + outcome.crash
    last = outcome.lines[-1]
    assert last.startswith("error: 3 of 3 jobs failed") and f"transferlab results jobs {tmp_path / 'run'}" in last
    jobs = run_in_process(("results", "jobs", str(tmp_path / "run")))  # what finished (here: the records) is kept
    assert jobs.code == 0 and jobs.stdout.count("failed") == 3
    assert json.loads((tmp_path / "run" / "spec.json").read_text())["name"] == "spec"
