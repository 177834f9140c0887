"""The transfer study's figures besides the heatmaps: asymmetry and similarity scatter plots.

Each takes a table the analyses already computed (never a model) and writes one PNG
atomically, so a report directory never holds half a figure.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from transferlab.transfer.similarity import Correlation


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: Path) -> None:
    """Write a figure atomically: a reader (or a second worker drawing the same report)
    never sees half a file. The temporary name is this process's own."""
    plt = _pyplot()
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    os.replace(tmp, path)


def _error_bars(value: pd.Series, low: pd.Series, high: pd.Series) -> np.ndarray:
    return np.vstack([(value - low).clip(lower=0), (high - value).clip(lower=0)])


def _label_points(ax, xs, ys, texts, fontsize: float) -> None:
    """Name each point without piling labels up: points at the same place share one label
    (one name per line), and a label whose neighbour is close (on the axes as drawn: call
    this after the limits are set) is moved up past it."""
    groups: dict[tuple[float, float], list[str]] = {}
    for x, y, text in zip(xs, ys, texts):
        if np.isfinite(x) and np.isfinite(y):
            groups.setdefault((round(float(x), 4), round(float(y), 4)), []).append(text)
    if not groups:
        return
    span = (np.ptp(ax.get_xlim()), np.ptp(ax.get_ylim()))
    placed: list[tuple[float, float, float]] = []  # (x, y, top of the label in points)
    for (x, y), names in sorted(groups.items(), key=lambda item: (item[0][1], item[0][0])):
        lift = 2.0
        for px, py, top in placed:
            if abs(px - x) < 0.25 * span[0] and abs(py - y) < 0.04 * span[1]:
                lift = max(lift, top + 1.0)
        ax.annotate("\n".join(names), (x, y), fontsize=fontsize, xytext=(3, lift), textcoords="offset points",
                    va="bottom")
        placed.append((x, y, lift + 1.2 * fontsize * len(names)))


def asymmetry_plot(pairs: pd.DataFrame, path: Path, title: str) -> None:
    """A→B gain against B→A gain, one point per unordered pair, with both 95% CIs.

    Points on the diagonal are symmetric; a point off it whose error bars miss the
    diagonal is an asymmetric pair. Pairs whose two directions use different metrics
    are drawn hollow: their gains are not in the same units.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.6, 5.2))
    same = pairs["metric_a_to_b"] == pairs["metric_b_to_a"]
    for subset, filled in ((pairs[same], True), (pairs[~same], False)):
        if subset.empty:
            continue
        ax.errorbar(subset["a_to_b"], subset["b_to_a"],
                    xerr=_error_bars(subset["a_to_b"], subset["a_to_b_ci_low"], subset["a_to_b_ci_high"]),
                    yerr=_error_bars(subset["b_to_a"], subset["b_to_a_ci_low"], subset["b_to_a_ci_high"]),
                    fmt="o", mfc=None if filled else "none", color="tab:blue", ecolor="lightgray", capsize=2,
                    label="same metric both ways" if filled else "different metrics")
    values = pairs[["a_to_b_ci_low", "a_to_b_ci_high", "b_to_a_ci_low", "b_to_a_ci_high"]].to_numpy(float)
    finite = values[np.isfinite(values)]
    bound = max(0.05, float(np.abs(finite).max()) * 1.1) if finite.size else 1.0
    ax.plot([-bound, bound], [-bound, bound], color="gray", lw=0.8, ls="--")
    ax.axhline(0, color="lightgray", lw=0.6)
    ax.axvline(0, color="lightgray", lw=0.6)
    ax.set_xlim(-bound, bound)
    ax.set_ylim(-bound, bound)
    _label_points(ax, pairs["a_to_b"], pairs["b_to_a"], [f"{r.task_a} ↔ {r.task_b}" for r in pairs.itertuples()], 7)
    ax.set_xlabel("gain A → B (trained on A, evaluated on B)")
    ax.set_ylabel("gain B → A")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    save_figure(fig, path)


def similarity_scatter(points: pd.DataFrame, correlation: Correlation, kind: str, path: Path, title: str) -> None:
    """Transfer gain against task similarity, one point per directed pair, with its 95% CI.

    `points` has columns source, target, similarity, value, ci_low, ci_high; the title
    carries Spearman's ρ with its CI resampling tasks and permutation p (or why it is missing).
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.0, 4.6))
    ax.errorbar(points["similarity"], points["value"],
                yerr=_error_bars(points["value"], points["ci_low"], points["ci_high"]),
                fmt="o", color="tab:purple", ecolor="lightgray", capsize=2)
    _label_points(ax, points["similarity"], points["value"], [f"{r.source}→{r.target}" for r in points.itertuples()],
                  6)
    ax.axhline(0, color="gray", lw=0.6)
    ax.set_xlabel(f"task similarity ({kind})")
    ax.set_ylabel("transfer gain (primary metric of the target)")
    if np.isfinite(correlation.rho):
        interval = "(no CI: too few tasks)" if correlation.note else \
            f"[{correlation.ci_low:+.2f}, {correlation.ci_high:+.2f}]"
        stat = f"Spearman ρ = {correlation.rho:+.2f} {interval}, " \
               f"{correlation.n} pairs of {correlation.tasks} tasks, permutation p = {correlation.p:.3f}"
    else:
        stat = f"no correlation: {correlation.reason}"
    ax.set_title(f"{title}\n{stat}", fontsize=9)
    save_figure(fig, path)
