"""`transferlab probes ...`: run the study, draw its report, list datasets, carry probes across models."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from transferlab.errors import TransferlabError

probes_app = typer.Typer(help="Truth probes: how well do they generalise across datasets and models?",
                         no_args_is_help=True)
out = Console()
err = Console(stderr=True)


def _names(value: Optional[str]) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip()) if value else ()


def _sources(values: Optional[list[str]]) -> dict[str, str]:
    sources = {}
    for v in values or []:
        if "=" not in v:
            raise TransferlabError(f"--source takes NAME=PATH, got {v!r}")
        name, path = v.split("=", 1)
        sources[name.strip()] = path.strip()
    return sources


def _limits(values: Optional[list[str]]) -> dict[str, int]:
    limits = {}
    for v in values or []:
        name, _, number = v.partition("=")
        if not number.isdigit():
            raise TransferlabError(f"--dataset-limit takes NAME=N, got {v!r}")
        limits[name.strip()] = int(number)
    return limits


def _threads(threads: int) -> None:
    if threads > 0:
        import torch

        torch.set_num_threads(threads)


@probes_app.command("run")
def probes_run(
        model: str = typer.Option("smollm2-135m", help="Model reference."),
        datasets: str = typer.Option("cities,neg_cities,cities_conj,cities_disj,larger_than,smaller_than,mmlu",
                                     help="Comma-separated probe datasets (see `probes datasets`)."),
        algorithms: str = typer.Option("dim,lda,lr,lr-g,ccs,pca,pca-g,lat,random", help="Comma-separated algorithms."),
        protocol: str = typer.Option("heldout", help="heldout: sign and threshold from each probe's training rows; "
                                                     "repeng: the original study's conventions (sign and threshold "
                                                     "chosen on the evaluation data, LDA without shrinkage, "
                                                     "scikit-learn's LR tolerance), to compare with its numbers."),
        layers: str = typer.Option("all", help="all, every:K, or comma-separated indices (negative from the end)."),
        position: str = typer.Option("last", help="Token whose residual stream is read: last or mean."),
        limit: int = typer.Option(150, help="Groups per train/validation split (half for hparams); 0 = all."),
        dataset_limit: Optional[list[str]] = typer.Option(None, help="NAME=N: a per-dataset limit (repeatable)."),
        max_chars: int = typer.Option(0, help="Drop groups holding a text longer than this (0 = keep all)."),
        source: Optional[list[str]] = typer.Option(None, help="NAME=PATH: read a hub-format dataset from a local "
                                                              "file or save_to_disk directory (repeatable)."),
        cross_models: str = typer.Option("", "--cross-models", help="Comma-separated models for cross-model probes "
                                                                      "(the study model is added)."),
        cross_datasets: str = typer.Option("", help="Datasets for the cross-model matrix (default: all)."),
        neutral_texts: int = typer.Option(1000, help="Neutral texts fitting the cross-model maps."),
        batch_size: int = typer.Option(16), resamples: int = typer.Option(1000, help="Bootstrap resamples."),
        output: Path = typer.Option(Path("runs/probes"), "--out", help="Run directory (re-running resumes)."),
        device: str = typer.Option("auto"), dtype: str = typer.Option("auto"),
        threads: int = typer.Option(0, help="torch CPU threads (0 = torch's default)."),
        no_report: bool = typer.Option(False, help="Skip drawing the report.")) -> None:
    """Extract activations, fit every probe on every dataset and score it on every other one."""
    from transferlab.probes.spec import CrossModelConfig, ProbeStudyConfig
    from transferlab.probes.study import run_probe_study

    if threads < 0:
        raise TransferlabError(f"--threads must be an integer >= 0, got {threads}")
    _threads(threads)
    cross = None
    if cross_models:
        cross = CrossModelConfig(models=_names(cross_models), datasets=_names(cross_datasets),
                                 neutral_texts=neutral_texts)
    config = ProbeStudyConfig(model=model, datasets=_names(datasets), algorithms=_names(algorithms), protocol=protocol,
                              layers=layers,
                              position=position, limit=limit, limits=_limits(dataset_limit), max_chars=max_chars,
                              batch_size=batch_size, resamples=resamples, sources=_sources(source),
                              cross_model=cross, output=str(output), device=device, dtype=dtype,
                              report=not no_report)
    start = time.perf_counter()
    root = run_probe_study(config, err, command="transferlab probes run " + " ".join(sys.argv[3:]))
    out.print(f"probe study done in {time.perf_counter() - start:.0f} s; results in {root}")


@probes_app.command("report")
def probes_report(run_dir: Path = typer.Argument(..., help="A probe run's directory.")) -> None:
    """Redraw every figure and the summary from the probes table alone (no model is loaded)."""
    from transferlab.probes.report import write_report
    from transferlab.probes.results import has_probe_results

    if not has_probe_results(run_dir):
        raise TransferlabError(f"{run_dir} holds no probe results: give the --out directory of `probes run`")
    files = write_report(run_dir)
    out.print(f"wrote {len(files)} files to {run_dir / 'report'}")


@probes_app.command("datasets")
def probes_datasets(counts: bool = typer.Option(False, "--counts", help="Build the offline ones and count rows."),
                    limit: int = typer.Option(150)) -> None:
    """List the probe datasets: family, where the data comes from, and (offline ones) row counts."""
    from transferlab.probes.datasets import DLK_SOURCES, REPE_SOURCES, dataset_names, load_dataset

    table = Table("dataset", "family", "source", *(["train/hparams/validation rows", "grouped"] if counts else []))
    for name, family in dataset_names().items():
        hub = {**DLK_SOURCES, **REPE_SOURCES}.get(name)
        where = f"hub {hub.hub}" + (f" ({hub.config})" if hub.config else "") + f" {hub.split}" if hub else "offline"
        extra: list[str] = []
        if counts and not hub:
            ds = load_dataset(name, limit or None)
            c = ds.counts()
            extra = [f"{c['train']}/{c['hparams']}/{c['validation']}", "yes" if ds.grouped() else "no"]
        elif counts:
            extra = ["needs --source or the hub cache", ""]
        table.add_row(name, family, where, *extra)
    out.print(table)
    out.print("Also: mmlu-<subject or domain> (any MMLU task). Hub datasets take --source NAME=PATH.")


@probes_app.command("export")
def probes_export(run_dir: Path = typer.Argument(...), path: Path = typer.Argument(..., help=".csv or .parquet")) -> None:
    """Write the tidy probes table to CSV or Parquet."""
    from transferlab.probes.results import ProbeResults
    from transferlab.engine.store import write_table

    rows = write_table(ProbeResults.existing(run_dir).frame(), path)
    out.print(f"wrote {rows} rows to {path}")
