"""Capability drift (seed 004): does an adapter improve what its label says it was trained for?

An adapter is selected by its nominal label ("instruction-tuned", "math"), yet its
realised gains may land elsewhere: an instruction-tuned adapter that lifts a numeric
benchmark but not IFEval. Every adapter here is evaluated on several targets, so the
same table shows, per adapter, the gain on its on-label targets next to the gains on the
off-label ones. The drift score is only a compact summary of that matrix, in the
metric's own units, not a new metric.

Everything is a pure function of the tidy results table; nothing calls a model.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from transferlab.stats import Estimate
from transferlab.transfer.analysis import (estimate_of, format_estimate, metric_units, pooled, primary_rows, seed_mean,
                                          task_domain)

ADAPTER = ["model", "learner", "trained_on"]
PATTERNS = ("drift", "reverse drift", "as labelled", "on-label harm", "no effect", "no on-label target")
COLUMNS = ["model", "learner", "trained_on", "label", "seeds", "on_label_targets", "on_label_gain", "on_label_std",
           "on_label_ci_low", "on_label_ci_high", "off_label_gains", "best_off_label", "best_off_label_gain",
           "best_off_label_ci_low", "best_off_label_ci_high", "mean_off_label_gain", "drift_score", "drift_std",
           "units", "pattern", "note"]


def adapter_gains(results: pd.DataFrame, labels: Mapping[str, str] | None = None,
                  domains: Mapping[str, str] | None = None) -> pd.DataFrame:
    """The raw cross-task matrix behind the drift table: each adapter's gain on each target.

    An adapter is (model, learner, trained_on); its cells are the `transfer` and `direct`
    conditions. Sequential and joint cells are left out: each is evaluated on its second
    task only, so it has no off-label targets to compare.

    Parameters
    ----------
    results : DataFrame
        The tidy results table.
    labels : mapping, optional
        trained_on → nominal label. By default an adapter's label is the domain of the task
        it was trained on (see `domains`).
    domains : mapping, optional
        Task → domain, overriding the registered task's `domain` (an unknown task is its own
        domain). Used for the targets and for the default labels.

    Returns
    -------
    DataFrame
        One row per (adapter, target), averaged over seeds: model, learner, trained_on,
        label, evaluated_on, domain, on_label, metric (the target's primary metric), units,
        value, std, seeds, n, ci_low, ci_high.
    """
    return seed_mean(_labelled(results, labels, domains, pooled=True),
                     [*ADAPTER, "label", "evaluated_on", "domain", "on_label", "metric", "units"])


def _labelled(results: pd.DataFrame, labels: Mapping[str, str] | None,
              domains: Mapping[str, str] | None, pooled: bool = False) -> pd.DataFrame:
    """Per-seed primary gain rows of the adapters (and, with `pooled`, the rows pooled over
    seeds, for `seed_mean`), with label, target domain and units."""
    rows = primary_rows(results, "gain", ("transfer", "direct"), pooled=pooled)
    if rows.empty:
        raise ValueError("the results hold no transfer or direct cells with gain rows: no adapter to diagnose "
                         "(summarise the study first, or check the condition and metric columns)")
    tasks = set(rows["trained_on"]) | set(rows["evaluated_on"])
    domain_of = {t: task_domain(t, domains) for t in tasks}
    rows["label"] = rows["trained_on"].map(lambda s: labels[s] if labels and s in labels else domain_of[s])
    rows["domain"] = rows["evaluated_on"].map(domain_of)
    rows["on_label"] = rows["domain"] == rows["label"]
    rows["units"] = rows["metric"].map(metric_units)
    return rows


def classify(on_label: Estimate | None, off_label: list[Estimate]) -> str:
    """The drift pattern of one adapter, from the CIs of its gains.

    - "no on-label target": nothing it was evaluated on carries its label;
    - "as labelled": the on-label gain is significantly positive, no off-label gain is
      significantly negative;
    - "reverse drift": the on-label gain is significantly positive but some off-label gain
      is significantly negative;
    - "drift": the on-label gain's CI includes or lies below zero while some off-label gain
      is significantly positive;
    - "on-label harm": the on-label gain is significantly negative and no off-label gain is
      significantly positive (training hurt the very thing it was for);
    - "no effect": anything else (nothing significant in either direction that matters).

    A missing CI never counts as significant.
    """
    if on_label is None:
        return "no on-label target"
    if on_label.ci_low > 0:
        return "reverse drift" if any(o.ci_high < 0 for o in off_label) else "as labelled"
    if any(o.ci_low > 0 for o in off_label):
        return "drift"
    return "on-label harm" if on_label.ci_high < 0 else "no effect"


def drift_table(results: pd.DataFrame, labels: Mapping[str, str] | None = None,
                domains: Mapping[str, str] | None = None) -> pd.DataFrame:
    """One row per adapter: its on-label gain, its off-label gains, a drift score and a pattern.

    Definitions, for one adapter and one seed, gains in each target's primary metric:

    - on-label gain: the `gain:` of its on-label target, with that cell's CI. With several
      on-label targets it is the mean of their gains, and the CI is the mean of their CI
      bounds (wider than the true CI of the mean, so it errs towards "not significant").
    - drift score = mean off-label gain − on-label gain, over the off-label targets in the
      same units as the on-label ones. Positive: the adapter helps elsewhere more than on
      what it is labelled for.

    Units: gains are averaged or subtracted only within one unit. All accuracy-like
    metrics in [0, 1] (`metric_units` → 'proportion') share one; any other metric is its
    own. Off-label targets in another unit than the on-label ones ('proportion' when there
    is no on-label target) are left out of the drift score and the best off-label target,
    and named in `note`; on-label targets mixing units give an NA on-label gain and a note.
    The pattern (`classify`) uses only the sign of each CI, so it counts every target.

    Seeds: the on-label gain and the drift score are computed per seed, then reported as
    mean (`on_label_gain`, `drift_score`) ± std between seeds (`on_label_std`,
    `drift_std`); the per-target gains and their CIs combine seeds as `seed_mean` does (the
    study's pooled-over-seeds rows: a hierarchical bootstrap), the on-label CI is then the
    mean over the on-label targets, and the pattern is read from those.

    Parameters
    ----------
    results : DataFrame
        The tidy results table.
    labels : mapping, optional
        trained_on → nominal label; by default the trained-on task's domain.
    domains : mapping, optional
        Task → domain, overriding the registered tasks' domains.

    Returns
    -------
    DataFrame
        Columns `COLUMNS`; an adapter without an on-label target is kept, with the pattern
        "no on-label target" and NA on-label gain and drift score.
    """
    per_seed = _labelled(results, labels, domains)
    averaged = seed_mean(_labelled(results, labels, domains, pooled=True),
                         [*ADAPTER, "label", "evaluated_on", "domain", "on_label", "metric", "units"])
    rows = []
    for key, targets in averaged.groupby(ADAPTER, sort=True):
        seeds = per_seed.merge(pd.DataFrame([key], columns=ADAPTER), on=ADAPTER)
        rows.append(_adapter_row(dict(zip(ADAPTER, key)), targets, seeds))
    return pd.DataFrame(rows, columns=COLUMNS)


def _adapter_row(adapter: dict, targets: pd.DataFrame, seeds: pd.DataFrame) -> dict:
    """The drift-table row of one adapter from its seed-averaged and per-seed target gains."""
    on, off = targets[targets["on_label"]], targets[~targets["on_label"]]
    notes = []
    on_units = sorted(set(on["units"]))
    if len(on_units) > 1:
        notes.append("on-label targets mix units (" + ", ".join(
            f"{t}: {m}" for t, m in zip(on["evaluated_on"], on["metric"])) + "): no on-label gain, the pattern reads it as not significant")
    unit = on_units[0] if len(on_units) == 1 else ("proportion" if on.empty else None)
    comparable = off[off["units"] == unit]
    other = sorted(set(off["evaluated_on"]) - set(comparable["evaluated_on"]))
    if other:
        notes.append(f"left out of drift_score and best_off_label (units differ from "
                     f"{unit or 'the on-label targets'}): " + ", ".join(other))
    if len(on) > 1:
        notes.append(f"on-label gain averages {len(on)} targets")

    # Per seed: on-label gain and drift score, then mean ± std over seeds.
    on_values, drifts, off_means = [], [], []
    for _, rows in seeds.groupby("seed"):
        seed_on = rows[rows["on_label"]]
        seed_off = rows[~rows["on_label"] & (rows["units"] == unit)]
        if seed_on.empty or unit is None:
            continue
        estimate = pooled([estimate_of(r) for _, r in seed_on.iterrows()])
        on_values.append(estimate.value)
        if not seed_off.empty:
            off_means.append(float(seed_off["value"].mean()))
            drifts.append(off_means[-1] - estimate.value)
    # Seeds combined per target first (with the pooled-over-seeds CI where the study wrote one),
    # then the on-label targets averaged; over one seed this is the seed's own estimate.
    on_label = None
    if not on.empty:  # no per-seed value (units that cannot be averaged): an on-label gain that cannot be read
        on_label = (pooled([estimate_of(r) for _, r in on.iterrows()]) if on_values
                    else Estimate(math.nan, 0, math.nan, math.nan))

    best = comparable.sort_values(["value", "evaluated_on"], ascending=[False, True]).head(1)
    pattern = classify(on_label, [estimate_of(r) for _, r in off.iterrows()])
    return {
        **adapter,
        "label": targets["label"].iloc[0],
        "seeds": int(seeds["seed"].nunique()),
        "on_label_targets": ", ".join(sorted(on["evaluated_on"])),
        "on_label_gain": on_label.value if on_label else math.nan,
        "on_label_std": _std(on_values),
        "on_label_ci_low": on_label.ci_low if on_label else math.nan,
        "on_label_ci_high": on_label.ci_high if on_label else math.nan,
        "off_label_gains": "; ".join(f"{r.evaluated_on}: {format_estimate(estimate_of(r))}" for r in off.itertuples()),
        "best_off_label": best["evaluated_on"].iloc[0] if len(best) else None,
        "best_off_label_gain": float(best["value"].iloc[0]) if len(best) else math.nan,
        "best_off_label_ci_low": float(best["ci_low"].iloc[0]) if len(best) else math.nan,
        "best_off_label_ci_high": float(best["ci_high"].iloc[0]) if len(best) else math.nan,
        "mean_off_label_gain": _mean(off_means),
        "drift_score": _mean(drifts),
        "drift_std": _std(drifts),
        "units": unit,
        "pattern": pattern,
        "note": "; ".join(notes),
    }


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else math.nan


def _std(values: list[float]) -> float:
    """Sample std between seeds; 0 for one seed, NA for none."""
    if not values:
        return math.nan
    return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
