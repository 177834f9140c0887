"""The `transferlab results import` command (registered on `results_app` by `cli`).

    transferlab results import RUN lm-eval-out/ [--trained-on TASK] [--learner NAME] [--seed S]
    transferlab results import RUN main_table.md [--columns base=Base,oracle=Oracle] [--model Y --source-model X]
    transferlab results import RUN other-tool.csv

Kept out of `cli` so the command line module stays small; it only parses the options:
reading, checking and routing are `engine.imports`' (a wide table goes to the translation
study by name, as `engine.studies` names its runners).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console


def results_import(
        run_dir: Path = typer.Argument(..., help="A run's output directory (created if needed)."),
        paths: list[Path] = typer.Argument(..., help="lm-eval results JSON / samples JSONL (or a directory of them), "
                                                     "a wide table, a tidy .csv/.parquet."),
        fmt: Optional[str] = typer.Option(None, "--format", help="lm-eval-json, lm-eval-samples, wide or tidy "
                                                                 "(default: detected from the content)."),
        columns: Optional[list[str]] = typer.Option(None, help="Wide tables: role=Column, e.g. base=Base,oracle=Oracle "
                                                    "(roles task, domain, base, oracle, n, gap_recovered; "
                                                    "drop=Column; any other name renames a method column)."),
        model: Optional[str] = typer.Option(None, help="The model's name in the table (default: lm-eval's "
                                                       "pretrained=...; a wide table's: Y)."),
        adapter: Optional[str] = typer.Option(None, help="lm-eval samples with no results JSON beside them: the "
                                                         "adapter they were made with (omit for the base model)."),
        learner: str = typer.Option("lora", help="lm-eval: the learner name of an adapter's rows."),
        trained_on: Optional[str] = typer.Option(None, help="lm-eval: the task the adapter was trained on "
                                                            "(default: the adapter directory's name)."),
        source_model: Optional[str] = typer.Option(None, help="Wide tables: the model translated from (default: X)."),
        min_effect: Optional[float] = typer.Option(None, help="Wide tables: the smallest oracle − base_Y gain "
                                                              "gap_recovered may divide by (default: 0.05)."),
        seed: int = typer.Option(0, help="The seed the imported rows are filed under.")) -> None:
    """Read results made by other tools into a run; nothing is written unless every row checks."""
    from transferlab.engine.imports import import_any
    from transferlab.engine.lm_eval import Labels

    out, err = Console(), Console(stderr=True)
    done = import_any(run_dir, paths, fmt, columns, Labels(model, adapter, learner, trained_on, seed),
                      source_model=source_model, min_effect=min_effect)
    for note in done.notes:
        err.print(note, markup=False, highlight=False, soft_wrap=True)
    out.print(done.describe(), markup=False, highlight=False, soft_wrap=True)
