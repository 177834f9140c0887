"""The numbers of the probe report: derived tables, best-probe choices and the headline, from the table alone.

`Tables` turns the tidy probes table into generalisation scores per probe (validation) and
their hparams twins used for every choice, plus the cross-dataset matrix; `headline` and
`cross_model_tables` are the summary numbers. Kept apart from `figures` (which only draws)
and `report` (which writes the files) so every number has one definition that both share.

Definitions:
- a probe is (algorithm, trained_on, layer); its generalisation score is its mean recovered
  accuracy over every other dataset (validation split);
- "best" probes are always chosen on the hparams split (the same score computed from
  hparams accuracies), then reported on validation, so no selection sees validation data;
- baselines (the random direction) are reference points, never a "best" probe, a matrix
  row's probe or the denominator of recovered accuracy;
- a probe's score gets a 95 % CI from the stored per-dataset CIs: the datasets are
  independent samples, so each side's half-width is combined in quadrature over the k
  datasets and divided by k (bounds are never averaged); `at_chance` marks the probes whose
  chance-corrected score's CI reaches 0 (not distinguishable from guessing, or below it).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from transferlab.errors import TransferlabError
from transferlab.probes.algorithms import BASELINES

PROBE = ["algorithm", "trained_on", "layer"]
THRESHOLD = 0.8


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
        self.corrected = val[(val.metric == "recovered_cc") & (val.trained_on != val.evaluated_on)]
        hp = own[(own.split == "hparams") & (own.metric == "acc")]
        # hparams recovered accuracy, for choosing probes without touching validation
        own_hp = hp[(hp.trained_on == hp.evaluated_on) & ~hp.algorithm.isin(BASELINES)]
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
        ci = mean_ci(cross).rename(columns={"low": "score_low", "high": "score_high"}).drop(columns="value")
        cc = mean_ci(self.corrected).rename(columns={"value": "cc", "low": "cc_low", "high": "cc_high"})
        probes = self.score.to_frame().join(self.hp_score, how="left").join(ci, how="left").join(cc, how="left")
        probes["at_chance"] = probes.cc_low <= 0  # False where unknown: a mark is drawn only on evidence
        self.probes = probes.reset_index()

    def best(self, by: str | None = None, frame: Any = None) -> Any:
        """The probe with the highest hparams score (per `by` group), with its validation score.

        Baselines are candidates only when grouping by algorithm (their own bar, a reference)."""
        probes = self.probes if frame is None else frame
        if by != "algorithm":
            probes = probes[~probes.algorithm.isin(BASELINES)]
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
        hp = hp[hp.algorithm.isin(algorithms)] if algorithms else hp[~hp.algorithm.isin(BASELINES)]
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


def mean_ci(cells: Any, keys: list[str] = PROBE) -> Any:
    """Mean value per `keys` over independent cells (different datasets), with a 95 % CI made
    from the cells' own CIs: each side's half-widths in quadrature, over the number of cells.
    A normal approximation that needs no per-example data, so imported tables get it too."""
    import pandas as pd

    if cells.empty:
        return pd.DataFrame(columns=["value", "low", "high"], index=pd.MultiIndex.from_tuples([], names=keys))
    below = (cells.value - cells.ci_low).clip(lower=0) ** 2
    above = (cells.ci_high - cells.value).clip(lower=0) ** 2
    parts = cells[keys].assign(value=cells.value, below=below, above=above).groupby(keys)
    k = parts.value.count()
    mean = parts.value.mean()
    return pd.DataFrame({"value": mean, "low": mean - parts.below.sum(min_count=1) ** 0.5 / k,
                         "high": mean + parts.above.sum(min_count=1) ** 0.5 / k})


def errors(frame: Any, value: str, low: str, high: str) -> Any:
    """(2, n) error-bar lengths below and above each value (0 where the CI is unknown)."""
    lo = (frame[value] - frame[low]).clip(lower=0).fillna(0).to_numpy(dtype=float)
    hi = (frame[high] - frame[value]).clip(lower=0).fillna(0).to_numpy(dtype=float)
    return np.vstack([lo, hi])


def at_chance(t: Tables, matrix: Any, picked: Any) -> Any:
    """Cells of `matrix` (from `Tables.matrix`) whose chance-corrected CI includes 0: the probe is
    not distinguishable from guessing there. A boolean frame shaped like the matrix."""
    cc = t.corrected.merge(picked.reset_index()[PROBE], on=PROBE)
    cc = cc.assign(chance=(cc.ci_low <= 0) & (cc.ci_high >= 0))
    mask = cc.pivot_table(index="trained_on", columns="evaluated_on", values="chance", aggfunc="max")
    return mask.reindex(index=matrix.index, columns=matrix.columns).fillna(False).astype(bool)


def from_and_to(matrix: Any) -> Any:
    import pandas as pd

    off = matrix.copy()
    for d in off.index:
        if d in off.columns:
            off.loc[d, d] = np.nan
    return pd.DataFrame({"from": off.mean(axis=1), "to": off.mean(axis=0)})


# ---- cross-model table -----------------------------------------------------------------------------
def cross_model_tables(frame: Any) -> tuple[Any, Any] | None:
    """(Model x Trained on matrix, per-dataset detail) from the cross-model table.

    For each (model, trained-on model, dataset, algorithm) the layer is chosen on the hparams
    split; the cell is the mean validation accuracy over datasets and algorithms.
    """
    if frame.empty or (frame.model == frame.source_model).all():
        return None
    picked = _cross_model_picked(frame)
    matrix = picked.pivot_table(index="model", columns="source_model", values="value", aggfunc="mean")
    detail = picked.pivot_table(index=["evaluated_on", "algorithm"], columns=["model", "source_model"], values="value")
    return matrix, detail


def _cross_model_picked(frame: Any) -> Any:
    """Validation accuracy of each (model, trained-on model, dataset, algorithm) at its hparams-chosen layer."""
    acc = frame[(frame.metric == "acc") & (frame.trained_on == frame.evaluated_on)]
    keys = ["model", "source_model", "evaluated_on", "algorithm"]
    hp = acc[acc.split == "hparams"]
    val = acc[acc.split == "validation"]
    chosen = hp.loc[hp.groupby(keys).value.idxmax(), [*keys, "layer"]]
    return val.merge(chosen, on=[*keys, "layer"])


def cross_model_cells(frame: Any) -> Any:
    """The Model x Trained on cells of `cross_model_tables` in long form, each with a 95 % CI.

    The value is the same mean over (dataset, algorithm). Its CI: the algorithms of one dataset
    are scored on the same examples, so their half-widths add (the bound for fully correlated
    estimates, wider than the truth); datasets are independent samples, so their sums combine
    in quadrature, over the number of (dataset, algorithm) values. None without a second model.
    """
    import pandas as pd

    if frame.empty or (frame.model == frame.source_model).all():
        return None
    picked = _cross_model_picked(frame).assign(
        below=lambda f: (f.value - f.ci_low).clip(lower=0), above=lambda f: (f.ci_high - f.value).clip(lower=0))
    rows = []
    for (model, source), cell in picked.groupby(["model", "source_model"], sort=True):
        per_set = cell.groupby("evaluated_on").agg(below=("below", lambda v: v.sum(min_count=len(v))),
                                                  above=("above", lambda v: v.sum(min_count=len(v))), n=("n", "max"))
        value, k = float(cell.value.mean()), len(cell)
        rows.append({"model": model, "trained_on_model": source, "metric": "acc", "value": value,
                     "ci_low": value - float((per_set.below ** 2).sum(min_count=len(per_set))) ** 0.5 / k,
                     "ci_high": value + float((per_set.above ** 2).sum(min_count=len(per_set))) ** 0.5 / k,
                     "datasets": len(per_set), "probes": k, "n": int(per_set.n.sum()),
                     "algorithms": " ".join(sorted(set(cell.algorithm)))})
    return pd.DataFrame(rows)


def dataset_bootstrap(t: Tables, resamples: int = 1000, seed: int = 0) -> dict[str, tuple[float, float, float]]:
    """(value, 95 % low, high) of the mean cross-dataset accuracy and of the share of probes above 80 %
    recovered, resampling datasets: cells that share a dataset are not independent, and the
    question is how much the numbers depend on which datasets were measured. Each draw keeps
    every cell between drawn datasets (weighted by how often each was drawn); the point value
    is the headline's own (every dataset once). Baselines are left out, as in `headline`."""
    acc = t.acc[(t.acc.trained_on != t.acc.evaluated_on) & ~t.acc.algorithm.isin(BASELINES)]
    rec = t.cells[~t.cells.algorithm.isin(BASELINES)]
    names = sorted(set(acc.trained_on) | set(acc.evaluated_on) | set(rec.trained_on) | set(rec.evaluated_on))
    if not names:
        return {}
    ix = {d: i for i, d in enumerate(names)}
    rng = np.random.default_rng(seed)
    counts = np.vstack([np.ones(len(names)), rng.multinomial(len(names), [1 / len(names)] * len(names), resamples)])
    a_tr, a_ev, a_v = (acc.trained_on.map(ix).to_numpy(), acc.evaluated_on.map(ix).to_numpy(),
                       acc.value.to_numpy(dtype=float))
    codes = rec.groupby(PROBE).ngroup().to_numpy()
    r_ev, r_v = rec.evaluated_on.map(ix).to_numpy(), rec.value.to_numpy(dtype=float)
    probe_train = np.zeros(codes.max() + 1 if len(codes) else 0, dtype=int)
    probe_train[codes] = rec.trained_on.map(ix).to_numpy()
    means, shares = [], []
    with np.errstate(invalid="ignore", divide="ignore"):
        for c in counts:
            w = c[a_tr] * c[a_ev]
            means.append((w * a_v).sum() / w.sum() if len(w) and w.sum() else np.nan)
            if len(codes):
                den = np.bincount(codes, c[r_ev], minlength=len(probe_train))
                score = np.bincount(codes, c[r_ev] * r_v, minlength=len(probe_train)) / den
                weight = c[probe_train] * (den > 0)
                shares.append((weight * (score > THRESHOLD)).sum() / weight.sum() if weight.sum() else np.nan)
    out = {}
    for name, draws in (("mean_cross_accuracy", means), ("share_above_80", shares)):
        if draws and not np.isnan(draws[0]):
            rest = np.asarray(draws[1:], dtype=float)
            rest = rest[~np.isnan(rest)]
            out[name] = (float(draws[0]), *(float(q) for q in np.percentile(rest, [2.5, 97.5])))
    return out


def below_chance(t: Tables, most: int = 10) -> Any:
    """Cross-dataset cells whose chance-corrected recovered accuracy is below chance beyond noise
    (CI entirely below 0): the probe's direction is reversed on that dataset. Worst first."""
    cells = t.corrected[~t.corrected.algorithm.isin(BASELINES) & (t.corrected.ci_high < 0)]
    return cells.sort_values("value").head(most)


def headline(t: Tables) -> dict[str, Any]:
    """The three numbers of seed 003's table, for this run (random baseline excluded, shown apart)."""
    real = t.probes[~t.probes.algorithm.isin(BASELINES)]
    cells = t.cells[~t.cells.algorithm.isin(BASELINES)]
    rand = t.probes[t.probes.algorithm.isin(BASELINES)]
    best = t.best(frame=real)
    corrected = t.corrected[~t.corrected.algorithm.isin(BASELINES)]
    cross_acc = t.acc[(t.acc.trained_on != t.acc.evaluated_on) & ~t.acc.algorithm.isin(BASELINES)]
    flipped = corrected[corrected.ci_high < 0]  # below chance beyond noise: the direction's sign is reversed
    out = {
        "mean_recovered": float(cells.value.mean()) if len(cells) else float("nan"),
        "mean_corrected": float(corrected.value.mean()) if len(corrected) else float("nan"),
        "mean_cross_accuracy": float(cross_acc.value.mean()) if len(cross_acc) else float("nan"),
        "below_chance_cells": int(len(flipped)),
        "share_above_80": float((real.score > THRESHOLD).mean()) if len(real) else float("nan"),
        "cells_above_80": float((cells.value > THRESHOLD).mean()) if len(cells) else float("nan"),
        "random_mean_recovered": float(rand.score.mean()) if len(rand) else float("nan"),
        "probes": int(len(real)),
        "cells": int(len(cells)),
    }
    if len(best):
        b = best.iloc[0]
        out["best"] = {"algorithm": b.algorithm, "trained_on": b.trained_on, "layer": int(b.layer),
                       "score": float(b.score), "hp_score": float(b.hp_score),
                       "score_low": float(b.score_low), "score_high": float(b.score_high)}
    return out
