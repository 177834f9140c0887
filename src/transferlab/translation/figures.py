"""The translation report's five figures, one PNG each, drawn from the run's tables.

Kept apart from `report` (which writes the Markdown and calls these in order) because
they are matplotlib only: each takes frames `report` already read, writes one PNG and
returns its path. Experiment 2's curves and experiment 3's heatmap plot the rows
`points` selects, the same rows the Markdown tables list.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from transferlab.translation.points import domain_cells, scaling_points
from transferlab.translation.translators import LEARNED


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main_figure(main: pd.DataFrame, tasks: pd.DataFrame, methods: list[str], path: Path) -> Path:
    import matplotlib.pyplot as plt
    import numpy as np

    cols = ["base_Y", *methods, "oracle"]
    grid = np.full((len(tasks), len(cols)), np.nan)
    for i, t in enumerate(tasks.itertuples()):
        grid[i, 0] = getattr(t, "base_y", np.nan)
        grid[i, -1] = getattr(t, "oracle", np.nan)
        cells = main[main.held_out == t.task].set_index("method")
        for j, m in enumerate(methods, start=1):
            if m in cells.index and "score" in cells:
                grid[i, j] = cells.loc[m, "score"]
    gain = grid - grid[:, :1]
    fig, ax = plt.subplots(figsize=(1.0 + 0.9 * len(cols), 0.8 + 0.36 * len(tasks)))
    bound = np.nanmax(np.abs(gain)) if np.isfinite(gain).any() else 1
    im = ax.imshow(gain, cmap="RdBu", vmin=-bound, vmax=bound, aspect="auto")
    for i in range(grid.shape[0]):
        for j in range(grid.shape[1]):
            if np.isfinite(grid[i, j]):
                ax.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center", fontsize=7)
    ax.set_xticks(range(len(cols)), [c.replace("_", "\n", 1) for c in cols], fontsize=7)
    ax.set_yticks(range(len(tasks)), [f"{t.task} ({t.domain})" for t in tasks.itertuples()], fontsize=7)
    fig.colorbar(im, ax=ax, label="score − base_Y", shrink=0.8)
    ax.set_title("Held-out task scores on model Y (colour: gain over base_Y)", fontsize=9)
    return _save(fig, path)


def summary_figure(main: pd.DataFrame, methods: list[str], path: Path) -> Path:
    import matplotlib.pyplot as plt

    mean = main[main.method == "mean"].set_index("held_out")
    fig, ax = plt.subplots(figsize=(6.5, 3.0))
    for i, m in enumerate(methods):
        cells = main[(main.method == m) & main.held_out.isin(mean.index)]
        if "score" not in cells:
            continue
        diff = (cells.set_index("held_out").score - mean.score).dropna()
        ax.scatter([i] * len(diff), diff, s=12, alpha=0.6, color="C0" if m in LEARNED else "C7")
        if len(diff):
            ax.plot([i - 0.3, i + 0.3], [diff.mean()] * 2, color="C3")
    ax.axhline(0, color="black", lw=0.6)
    ax.set_xticks(range(len(methods)), [m.replace("_", "\n", 1) for m in methods], fontsize=7)
    ax.set_ylabel("score − mean translator")
    ax.set_title("Per held-out task (dots) and average (red)", fontsize=9)
    return _save(fig, path)


def scaling_figure(trans: pd.DataFrame, path: Path) -> Path:
    import matplotlib.pyplot as plt

    counts, ks = scaling_points(trans)
    fig, axes = plt.subplots(1, 2, figsize=(8.5, 3.2))
    for ax, frame, x, title in ((axes[0], counts, "n_anchors", "anchor count"), (axes[1], ks, "k", "top-k")):
        if not len(frame):
            continue
        frame = frame.copy()
        frame[x] = pd.to_numeric(frame[x], errors="coerce")
        grouped = frame.groupby(x)
        if "gain" in frame:
            g = grouped.gain.mean()
            ax.plot(g.index, g.values, "o-", color="C0", label="gain over base_Y")
        c = grouped.centered_cosine.mean() if "centered_cosine" in frame else None
        ax2 = ax.twinx()
        if c is not None:
            ax2.plot(c.index, c.values, "s--", color="C1", label="centred cosine to oracle")
        ax.set_xlabel(title)
        ax.set_ylabel("gain over base_Y", color="C0")
        ax2.set_ylabel("centred update cosine", color="C1")
        ax.axhline(0, color="black", lw=0.5)
        evaluated = frame.dropna(subset=["score"]).held_out.nunique() if "score" in frame else 0
        ax.set_title(f"{frame.method.iloc[0]}: gain over {evaluated} evaluated, cosine over "
                     f"{frame.held_out.nunique()} held-out tasks", fontsize=8)
    return _save(fig, path)


def domain_figure(cross: pd.DataFrame, main: pd.DataFrame, path: Path) -> Path:
    import matplotlib.pyplot as plt
    import numpy as np

    frame = domain_cells(cross, main)
    domains = list(dict.fromkeys(frame.domain))
    pools = [p for p in dict.fromkeys(frame.pool) if p != "all"] + ["all"]
    fig, axes = plt.subplots(1, 2, figsize=(4.0 + 1.4 * len(pools), 0.9 + 0.5 * len(domains)))
    for ax, col, title, cmap in ((axes[0], "gain", "gain over base_Y", "RdBu"),
                                 (axes[1], "centered_cosine", "centred update cosine", "PuOr")):
        grid = np.full((len(domains), len(pools)), np.nan)
        if col in frame:
            for i, d in enumerate(domains):
                for j, p in enumerate(pools):
                    values = frame[(frame.domain == d) & (frame.pool == p)][col].dropna()
                    if len(values):
                        grid[i, j] = values.mean()
        bound = np.nanmax(np.abs(grid)) if np.isfinite(grid).any() else 1
        im = ax.imshow(grid, cmap=cmap, vmin=-bound, vmax=bound, aspect="auto")
        for i in range(len(domains)):
            for j in range(len(pools)):
                ax.text(j, i, "—" if np.isnan(grid[i, j]) else f"{grid[i, j]:.3f}", ha="center", va="center",
                        fontsize=7)
        ax.set_xticks(range(len(pools)), pools, fontsize=7)
        ax.set_yticks(range(len(domains)), domains, fontsize=7)
        ax.set_xlabel("anchor pool")
        ax.set_ylabel("held-out domain")
        ax.set_title(f"{frame.method.iloc[0]}: {title}", fontsize=8)
        fig.colorbar(im, ax=ax, shrink=0.8)
    return _save(fig, path)


def matrix_figure(matrix: pd.DataFrame, path: Path) -> Path:
    import matplotlib.pyplot as plt
    import numpy as np

    models = list(dict.fromkeys(matrix.model))
    cols = ["-", *models]
    grid = np.full((len(models), len(cols)), np.nan)
    for i, m in enumerate(models):
        for j, c in enumerate(cols):
            values = matrix[(matrix.model == m) & (matrix.trained_on_model == c)].score
            if len(values):
                grid[i, j] = values.mean()
    fig, ax = plt.subplots(figsize=(5.2, 2.6))
    im = ax.imshow(grid, cmap="magma", aspect="auto")
    for i in range(grid.shape[0]):
        for j in range(grid.shape[1]):
            if np.isfinite(grid[i, j]):
                ax.text(j, i, f"{grid[i, j]:.3f}", ha="center", va="center", fontsize=8, color="cyan")
    ax.set_xticks(range(len(cols)), ["base", *models], fontsize=7)
    ax.set_yticks(range(len(models)), models, fontsize=7)
    ax.set_xlabel("adapter trained on (off-diagonal: translated)")
    ax.set_ylabel("model")
    ax.set_title(f"Mean over {matrix.task.nunique()} tasks", fontsize=9)
    fig.colorbar(im, ax=ax, shrink=0.8)
    return _save(fig, path)
