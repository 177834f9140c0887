"""The `transferlab run SPEC` command (registered on the app by `cli`): pick the study's runner by
the spec's `study:` field, run it on the executor the spec or `--executor` / `--address` choose
(`engine.executors`: this process, or a Ray cluster), remember the spec for `results rebuild`.

A run whose jobs failed ends with one line naming `transferlab results jobs RUN` and exit
status 1 (`errors.JobsFailed`); everything that finished is kept, so the same command after
the fix does only what is missing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console

from transferlab.errors import JobsFailed


def run(spec: Path = typer.Argument(..., help="Experiment spec (YAML); its `study:` field (transfer, probes, "
                                              "translation) picks the runner."),
        output: Optional[Path] = typer.Option(None, "--out", help="Override the spec's output directory."),
        no_report: bool = typer.Option(False, help="Skip drawing the report."),
        dry_run: bool = typer.Option(False, help="Print the plan and stop."),
        executor: Optional[str] = typer.Option(None, help="Where the jobs run: local (this process) or ray (a Ray "
                                                          "cluster); overrides the spec's `executor:` field."),
        address: Optional[str] = typer.Option(None, help="The Ray cluster to join: auto (one started on this "
                                                         "machine by `ray start`) or HEAD:PORT; implies --executor "
                                                         "ray. Without it Ray starts here for this run.")) -> None:
    """Run an experiment spec; only missing jobs run, so a killed run resumes where it stopped."""
    from transferlab.engine.executors import choose
    from transferlab.engine.rebuild import remember_spec
    from transferlab.engine.studies import runner, study_kind

    kind = study_kind(spec)
    options: dict[str, Any] = {"report": not no_report} if kind == "transfer" else {}
    config = choose(spec, executor, address)  # checked before anything runs, dry run included
    console = Console(stderr=True)
    if config.kind == "ray" and not dry_run:  # local: each study makes its own LocalExecutor
        from transferlab.engine.ray_executor import RayExecutor

        options["executor"] = RayExecutor(config, console)
    try:
        where = runner(kind)(spec, output, dry_run, console, **options)
    except JobsFailed as failed:
        if failed.run_dir is not None:
            remember_spec(Path(str(failed.run_dir)), spec)
        raise
    if where is not None:
        remember_spec(Path(where), spec)
