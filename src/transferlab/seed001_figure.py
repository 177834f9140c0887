"""Seed 001's figure: a "Probe" and a "LoRA" heatmap side by side, Model (y) x Trained on (x).

    transferlab figure seed001 --probes runs/probes --translation runs/translation --out docs/results/seed001.png

Drawn from files only, so no study imports another: the Probe panel from the probe report's
`tables/cross_model.csv` (`probes.tables.cross_model_cells`: a probe trained on one model's
activations, carried to the other's by a ridge map), the LoRA panel from the translation run's
`tables/matrix.csv` (diagonal: an adapter trained on that model; off the diagonal: one trained
on the other model and translated). Both panels share the axis order; each has its own colour
bar, as the seed draws them. Every cell shows its value and 95% CI; a CSV of the cells drawn
is written beside the PNG.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd

from transferlab.errors import TransferlabError

CELL_COLUMNS = ["model", "trained_on", "value", "ci_low", "ci_high", "n", "note"]
PROBE_FILE, LORA_FILE = "cross_model.csv", "matrix.csv"
PANELS = (("probe", "Probe"), ("lora", "LoRA"))


def _find(source: Path, name: str, places: tuple[str, ...], how: str) -> Path:
    if source.is_file():
        return source
    if not source.is_dir():
        raise TransferlabError(f"{source} does not exist: give {how}")
    for place in places:
        if (source / place / name).is_file():
            return source / place / name
    hint = (f"; it holds results.sqlite: draw its report first (`transferlab probes report {source}`), which writes "
            f"report/tables/{name}" if name == PROBE_FILE and (source / "results.sqlite").exists() else "")
    raise TransferlabError(f"{source} holds no {name} (looked in {', '.join(str(source / p / name) for p in places)})"
                           f"{hint}: give {how}")


def _read(path: Path, required: set[str], what: str) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError) as err:
        raise TransferlabError(f"cannot read {path} ({err}): give {what}") from None
    missing = sorted(required - set(frame.columns))
    if missing or frame.empty:
        raise TransferlabError(f"{path} is not {what} (it {'lacks ' + ', '.join(missing) if missing else 'is empty'})")
    return frame


def probe_cells(source: Path) -> pd.DataFrame:
    """The Probe panel's cells from a probe run, its report directory, or its cross_model.csv."""
    path = _find(Path(source), PROBE_FILE, ("report/tables", "tables", "."), "a probe run with cross-model probes "
                 "(`cross_model:` in its spec) or its report/tables/cross_model.csv")
    frame = _read(path, {"model", "trained_on_model", "value", "ci_low", "ci_high"}, "a probe report's cross_model.csv")
    note = frame.get("datasets", pd.Series("", index=frame.index)).astype(str).radd("mean over ") + " datasets"
    return frame.assign(trained_on=frame["trained_on_model"], n=frame.get("n"), note=note)[CELL_COLUMNS]


def lora_cells(matrix: pd.DataFrame, task: str | None = None) -> pd.DataFrame:
    """The LoRA panel's cells from a translation study's matrix table (its base rows left out).

    With several tasks a cell is their mean, its CI each side's half-widths in quadrature over
    the tasks (independent example sets); `task` keeps one task instead."""
    frame = matrix[matrix["trained_on_model"].astype(str) != "-"]
    if task is not None:
        tasks = sorted(set(frame["task"]))
        if task not in tasks:
            raise TransferlabError(f"the translation matrix has no task {task!r}: it has {', '.join(tasks)}")
        frame = frame[frame["task"] == task]
    rows = []
    for (model, source), cell in frame.groupby(["model", "trained_on_model"], sort=True):
        k = len(cell)
        value = float(cell["score"].mean())
        below = ((cell["score"] - cell["score_lo"]).clip(lower=0) ** 2).sum(min_count=k) ** 0.5 / k
        above = ((cell["score_hi"] - cell["score"]).clip(lower=0) ** 2).sum(min_count=k) ** 0.5 / k
        tasks = ", ".join(sorted(set(cell["task"])))
        note = ("translated " if str(cell["translated"].iloc[0]) == "True" else "") + \
            (f"task {tasks}" if k == 1 else f"mean over {k} tasks ({tasks})")
        rows.append({"model": model, "trained_on": source, "value": value, "ci_low": value - below,
                     "ci_high": value + above, "n": int(cell["n"].sum()), "note": note})
    return pd.DataFrame(rows, columns=CELL_COLUMNS)


def read_lora(source: Path, task: str | None = None) -> pd.DataFrame:
    """The LoRA panel's cells from a translation run, its tables/ directory, or its matrix.csv."""
    path = _find(Path(source), LORA_FILE, ("tables", "."), "a translation run directory or its tables/matrix.csv")
    frame = _read(path, {"task", "model", "trained_on_model", "translated", "score", "score_lo", "score_hi", "n"},
                  "a translation study's tables/matrix.csv")
    return lora_cells(frame, task)


def _cell_text(row: Any) -> str:
    text = f"{row.value:.3f}"
    if not (pd.isna(row.ci_low) or pd.isna(row.ci_high)):
        text += f"\n[{row.ci_low:.2f}, {row.ci_high:.2f}]"
    return text


def draw(probe: pd.DataFrame, lora: pd.DataFrame, path: Path, metric: str = "accuracy") -> Any:
    """Draw both panels into `path` (PNG, atomically) and `path`.csv; returns the figure (the caller closes it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    panels = {"probe": probe, "lora": lora}
    order = sorted(set().union(*({*f["model"], *f["trained_on"]} for f in panels.values())))
    extra = max(0, len(order) - 2)
    fig, axes = plt.subplots(1, 2, figsize=(11 + 2.4 * extra, 5 + 0.8 * extra))
    for ax, (key, title) in zip(axes, PANELS):
        cells = panels[key]
        grid = np.full((len(order), len(order)), np.nan)
        for row in cells.itertuples():
            grid[order.index(row.model), order.index(row.trained_on)] = row.value
        finite = grid[np.isfinite(grid)]
        low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        pad = 0.02 if high - low < 0.04 else 0.0
        image = ax.imshow(grid, cmap="magma", vmin=low - pad, vmax=high + pad)
        by_cell = {(r.model, r.trained_on): r for r in cells.itertuples()}
        for i, model in enumerate(order):
            for j, source in enumerate(order):
                row = by_cell.get((model, source))
                if row is None or pd.isna(row.value):
                    ax.text(j, i, "—", ha="center", va="center", color="gray", fontsize=10)
                    continue
                r, g, b, _ = image.cmap(image.norm(row.value))
                ax.text(j, i, _cell_text(row), ha="center", va="center", fontsize=9,
                        color="black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "white")
        ax.set_xticks(range(len(order)), order, rotation=15, ha="right")
        ax.set_yticks(range(len(order)), order)
        ax.set_xlabel("Trained on")
        ax.set_ylabel("Model")
        ax.set_title(title)
        fig.colorbar(image, ax=ax, shrink=0.8, label=metric)
    fig.suptitle(f"Model × Trained on: {metric}, value [95% CI] per cell")
    fig.text(0.01, 0.015, "Probe: a probe trained on the column's model, carried to the row's by a ridge map between "
                          "residual streams; mean over datasets and algorithms.\nLoRA: an adapter trained on the "
                          "column's model; off the diagonal, translated to the row's model. Colour scales per panel.",
             fontsize=7.5, color="dimgray")
    fig.tight_layout(rect=(0, 0.07, 1, 0.96))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.png")
    try:
        fig.savefig(tmp, dpi=130)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    from transferlab.tidy import write_csv

    both = pd.concat([f.assign(panel=k) for k, f in panels.items()], ignore_index=True)
    write_csv(both[["panel", *CELL_COLUMNS]], path.with_suffix(".csv"))
    return fig
