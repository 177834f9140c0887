"""The probe report: seed 003's figures, the 80 % table and a Markdown summary, from the table alone.

    transferlab probes report RUN_DIR

Reads `probe_results`, `probe_skips` and probes_run.json; loads no model. Definitions:
- a probe is (algorithm, trained_on, layer); its generalisation score is its mean recovered
  accuracy over every other dataset (validation split);
- "best" probes are always chosen on the hparams split (the same score computed from
  hparams accuracies), then reported on validation, so no selection sees validation data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from transferlab.errors import TransferlabError
from transferlab.probes.algorithms import DISPLAY
from transferlab.probes.results import ProbeResults

PROBE = ["algorithm", "trained_on", "layer"]
THRESHOLD = 0.8


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


class Tables:
    """The derived tables every figure draws from, computed once from the probes table."""

    def __init__(self, frame: Any, model: str):
        own = frame[(frame.model == model) & (frame.source_model == model)]
        if own.empty:
            raise TransferlabError(f"the run holds no probe results for {model}")
        self.model = model
        val = own[own.split == "validation"]
        self.acc = val[val.metric == "acc"]
        self.recovered = val[val.metric == "recovered"]
        hp = own[(own.split == "hparams") & (own.metric == "acc")]
        # hparams recovered accuracy, for choosing probes without touching validation
        own_hp = hp[hp.trained_on == hp.evaluated_on]
        top_h = own_hp.groupby("evaluated_on").value.max()
        # only datasets with a recovered accuracy (a best probe above chance) count in selections
        hp = hp[hp.evaluated_on.isin(top_h.index) & hp.evaluated_on.isin(set(self.recovered.evaluated_on))].copy()
        hp["recovered"] = (hp.value / hp.evaluated_on.map(top_h).clip(lower=1e-12)).clip(0, 1)
        self.hp = hp
        self.datasets = sorted(set(self.acc.evaluated_on) | set(self.acc.trained_on))
        cross = self.recovered[self.recovered.trained_on != self.recovered.evaluated_on]
        self.cells = cross
        self.score = cross.groupby(PROBE).value.mean().rename("score")  # generalisation score per probe
        self.hp_score = hp[hp.trained_on != hp.evaluated_on].groupby(PROBE).recovered.mean().rename("hp_score")
        self.probes = self.score.to_frame().join(self.hp_score, how="left").reset_index()

    def best(self, by: str | None = None, frame: Any = None) -> Any:
        """The probe with the highest hparams score (per `by` group), with its validation score."""
        probes = self.probes if frame is None else frame
        probes = probes.dropna(subset=["hp_score"])
        if probes.empty:
            return probes
        if by is None:
            return probes.loc[[probes.hp_score.idxmax()]]
        return probes.loc[probes.groupby(by).hp_score.idxmax()]

    def in_distribution(self) -> Any:
        a = self.acc
        return a[a.trained_on == a.evaluated_on]

    def matrix(self, datasets: list[str] | None = None, algorithms: list[str] | None = None) -> Any:
        """Recovered accuracy, rows = trained on, columns = evaluated on, of each row's best probe.

        The probe of a row is chosen by its mean hparams recovered accuracy over the matrix's
        other datasets.
        """
        names = datasets or self.datasets
        hp = self.hp[self.hp.trained_on.isin(names) & self.hp.evaluated_on.isin(names)]
        if algorithms:
            hp = hp[hp.algorithm.isin(algorithms)]
        off = hp[hp.trained_on != hp.evaluated_on]
        if off.empty:
            off = hp
        choice = off.groupby(PROBE).recovered.mean().reset_index()
        picked = choice.loc[choice.groupby("trained_on").recovered.idxmax()] if not choice.empty else choice
        rec = self.recovered.merge(picked[PROBE], on=PROBE)
        rec = rec[rec.evaluated_on.isin(names)]
        table = rec.pivot_table(index="trained_on", columns="evaluated_on", values="value")
        rows = [n for n in names if n in table.index]
        cols = [n for n in names if n in table.columns]
        return table.loc[rows, cols], picked.set_index("trained_on")


# ---- figures ------------------------------------------------------------------------------------
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


def fig_matrix(matrix: Any, title: str, path: Path) -> Path:
    plt = _plt()
    n_rows, n_cols = matrix.shape
    fig, ax = plt.subplots(figsize=(0.6 * n_cols + 2.5, 0.5 * n_rows + 1.8))
    image = ax.imshow(matrix.to_numpy(dtype=float), vmin=0, vmax=1, cmap="magma")
    for i in range(n_rows):
        for j in range(n_cols):
            v = matrix.iat[i, j]
            if v == v:
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7, color="white" if v < 0.6 else "black")
    ax.set_xticks(range(n_cols), matrix.columns, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(n_rows), matrix.index, fontsize=8)
    ax.set(xlabel="evaluated on", ylabel="trained on", title=title)
    fig.colorbar(image, ax=ax, fraction=0.04, label="recovered accuracy")
    return _save(fig, path)


def from_and_to(matrix: Any) -> Any:
    import pandas as pd

    off = matrix.copy()
    for d in off.index:
        if d in off.columns:
            off.loc[d, d] = np.nan
    return pd.DataFrame({"from": off.mean(axis=1), "to": off.mean(axis=0)})


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


# ---- cross-model table -----------------------------------------------------------------------------
def cross_model_tables(frame: Any) -> tuple[Any, Any] | None:
    """(Model x Trained on matrix, per-dataset detail) from the cross-model table.

    For each (model, trained-on model, dataset, algorithm) the layer is chosen on the hparams
    split; the cell is the mean validation accuracy over datasets and algorithms.
    """
    if frame.empty or (frame.model == frame.source_model).all():
        return None
    acc = frame[(frame.metric == "acc") & (frame.trained_on == frame.evaluated_on)]
    keys = ["model", "source_model", "evaluated_on", "algorithm"]
    hp = acc[acc.split == "hparams"]
    val = acc[acc.split == "validation"]
    chosen = hp.loc[hp.groupby(keys).value.idxmax(), [*keys, "layer"]]
    picked = val.merge(chosen, on=[*keys, "layer"])
    matrix = picked.pivot_table(index="model", columns="source_model", values="value", aggfunc="mean")
    detail = picked.pivot_table(index=["evaluated_on", "algorithm"], columns=["model", "source_model"], values="value")
    return matrix, detail


# ---- Markdown --------------------------------------------------------------------------------------
def _pct(v: float) -> str:
    return "NA" if v != v else f"{100 * v:.1f} %"


def _md_table(frame: Any, fmt: str = "{:.2f}") -> str:
    cols = [str(c) for c in frame.columns]
    lines = ["| " + " | ".join([frame.index.name or "", *cols]) + " |", "|" + "---|" * (len(cols) + 1)]
    for idx, row in frame.iterrows():
        cells = [fmt.format(v) if isinstance(v, (float, np.floating)) and v == v else ("" if v != v else str(v))
                 for v in row.to_numpy()]
        lines.append("| " + " | ".join([str(idx), *cells]) + " |")
    return "\n".join(lines)


def headline(t: Tables) -> dict[str, Any]:
    """The three numbers of seed 003's table, for this run (random baseline excluded, shown apart)."""
    real = t.probes[t.probes.algorithm != "random"]
    cells = t.cells[t.cells.algorithm != "random"]
    rand = t.probes[t.probes.algorithm == "random"]
    best = t.best(frame=real)
    out = {
        "mean_recovered": float(cells.value.mean()) if len(cells) else float("nan"),
        "share_above_80": float((real.score > THRESHOLD).mean()) if len(real) else float("nan"),
        "cells_above_80": float((cells.value > THRESHOLD).mean()) if len(cells) else float("nan"),
        "random_mean_recovered": float(rand.score.mean()) if len(rand) else float("nan"),
        "probes": int(len(real)),
        "cells": int(len(cells)),
    }
    if len(best):
        b = best.iloc[0]
        out["best"] = {"algorithm": b.algorithm, "trained_on": b.trained_on, "layer": int(b.layer),
                       "score": float(b.score), "hp_score": float(b.hp_score)}
    return out


def write_report(root: Path, console: Any = None) -> list[Path]:
    """Draw every figure and write summary.md into ROOT/report/; returns the files written."""
    root = Path(root)
    results = ProbeResults(root)
    frame = results.frame()
    if frame.empty:
        raise TransferlabError(f"{root} holds no probe results: run `transferlab probes run --out {root}` first")
    run = results.read_run()
    model = run.get("model") or frame[frame.model == frame.source_model].model.iloc[0]
    t = Tables(frame, model)
    out = root / "report"
    out.mkdir(exist_ok=True)
    written: list[Path | None] = []
    written.append(fig_ecdf_by_layer(t, out / "r0_acc_by_layer.png"))
    written.append(fig_best_by(t, "algorithm", out / "r1a_by_algorithms.png"))
    written.append(fig_best_by(t, "trained_on", out / "r1b_by_train.png"))
    written.append(fig_best_by(t, "layer", out / "r1c_by_layer.png"))
    written.append(fig_algorithms(t, out / "r2_probes.png"))
    written.append(fig_datasets(t, out / "r3a_datasets.png"))
    matrix, picked = t.matrix()
    written.append(fig_matrix(matrix, f"{model}: recovered accuracy of each dataset's best probe",
                              out / "r3b_matrix.png"))
    written.append(fig_from_to(matrix, model, out / "r3c_to_and_from.png"))
    written.append(fig_clustering(matrix, model, out / "r3d_clustering.png"))
    written.append(fig_truthful_qa(t, out / "r4_truthful_qa.png"))
    grouped = [d for d, info in run.get("datasets", {}).items() if info.get("grouped")] or t.datasets[:1]
    first = "arc_easy" if "arc_easy" in t.datasets else grouped[0]
    written.append(fig_layer_curves(t, [first], [a for a in DISPLAY if a in set(t.probes.algorithm)],
                                    f"{model}: {first}, trained and tested in distribution", out / "v1_in_distribution.png"))
    got = [d for d in t.datasets if run.get("datasets", {}).get(d, {}).get("family") == "got"]
    if len(got) >= 2:
        got_matrix, _ = t.matrix(got)
        written.append(fig_matrix(got_matrix, f"{model}: Geometry-of-Truth sets", out / "v2_got.png"))
    repe = [d for d in t.datasets if run.get("datasets", {}).get(d, {}).get("family") in ("repe", "mmlu")]
    if repe and "lat" in set(t.probes.algorithm):
        written.append(fig_layer_curves(t, repe, ["lat"], f"{model}: LAT (RepE) by layer", out / "v3_repe.png"))
    written.append(fig_lda(t, out / "v4_lda.png"))
    cross = cross_model_tables(results.frame("probe_cross_model"))
    if cross is not None:
        written.append(fig_cross_model(cross[0], out / "x1_cross_model.png"))
    files = [p for p in written if p is not None]
    summary = out / "summary.md"
    summary.write_text(_summary(t, run, matrix, picked, cross, results.skips(), files))
    files.append(summary)
    if console is not None:
        console.print(f"report: {len(files)} files in {out}", highlight=False)
    return files


def _summary(t: Tables, run: dict[str, Any], matrix: Any, picked: Any, cross: Any, skips: Any,
             files: list[Path]) -> str:
    import pandas as pd

    h = headline(t)
    lines = [f"# Probe generalisation: {t.model}", ""]
    if run.get("command"):
        lines += ["```bash", run["command"], "```", ""]
    if run.get("wall_seconds"):
        lines += [f"Wall time {run['wall_seconds']:.0f} s. Layers {run['layers'][0]}-{run['layers'][-1]} "
                  f"({len(run['layers'])}), position `{run.get('position')}`, at most {run.get('limit')} groups "
                  "per train/validation split.", ""]
    lines += ["## Headline", "",
              "| measure | value |", "|---|---|",
              f"| mean cross-dataset recovered accuracy (all {h['cells']} probe x other-dataset cells) | "
              f"{_pct(h['mean_recovered'])} |",
              f"| share of probes above 80 % recovered (generalisation score, {h['probes']} probes) | "
              f"{_pct(h['share_above_80'])} |",
              f"| share of cells above 80 % recovered | {_pct(h['cells_above_80'])} |",
              f"| random-direction baseline, mean generalisation score | {_pct(h['random_mean_recovered'])} |"]
    if "best" in h:
        b = h["best"]
        lines.append(f"| best probe (chosen on hparams) | {DISPLAY.get(b['algorithm'], b['algorithm'])} trained on "
                     f"{b['trained_on']}, layer {b['layer']}: {_pct(b['score'])} |")
    lines += ["", "A probe is (algorithm, trained on, layer); its generalisation score is its mean recovered accuracy "
              "on the other datasets (validation). Recovered accuracy = clip(acc(A→B) / acc(best probe for B), 0, 1), "
              "the best probe for B chosen on B's hparams split.", ""]
    # per algorithm
    rows = []
    for a in [a for a in DISPLAY if a in set(t.probes.algorithm)]:
        p = t.probes[t.probes.algorithm == a]
        best = t.best(frame=p)
        rows.append({"algorithm": DISPLAY[a], "probes": len(p), "mean score": p.score.mean(),
                     "share > 80 %": (p.score > THRESHOLD).mean(),
                     "best (hparams-chosen)": f"{best.iloc[0].trained_on} L{int(best.iloc[0].layer)}: "
                                              f"{best.iloc[0].score:.2f}" if len(best) else "NA"})
    lines += ["## Algorithms", "", _md_table(pd.DataFrame(rows).set_index("algorithm")), ""]
    # datasets
    ds_rows = []
    ind = t.in_distribution()
    for d in t.datasets:
        info = run.get("datasets", {}).get(d, {})
        best = run.get("best_probe_for", {}).get(d)
        acc = ci = ""
        if best:
            hit = ind[(ind.evaluated_on == d) & (ind.algorithm == best["algorithm"]) & (ind.layer == best["layer"])]
            if len(hit):
                r = hit.iloc[0]
                acc, ci = f"{r.value:.3f}", f"[{r.ci_low:.3f}, {r.ci_high:.3f}]"
        ds_rows.append({"dataset": d, "family": info.get("family", ""),
                        "metric": "question acc" if info.get("grouped") else "row acc",
                        "rows train/hparams/val": f"{info.get('train', '')}/{info.get('hparams', '')}/"
                                                  f"{info.get('validation', '')}",
                        "best probe for it": f"{DISPLAY.get(best['algorithm'], best['algorithm'])} L{best['layer']}"
                        if best else "NA", "its accuracy": acc, "95 % CI": ci})
    lines += ["## Datasets", "", _md_table(pd.DataFrame(ds_rows).set_index("dataset")), ""]
    matrix_md = matrix.copy()
    matrix_md.index.name = "trained on \\ evaluated on"
    chosen = ", ".join(f"{d}: {DISPLAY.get(r.algorithm, r.algorithm)} L{int(r.layer)}" for d, r in picked.iterrows())
    lines += ["## Cross-dataset matrix (recovered accuracy)", "", f"Probe per row (chosen on hparams): {chosen}.", "",
              _md_table(matrix_md), ""]
    ft = from_and_to(matrix)
    ft.index.name = "dataset"
    lines += ["Generalises from (row mean) and to (column mean), diagonal excluded:", "", _md_table(ft), ""]
    if cross is not None:
        m = cross[0].copy()
        m.index.name = "Model \\ Trained on"
        lines += ["## Cross-model probes (Model × Trained on)", "",
                  "A probe trained on one model's activations is applied to another through a linear (ridge) map "
                  "between their residual streams at matched relative depth, fitted on neutral texts that are in "
                  "no probe dataset. Cells: mean validation accuracy over datasets and algorithms, each layer "
                  "chosen on hparams.", "", _md_table(m, "{:.3f}"), ""]
        detail = cross[1].copy()
        detail.columns = [f"{a} ← {b}" for a, b in detail.columns]
        detail.index = [f"{d} / {DISPLAY.get(a, a)}" for d, a in detail.index]
        detail.index.name = "dataset / algorithm"
        lines += [_md_table(detail, "{:.3f}"), ""]
    if len(skips):
        counts = skips.groupby(["model", "algorithm", "reason"]).size().rename("count").reset_index()
        lines += ["## Skips (no number, and why)", ""]
        lines += [f"- {r.model} / {r.algorithm}: {r.reason} ({r.count}×)" for r in counts.itertuples()]
        lines.append("")
    if run.get("audit"):
        lines += ["## Datasets that could not be loaded", ""] + [f"- {a['dataset']}: {a['error']}" for a in run["audit"]]
        lines.append("")
    lines += ["## Figures", ""] + [f"- [{p.name}]({p.name})" for p in files]
    return "\n".join(lines) + "\n"
