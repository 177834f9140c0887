"""The command line: verbs, help, and one-line errors."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from transferlab.cli import app

runner = CliRunner()


@pytest.mark.parametrize("verb", [[], ["models"], ["tasks"], ["results"], ["run"], ["evaluate"], ["train"],
                                  ["demo"], ["report"], ["tasks", "list"], ["models", "pull"]])
def test_every_verb_has_help(verb):
    result = runner.invoke(app, [*verb, "--help"])
    assert result.exit_code == 0 and "Usage" in result.output


def test_tasks_list_and_show():
    listed = runner.invoke(app, ["tasks", "list"])
    assert listed.exit_code == 0
    for name in ("cities", "gsm8k", "gsm8k-fr", "humaneval", "ifeval", "mmlu-math"):
        assert name in listed.output
    shown = runner.invoke(app, ["tasks", "show", "larger_than"])
    assert shown.exit_code == 0 and '"test"' in shown.output


def test_tasks_preview_without_model():
    result = runner.invoke(app, ["tasks", "preview", "cities", "--n", "1"])
    assert result.exit_code == 0 and "true or false" in result.output


def test_unknown_task_is_one_line_with_suggestion():
    proc = subprocess.run([sys.executable, "-m", "transferlab", "tasks", "show", "citis"],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "did you mean 'cities'" in lines[0]


@pytest.mark.integration
def test_dry_run_prints_the_plan(tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text("models: [smollm2-135m]\ntasks: [cities, larger_than]\n"
                    f"output: {tmp_path / 'out'}\n")
    result = runner.invoke(app, ["run", str(spec), "--dry-run"])
    assert result.exit_code == 0 and "2 trainings and 6 evaluations" in result.output


def test_cache_dir_flag_is_global(tmp_path, monkeypatch):
    import os

    monkeypatch.delenv("TRANSFERLAB_CACHE", raising=False)
    result = runner.invoke(app, ["--cache-dir", str(tmp_path), "models", "list"])
    assert result.exit_code == 0 and "converted" in result.output
    assert os.environ["TRANSFERLAB_CACHE"] == str(tmp_path)
    monkeypatch.delenv("TRANSFERLAB_CACHE")


@pytest.mark.parametrize(("options", "message"), [
    (["--executor", "rey"], "--executor must be one of local, ray, got 'rey': did you mean 'ray'?"),
    (["--executor", "local", "--address", "auto"], "--address names a Ray cluster: use it with --executor ray"),
    (["--address", "http://head"], "--address must be auto, HOST:PORT or ray://HOST:PORT, got 'http://head'"),
])
def test_run_refuses_a_bad_executor_before_any_work(tmp_path, options, message):
    spec = tmp_path / "s.yaml"
    spec.write_text(f"models: [smollm2-135m]\ntasks: [cities]\noutput: {tmp_path / 'out'}\n")
    proc = subprocess.run([sys.executable, "-m", "transferlab", "run", str(spec), *options],
                          capture_output=True, text=True)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and message in lines[0], proc.stderr
    assert not (tmp_path / "out").exists()
