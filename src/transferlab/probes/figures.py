"""The probe report's figures (r0-r3, v1-v4, x1; r4 in `truthfulqa`): one drawing function per figure, matplotlib only.

Each function takes already-derived tables (`tables.Tables` or a matrix) and a path, draws,
saves and returns the path (or None when the run lacks what the figure needs). Kept apart
from `tables` so no number is computed here, and from `report`, which decides which
figures a run gets and writes the Markdown.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from transferlab.probes.algorithms import BASELINES, DISPLAY
from transferlab.probes.tables import PROBE, THRESHOLD, Tables, errors, from_and_to


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    _plt().close(fig)
    return path


CI_NOTE = "whiskers: 95 % CI; hatched: not above chance (chance-corrected CI reaches 0)"


def _ecdf(values: np.ndarray, grid: np.ndarray) -> np.ndarray:
    values = np.sort(values[~np.isnan(values)])
    return np.searchsorted(values, grid, side="right") / max(1, len(values))


def fig_ecdf_by_layer(t: Tables, path: Path) -> Path:
    """Seed 003's r0 (the random baseline apart, dashed), with a band between the ECDFs of every
    probe's CI bounds: how much of the 80 % share is sure rather than noise."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    real = t.probes[~t.probes.algorithm.isin(BASELINES)]
    grid = np.linspace(0, 1.01, 203)
    ax.fill_between(grid, _ecdf(real.score_high.to_numpy(dtype=float), grid),
                    _ecdf(real.score_low.to_numpy(dtype=float), grid), step="post", color="grey", alpha=0.25, lw=0,
                    label="95 % CI of the scores")
    layers = sorted(real.layer.unique())
    cmap = plt.get_cmap("viridis")
    for i, layer in enumerate(layers):
        values = np.sort(real[real.layer == layer].score.to_numpy())
        ax.step(values, np.arange(1, len(values) + 1) / len(values), where="post",
                color=cmap(i / max(1, len(layers) - 1)), lw=1, label=f"L{layer}" if i % max(1, len(layers) // 6) == 0
                else None)
    for name in sorted(set(t.probes.algorithm) & set(BASELINES)):
        values = t.probes[t.probes.algorithm == name].score.to_numpy()
        ax.step(grid, _ecdf(values, grid), where="post", color="k", ls="--", lw=1,
                label=f"{DISPLAY.get(name, name)} (baseline)")
    ax.axvline(THRESHOLD, color="grey", ls=":", lw=1)
    sure, maybe = (real.score_low > THRESHOLD).mean(), (real.score_high > THRESHOLD).mean()
    ax.set(xlabel="generalisation score (mean recovered accuracy on other datasets)", ylabel="share of probes ≤ x",
           xlim=(0, 1.01))
    ax.set_title(f"{t.model}: probes by layer; above 80 %: {(real.score > THRESHOLD).mean():.0%} "
                 f"(CI low above: {sure:.0%}, CI high above: {maybe:.0%})", fontsize=8)
    ax.legend(fontsize=7, title="layer", title_fontsize=7)
    return _save(fig, path)


def _bars(frame: Any, labels: list[str], title: str, xlabel: str, path: Path, notes: list[str] | None = None) -> Path:
    """Horizontal bars of `score` with CI whiskers; bars whose chance-corrected CI reaches 0 are hatched."""
    plt = _plt()
    values = frame.score.to_numpy(dtype=float)
    fig, ax = plt.subplots(figsize=(6, 0.35 * len(labels) + 1.4))
    y = np.arange(len(labels))
    bars = ax.barh(y, values, color="#4c72b0", xerr=errors(frame, "score", "score_low", "score_high"),
                   error_kw={"elinewidth": 1, "capsize": 2, "ecolor": "k"})
    for bar, chance in zip(bars, frame.at_chance.to_numpy(dtype=bool)):
        if chance:
            bar.set_hatch("///")
            bar.set_edgecolor("white")
    high = frame.score_high.fillna(frame.score).to_numpy(dtype=float)
    for i, v in enumerate(values):
        ax.text(min(max(v, high[i]), 1.0) + 0.02, i, f"{v:.2f}" + (f"  {notes[i]}" if notes else ""), va="center",
                fontsize=7)
    ax.set_yticks(y, labels, fontsize=8)
    ax.invert_yaxis()
    ax.axvline(THRESHOLD, color="grey", ls=":", lw=1)
    ax.set(xlim=(0, 1.4), xlabel=xlabel)
    ax.set_title(f"{title}\n({CI_NOTE})", fontsize=8)
    return _save(fig, path)


def fig_best_by(t: Tables, by: str, path: Path) -> Path:
    best = t.best(by).sort_values("score", ascending=False)
    labels = [DISPLAY.get(v, v) if by == "algorithm" else (f"L{v}" if by == "layer" else v) for v in best[by]]
    notes = [f"{DISPLAY.get(r.algorithm, r.algorithm)}, {r.trained_on}, L{r.layer}" for r in best.itertuples()]
    if by == "layer":
        best = best.sort_values("layer")
        plt = _plt()
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.errorbar(best.layer, best.score, yerr=errors(best, "score", "score_low", "score_high"), marker="o", ms=3,
                    capsize=2, lw=1, color="#4c72b0")
        chance = best[best.at_chance]
        ax.scatter(chance.layer, chance.score, s=40, facecolors="white", edgecolors="#c44e52", zorder=3,
                   label="not above chance (chance-corrected CI reaches 0)")
        ax.axhline(THRESHOLD, color="grey", ls=":", lw=1)
        ax.set(xlabel="layer", ylabel="best probe's generalisation score", ylim=(0, 1.02))
        ax.set_title(f"{t.model}: best probe by layer (chosen on hparams; whiskers: 95 % CI)", fontsize=8)
        if len(chance):
            ax.legend(fontsize=7)
        return _save(fig, path)
    return _bars(best, labels, f"{t.model}: best probe by {by} (chosen on hparams)",
                 "generalisation score (validation)", path, notes)


def fig_algorithms(t: Tables, path: Path) -> Path:
    """Every probe's score per algorithm, each with its CI whisker; hollow: not above chance."""
    plt = _plt()
    algos = [a for a in DISPLAY if a in set(t.probes.algorithm)]
    fig, ax = plt.subplots(figsize=(7, 3.8))
    groups = [t.probes[t.probes.algorithm == a] for a in algos]
    ax.boxplot([g.score.to_numpy() for g in groups], showfliers=False)
    ax.set_xticks(range(1, len(algos) + 1), [DISPLAY[a] for a in algos])
    hollow = 0
    for i, g in enumerate(groups, start=1):
        x = np.full(len(g), i) + np.random.default_rng(i).uniform(-0.15, 0.15, len(g))
        ax.errorbar(x, g.score, yerr=errors(g, "score", "score_low", "score_high"), fmt="none", ecolor="k",
                    alpha=0.15, lw=0.6)
        chance = g.at_chance.to_numpy(dtype=bool)
        hollow += int(chance.sum())
        ax.scatter(x[~chance], g.score[~chance], s=4, alpha=0.5, color="k")
        ax.scatter(x[chance], g.score[chance], s=6, alpha=0.6, facecolors="none", edgecolors="#c44e52", lw=0.5)
    ax.axhline(THRESHOLD, color="grey", ls=":", lw=1)
    ax.set(ylabel="generalisation score", ylim=(0, 1.02))
    ax.set_title(f"{t.model}: every probe (all datasets and layers); whiskers: 95 % CI;\n"
                 f"hollow red: not above chance ({hollow} of {len(t.probes)} probes)", fontsize=8)
    return _save(fig, path)


def fig_datasets(t: Tables, path: Path) -> Path:
    """Per dataset: its best own probe in distribution, and how far its best probe generalises,
    both with 95 % CIs (the second hatched when not above chance)."""
    import pandas as pd

    plt = _plt()
    ind = t.in_distribution()
    own = []
    for d in t.datasets:
        h = t.hp[(t.hp.trained_on == d) & (t.hp.evaluated_on == d) & ~t.hp.algorithm.isin(BASELINES)]
        hit = ind.iloc[:0]
        if len(h):
            top = h.loc[h.value.idxmax()]
            hit = ind[(ind.algorithm == top.algorithm) & (ind.trained_on == d) & (ind.layer == top.layer)]
        own.append(hit.iloc[0][["value", "ci_low", "ci_high"]] if len(hit) else
                   pd.Series({"value": np.nan, "ci_low": np.nan, "ci_high": np.nan}))
    own_frame = pd.DataFrame(own).astype(float).reset_index(drop=True)
    best = t.best("trained_on").set_index("trained_on").reindex(t.datasets).reset_index()
    fig, ax = plt.subplots(figsize=(7, 0.4 * len(t.datasets) + 1.4))
    y = np.arange(len(t.datasets))
    style = {"elinewidth": 1, "capsize": 2, "ecolor": "k"}
    ax.barh(y - 0.2, own_frame.value, 0.4, xerr=errors(own_frame, "value", "ci_low", "ci_high"), error_kw=style,
            label="accuracy of the best probe for it (in distribution)")
    bars = ax.barh(y + 0.2, best.score, 0.4, xerr=errors(best, "score", "score_low", "score_high"), error_kw=style,
                   label="generalisation score of its best probe")
    for bar, chance in zip(bars, best.at_chance.fillna(False).to_numpy(dtype=bool)):
        if chance:
            bar.set_hatch("///")
            bar.set_edgecolor("white")
    ax.set_yticks(y, t.datasets, fontsize=8)
    ax.invert_yaxis()
    ax.set(xlim=(0, 1.02), xlabel="validation")
    ax.set_title(f"{t.model}: datasets ({CI_NOTE})", fontsize=8)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.3), ncol=2)
    return _save(fig, path)


def fig_matrix(matrix: Any, title: str, path: Path, chance: Any = None) -> Path:
    """The recovered-accuracy matrix; cells in `chance` (CI of the chance-corrected score includes 0)
    are hatched, so a colour that only encodes the dataset's difficulty is not read as transfer."""
    plt = _plt()
    n_rows, n_cols = matrix.shape
    fig, ax = plt.subplots(figsize=(max(5.5, 0.6 * n_cols + 2.5), 0.5 * n_rows + 1.8))
    image = ax.imshow(matrix.to_numpy(dtype=float), vmin=0, vmax=1, cmap="magma")
    for i in range(n_rows):
        for j in range(n_cols):
            v = matrix.iat[i, j]
            if v == v:
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7, color="white" if v < 0.6 else "black")
            if chance is not None and bool(chance.iat[i, j]):
                ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch="///", edgecolor="grey",
                                           lw=0))
    if chance is not None and bool(chance.to_numpy().any()):
        title = f"{title}\n(hatched: not distinguishable from chance, 95 % CI)"
    ax.set_xticks(range(n_cols), matrix.columns, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(n_rows), matrix.index, fontsize=8)
    ax.set(xlabel="evaluated on", ylabel="trained on")
    ax.set_title(title, fontsize=8)
    fig.colorbar(image, ax=ax, fraction=0.04, label="recovered accuracy")
    return _save(fig, path)



def fig_from_to(matrix: Any, model: str, path: Path) -> Path:
    plt = _plt()
    ft = from_and_to(matrix).dropna()
    fig, ax = plt.subplots(figsize=(5, 4.5))
    ax.scatter(ft["from"], ft["to"])
    for name, r in ft.iterrows():
        ax.annotate(name, (r["from"], r["to"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.plot([0, 1], [0, 1], color="grey", lw=0.5, ls=":")
    ax.set(xlabel="generalises from (row mean)", ylabel="generalises to (column mean)", xlim=(0, 1.02),
           ylim=(0, 1.02), title=f"{model}: from vs to")
    return _save(fig, path)


def fig_clustering(matrix: Any, model: str, path: Path) -> Path | None:
    from scipy.cluster.hierarchy import dendrogram, linkage
    from scipy.spatial.distance import squareform

    names = [n for n in matrix.index if n in matrix.columns]
    if len(names) < 3:
        return None
    m = matrix.loc[names, names].to_numpy(dtype=float)
    sym = np.nan_to_num((m + m.T) / 2, nan=0.0)
    distance = 1 - sym
    np.fill_diagonal(distance, 0)
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    dendrogram(linkage(squareform(np.clip(distance, 0, None), checks=False), "average"), labels=names, ax=ax,
               leaf_rotation=60)
    ax.set(ylabel="1 - mean recovered accuracy (both ways)", title=f"{model}: datasets clustered by generalisation")
    return _save(fig, path)


def fig_layer_curves(t: Tables, datasets: list[str], algorithms: list[str], title: str, path: Path) -> Path:
    """In-distribution accuracy by layer, each curve with its 95 % CI band."""
    plt = _plt()
    ind = t.in_distribution()
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    for d in datasets:
        for a in algorithms:
            rows = ind[(ind.evaluated_on == d) & (ind.algorithm == a)].sort_values("layer")
            if len(rows):
                label = f"{d} / {DISPLAY.get(a, a)}" if len(datasets) > 1 else DISPLAY.get(a, a)
                line, = ax.plot(rows.layer, rows.value, marker=".", ms=3, lw=1, label=label)
                ax.fill_between(rows.layer, rows.ci_low, rows.ci_high, color=line.get_color(), alpha=0.12, lw=0)
    ax.set(xlabel="layer", ylabel="validation accuracy (trained on the same dataset)", ylim=(0, 1.02))
    ax.set_title(f"{title} (bands: 95 % CI)", fontsize=9)
    ax.legend(fontsize=6, ncol=2)
    return _save(fig, path)


def fig_lda(t: Tables, path: Path) -> Path | None:
    ind = t.in_distribution().set_index(PROBE).value.rename("in_dist")
    joined = t.probes.set_index(PROBE).join(ind, how="inner").reset_index()
    joined = joined[joined.algorithm.isin(["lda", "dim", "lr"])]
    if joined.empty:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    for a, color in (("dim", "#4c72b0"), ("lr", "#55a868"), ("lda", "#c44e52")):
        rows = joined[joined.algorithm == a]
        ax.scatter(rows.in_dist, rows.score, s=6, alpha=0.6, color=color, label=DISPLAY[a])
    ax.plot([0, 1], [0, 1], color="grey", lw=0.5, ls=":")
    ax.set(xlabel="in-distribution accuracy", ylabel="generalisation score", xlim=(0, 1.02), ylim=(0, 1.02),
           title=f"{t.model}: does fitting A well mean generalising?")
    ax.legend(fontsize=7)
    return _save(fig, path)


def fig_cross_model(matrix: Any, path: Path) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.2, 3.6))
    image = ax.imshow(matrix.to_numpy(dtype=float), cmap="magma", vmin=0.5, vmax=1)
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            v = matrix.iat[i, j]
            if v == v:
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=9, color="white" if v < 0.8 else "black")
    ax.set_xticks(range(matrix.shape[1]), matrix.columns, fontsize=8)
    ax.set_yticks(range(matrix.shape[0]), matrix.index, fontsize=8)
    ax.set(xlabel="Trained on", ylabel="Model", title="Probe")
    fig.colorbar(image, ax=ax, fraction=0.045, label="mean validation accuracy")
    return _save(fig, path)
