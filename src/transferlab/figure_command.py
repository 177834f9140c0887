"""`transferlab figure ...` (registered on the app by `cli`): figures that put studies side by side,
drawn from the tables their reports export (no model is loaded, no study imports another).

    transferlab figure seed001 --probes runs/probes --translation runs/translation --out docs/results/seed001.png
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from transferlab.errors import TransferlabError

figure_app = typer.Typer(help="Figures across studies, drawn from their exported tables.", no_args_is_help=True)


@figure_app.command("seed001")
def seed001(probes: Path = typer.Option(..., "--probes", help="A probe run (after `transferlab probes report`), its "
                                                             "report directory, or its tables/cross_model.csv."),
            translation: Path = typer.Option(..., "--translation", help="A translation run, its tables/ directory, "
                                                                        "or its tables/matrix.csv."),
            out: Path = typer.Option(Path("seed001.png"), "--out", help="The PNG to write (a CSV of the cells goes "
                                                                       "beside it)."),
            task: Optional[str] = typer.Option(None, "--task", help="Draw one task of the translation matrix "
                                                                    "[default: the mean over its tasks].")) -> None:
    """Seed 001's heatmap pair: Probe and LoRA, Model x Trained on, value and 95% CI in each cell."""
    import matplotlib.pyplot as plt

    from transferlab.seed001_figure import draw, probe_cells, read_lora

    if out.suffix.lower() != ".png":
        raise TransferlabError(f"--out {out}: give a .png file name")
    probe, lora = probe_cells(probes), read_lora(translation, task)  # both read before anything is drawn
    plt.close(draw(probe, lora, out))
    Console().print(f"figure: {out}\ncells: {out.with_suffix('.csv')}")
