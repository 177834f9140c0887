"""`transferlab translation ...`: flag a table made elsewhere, redraw a run's report.

    transferlab translation flag main_table.md --out flagged.csv   # seed 000's table, or any tidy one
    transferlab translation report runs/translation                  # redraw from the tables alone
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from transferlab.errors import TransferlabError

translation_app = typer.Typer(help="Adapter translation: flag imported tables, redraw reports.", no_args_is_help=True)
out = Console()


@translation_app.command("flag")
def flag(table: Path = typer.Argument(..., help="A .csv, .tsv or Markdown (.md) table: seed 000's main table "
                                                "(Task, base_Y, <methods>, oracle) or tidy (task, method, score, "
                                                "base_y, oracle[, oracle_gain_lo, oracle_gain_hi])."),
         output: Optional[Path] = typer.Option(None, "--out", help="Flagged CSV to write [default: TABLE.flagged.csv]."),
         min_effect: Optional[float] = typer.Option(None, "--min-effect", help="Smallest oracle − base_Y gain a ratio "
                                                    "may divide by, in the metric's units [default: 0.05].")) -> None:
    """gap_recovered with its NA and unstable flags, by the study's own rules, for a table from any tool."""
    from transferlab.translation.gaps import MIN_EFFECT, rules_text
    from transferlab.translation.imported import flag_table

    effect = MIN_EFFECT if min_effect is None else min_effect
    target = output or table.with_name(table.stem + ".flagged.csv")
    frame = flag_table(table, target, effect)
    scored = frame[frame["score"].notna()] if "score" in frame else frame
    na = scored[scored["na_rule"] != ""]
    out.print(f"{len(scored)} cells over {scored['task'].nunique()} tasks: {len(na)} NA "
              f"({', '.join(f'{n} {rule}' for rule, n in na['na_rule'].value_counts().items()) or 'none'}), "
              f"{int(scored['unstable'].sum())} unstable; wrote {target}")
    out.print(rules_text(effect), highlight=False)


@translation_app.command("report")
def report(run_dir: Path = typer.Argument(..., help="A translation run's output directory (holds tables/).")) -> None:
    """Redraw the translation report from the run's tables alone, under the current flagging rules."""
    from transferlab.translation.report import write_report

    if not (run_dir / "tables" / "summary.json").exists():
        raise TransferlabError(f"{run_dir} holds no tables/summary.json: give the output directory of a "
                               "translation run")
    out.print(f"report: {write_report(run_dir)[0]}")
