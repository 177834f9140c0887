"""The store heals and says so: corrupted databases, orphan temporaries, corrupted and stale
artifacts, full disks, and a results table rebuilt from the artifacts alone."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from rich.console import Console

from transferlab.engine import integrity
from transferlab.engine.execute import LocalExecutor
from transferlab.engine.jobs import Job, Runtime, register_job_kind
from transferlab.engine.store import Store, write_table
from transferlab.errors import TransferlabError

CLI = [str(Path(sys.executable).parent / "transferlab")]

# Two toy job kinds: `make` writes the text in its params (or MAKE_TEXT, to make a rebuilt artifact
# differ), `use` copies its input. RUNS counts how often each ran.
RUNS: list[str] = []
MAKE_TEXT: dict[str, str] = {}


def run_make(job: Job, rt: Runtime, tick) -> dict:
    RUNS.append(job.key)
    with rt.store.writing("made", job.key) as out:
        (out / "value.txt").write_text(MAKE_TEXT.get(job.key, job.params["text"]))
    return {}


def run_use(job: Job, rt: Runtime, tick) -> dict:
    RUNS.append(job.key)
    text = (rt.store.path("made", job.deps[0]) / "value.txt").read_text()
    with rt.store.writing("used", job.key) as out:
        (out / "value.txt").write_text(text.upper())
    return {}


register_job_kind("toy-make", "made", f"{__name__}:run_make")
register_job_kind("toy-use", "used", f"{__name__}:run_use")


def _jobs() -> list[Job]:
    return [Job("toy-make", "aaa111", {"text": "hello"}, label="make"),
            Job("toy-use", "bbb222", {}, deps=("aaa111",), label="use")]


def _run(store: Store) -> str:
    console = Console(record=True, width=200)
    LocalExecutor(console, quiet=True).run(_jobs(), Runtime(store))
    return console.export_text()


def test_a_corrupted_artifact_is_reported_and_only_a_changed_rebuild_reruns_dependants(tmp_path):
    store = Store(tmp_path)
    RUNS.clear()
    _run(store)
    assert RUNS == ["aaa111", "bbb222"]

    (store.path("made", "aaa111") / "value.txt").write_text("garbage")  # bit rot
    RUNS.clear()
    said = _run(Store(tmp_path))
    assert "made artifact aaa111 was corrupted" in said
    assert RUNS == ["aaa111"], "rebuilt identically: its dependant is still valid and is not redone"

    (store.path("made", "aaa111") / "value.txt").write_text("garbage")
    MAKE_TEXT["aaa111"] = "changed"
    RUNS.clear()
    try:
        said = _run(Store(tmp_path))
    finally:
        MAKE_TEXT.clear()
    assert RUNS == ["aaa111", "bbb222"] and "use is stale" in said
    assert (store.path("used", "bbb222") / "value.txt").read_text() == "CHANGED"


def test_orphan_temporaries_are_removed_and_live_ones_kept(tmp_path):
    store = Store(tmp_path)
    kind = store.artifacts / "evaluation"
    kind.mkdir(parents=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = socket.gethostname()
    killed = kind / f".abc123.{host}-{dead.pid}.0f0f0f0f.tmp"
    legacy = kind / ".def456.1a2b3c4d.tmp"  # an older version's name: no writer, no claim
    live = kind / f".fed789.{host}-{os.getpid()}.5e5e5e5e.tmp"
    claimed = kind / ".cba987.9d9d9d9d.tmp"
    for path in (killed, legacy, live, claimed):
        path.mkdir()
    (store.artifacts / "claims").mkdir()
    (store.artifacts / "claims" / "cba987").write_text(json.dumps({"host": host, "pid": os.getpid()}))
    removed = integrity.clean_orphans(store)
    assert sorted(removed) == sorted([killed, legacy])
    assert live.exists() and claimed.exists()


def test_a_corrupted_database_is_one_line_naming_the_file_and_the_fix(tmp_path):
    Store(tmp_path)
    (tmp_path / "results.sqlite").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(TransferlabError, match="results.sqlite is corrupted.*results rebuild"):
        Store(tmp_path)
    for command in (["results", "show"], ["results", "jobs"], ["report"]):
        proc = subprocess.run([*CLI, *command, str(tmp_path)], capture_output=True, text=True, timeout=120)
        assert proc.returncode != 0 and "Traceback" not in proc.stderr + proc.stdout, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and "results rebuild" in proc.stderr, proc.stderr


def test_read_only_commands_never_create_a_run(tmp_path):
    missing = tmp_path / "typo"
    for command in (["results", "show"], ["results", "jobs"], ["results", "export"], ["report"]):
        extra = [str(tmp_path / "out.csv")] if command[-1] == "export" else []
        proc = subprocess.run([*CLI, *command, str(missing), *extra], capture_output=True, text=True, timeout=120)
        assert proc.returncode != 0 and "holds no results.sqlite" in proc.stderr
    assert not missing.exists()


def test_a_failed_export_leaves_no_temporary_file(tmp_path, monkeypatch):
    def full_disk(self, path, **kwargs):
        Path(path).write_text("half a tab")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_csv", full_disk)
    with pytest.raises(TransferlabError, match="No space left"):
        write_table(pd.DataFrame({"a": [1]}), tmp_path / "out.csv")
    assert list(tmp_path.iterdir()) == []


SPEC = """\
name: rebuild-me
models: [smollm2-135m]
tasks: [larger_than, cities]
sources: [larger_than]
learners:
  - {name: lora, type: lora, rank: 4, steps: 2, batch_size: 4, learning_rate: 1.0e-3}
budgets: {train_examples: 8, eval_examples: 12}
bootstrap: 100
similarity: []
output: run
"""


@pytest.mark.integration
def test_the_results_table_is_rebuilt_identically_from_the_artifacts(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def cli(*args: str) -> subprocess.CompletedProcess:
        proc = subprocess.run([*CLI, *args], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)
        assert proc.returncode == 0, proc.stderr[-2000:]
        return proc

    cli("run", str(spec), "--no-report")
    cli("results", "export", "run", "before.csv")
    (tmp_path / "run" / "results.sqlite").write_bytes(b"\0" * 4096)  # the disk ate it
    rebuilt = cli("results", "rebuild", "run")
    assert "moved the old table to" in rebuilt.stderr and "rebuilt from 5 finished jobs" in rebuilt.stderr
    assert list((tmp_path / "run").glob("results.sqlite.broken-*")), "the damaged file is kept, never deleted"
    cli("results", "export", "run", "after.csv")
    before, after = (tmp_path / "before.csv").read_bytes(), (tmp_path / "after.csv").read_bytes()
    assert before.count(b"\n") > 20 and before == after
