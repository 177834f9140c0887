"""The probe report's figures (r0-r4, v1-v4, x1): one drawing function per figure, matplotlib only.

Each function takes already-derived tables (`tables.Tables` or a matrix) and a path, draws,
saves and returns the path (or None when the run lacks what the figure needs). Kept apart
from `tables` so no number is computed here, and from `report`, which decides which
figures a run gets and writes the Markdown.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from transferlab.probes.algorithms import DISPLAY
from transferlab.probes.tables import PROBE, THRESHOLD, Tables, from_and_to


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


def fig_ecdf_by_layer(t: Tables, path: Path) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    layers = sorted(t.probes.layer.unique())
    cmap = plt.get_cmap("viridis")
    for i, layer in enumerate(layers):
        values = np.sort(t.probes[t.probes.layer == layer].score.to_numpy())
        ax.step(values, np.arange(1, len(values) + 1) / len(values), where="post",
                color=cmap(i / max(1, len(layers) - 1)), lw=1, label=f"L{layer}" if i % max(1, len(layers) // 6) == 0
                else None)
    ax.axvline(THRESHOLD, color="grey", ls=":", lw=1)
    ax.set(xlabel="generalisation score (mean recovered accuracy on other datasets)", ylabel="share of probes ≤ x",
           title=f"{t.model}: probes by layer", xlim=(0, 1.01))
    ax.legend(fontsize=7, title="layer", title_fontsize=7)
    return _save(fig, path)


def _bars(values: Any, labels: list[str], title: str, xlabel: str, path: Path, notes: list[str] | None = None) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 0.35 * len(labels) + 1.2))
    y = np.arange(len(labels))
    ax.barh(y, values, color="#4c72b0")
    for i, v in enumerate(values):
        ax.text(min(v, 1.0) + 0.01, i, f"{v:.2f}" + (f"  {notes[i]}" if notes else ""), va="center", fontsize=7)
    ax.set_yticks(y, labels, fontsize=8)
    ax.invert_yaxis()
    ax.axvline(THRESHOLD, color="grey", ls=":", lw=1)
    ax.set(xlim=(0, 1.35), xlabel=xlabel, title=title)
    return _save(fig, path)


def fig_best_by(t: Tables, by: str, path: Path) -> Path:
    best = t.best(by).sort_values("score", ascending=False)
    labels = [DISPLAY.get(v, v) if by == "algorithm" else (f"L{v}" if by == "layer" else v) for v in best[by]]
    notes = [f"{DISPLAY.get(r.algorithm, r.algorithm)}, {r.trained_on}, L{r.layer}" for r in best.itertuples()]
    if by == "layer":
        order = np.argsort(best.layer.to_numpy())
        best = best.iloc[order]
        plt = _plt()
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.plot(best.layer, best.score, marker="o", ms=3)
        ax.axhline(THRESHOLD, color="grey", ls=":", lw=1)
        ax.set(xlabel="layer", ylabel="generalisation score of the layer's best probe", ylim=(0, 1.02),
               title=f"{t.model}: best probe by layer (chosen on hparams)")
        return _save(fig, path)
    return _bars(best.score.to_numpy(), labels, f"{t.model}: best probe by {by} (chosen on hparams)",
                 "generalisation score (validation)", path, notes)


def fig_algorithms(t: Tables, path: Path) -> Path:
    plt = _plt()
    algos = [a for a in DISPLAY if a in set(t.probes.algorithm)]
    fig, ax = plt.subplots(figsize=(7, 3.8))
    data = [t.probes[t.probes.algorithm == a].score.to_numpy() for a in algos]
    ax.boxplot(data, showfliers=False)
    ax.set_xticks(range(1, len(algos) + 1), [DISPLAY[a] for a in algos])
    for i, values in enumerate(data, start=1):
        ax.scatter(np.full(len(values), i) + np.random.default_rng(i).uniform(-0.15, 0.15, len(values)), values,
                   s=3, alpha=0.3, color="k")
    ax.axhline(THRESHOLD, color="grey", ls=":", lw=1)
    ax.set(ylabel="generalisation score", ylim=(0, 1.02), title=f"{t.model}: every probe (all datasets and layers)")
    return _save(fig, path)


def fig_datasets(t: Tables, path: Path) -> Path:
    plt = _plt()
    ind = t.in_distribution()
    best_own = []
    for d in t.datasets:
        h = t.hp[(t.hp.trained_on == d) & (t.hp.evaluated_on == d)]
        if h.empty:
            best_own.append(np.nan)
            continue
        top = h.loc[h.value.idxmax()]
        hit = ind[(ind.algorithm == top.algorithm) & (ind.trained_on == d) & (ind.layer == top.layer)]
        best_own.append(float(hit.value.iloc[0]) if len(hit) else np.nan)
    best_from = t.best("trained_on").set_index("trained_on").score.reindex(t.datasets).to_numpy()
    fig, ax = plt.subplots(figsize=(7, 0.4 * len(t.datasets) + 1.2))
    y = np.arange(len(t.datasets))
    ax.barh(y - 0.2, best_own, 0.4, label="accuracy of the best probe for it (in distribution)")
    ax.barh(y + 0.2, best_from, 0.4, label="generalisation score of its best probe")
    ax.set_yticks(y, t.datasets, fontsize=8)
    ax.invert_yaxis()
    ax.set(xlim=(0, 1.02), xlabel="validation", title=f"{t.model}: datasets")
    ax.legend(fontsize=7, loc="lower right")
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
    plt = _plt()
    ind = t.in_distribution()
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    for d in datasets:
        for a in algorithms:
            rows = ind[(ind.evaluated_on == d) & (ind.algorithm == a)].sort_values("layer")
            if len(rows):
                label = f"{d} / {DISPLAY.get(a, a)}" if len(datasets) > 1 else DISPLAY.get(a, a)
                ax.plot(rows.layer, rows.value, marker=".", ms=3, lw=1, label=label)
    ax.set(xlabel="layer", ylabel="validation accuracy (trained on the same dataset)", ylim=(0, 1.02), title=title)
    ax.legend(fontsize=6, ncol=2)
    return _save(fig, path)


def fig_truthful_qa(t: Tables, path: Path) -> Path | None:
    name = "truthful_qa"
    if name not in t.datasets:
        return None
    others = t.cells[t.cells.evaluated_on != name].groupby(PROBE).value.mean()
    tqa = t.cells[t.cells.evaluated_on == name].set_index(PROBE).value
    joined = others.to_frame("others").join(tqa.rename("tqa"), how="inner")
    if joined.empty:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.scatter(joined.others, joined.tqa, s=4, alpha=0.5)
    r = np.corrcoef(joined.others, joined.tqa)[0, 1] if len(joined) > 2 else np.nan
    ax.set(xlabel="mean recovered accuracy on the other datasets", ylabel="recovered accuracy on TruthfulQA",
           title=f"{t.model}: TruthfulQA vs the rest (r = {r:.2f})", xlim=(0, 1.02), ylim=(0, 1.02))
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
