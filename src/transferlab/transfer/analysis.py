"""Analyses of the transfer matrix (seed 002) that read cells: asymmetry, negative transfer,
profiles, and the helpers the drift, cluster and hypothesis analyses share.

Everything here is a pure function of the tidy results table (`store.RESULT_COLUMNS`),
so an analysis can be redone from a CSV without a model. Each target is read in its
primary metric (`primary_metric`), and seeds are combined the way the report does:
the value is the mean over seeds, `std` the spread between seeds, and the CI is that of
the rows the study pooled over seeds (seed = `POOLED`: a hierarchical bootstrap over
seeds, then examples). A table without pooled rows (another tool's) falls back to the
mean of the per-seed bounds, an approximation that ignores the seed spread; the drift
and hypothesis analyses still combine seeds that way.

The helpers (`task_domain`, `metric_units`, `primary_rows`, `seed_mean`, `pooled`,
`mover_difference`, `estimate_of`, `format_estimate`) are shared with `transferlab.transfer.drift`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from transferlab.stats import Estimate
from transferlab.errors import TransferlabError
from transferlab.engine.store import POOLED, RESULT_COLUMNS

KINDS = {"score": "", "gain": "gain:", "efficiency": "efficiency:", "relative": "relative:"}
CELL = ["model", "learner", "trained_on", "evaluated_on", "condition"]
# Metrics that are proportions in [0, 1], so gains measured in them share one unit.
_PROPORTION = re.compile(r"(acc|acc_norm|accuracy|exact_match(_\w+)?|em|f1|pass@\d+|(prompt|inst)_(strict|loose))")


# ---- shared helpers over the tidy table ------------------------------------------------
def primary_metric(task: str, available: list[str]) -> str:
    """The metric to show for a target: the task's primary one when the task is known here."""
    try:
        from transferlab.tasks import get_task

        wanted = get_task(task).primary_metric
        if wanted in available:
            return wanted
    except TransferlabError:
        pass
    return sorted(available)[0]


def task_domain(task: str, domains: Mapping[str, str] | None = None) -> str:
    """The domain a task belongs to: `domains[task]` if given, else the registered task's
    `domain`, else the task name itself (an unknown task is its own domain)."""
    if domains and task in domains:
        return domains[task]
    try:
        from transferlab.tasks import get_task

        return get_task(task).domain
    except TransferlabError:
        return task


def metric_units(metric: str) -> str:
    """'proportion' for accuracy-like metrics in [0, 1] (acc, exact_match*, pass@k, IFEval's
    prompt/inst strict/loose, f1), else the metric's own name: only values with equal
    units may be averaged or subtracted."""
    base = metric.split(":")[-1]
    return "proportion" if _PROPORTION.fullmatch(base) else base


def check_results(results: pd.DataFrame) -> pd.DataFrame:
    """The table with its columns checked; missing CI columns are added as NaN."""
    required = [c for c in RESULT_COLUMNS if c not in ("n", "ci_low", "ci_high")]
    missing = [c for c in required if c not in results.columns]
    if missing:
        raise ValueError(f"the results table lacks the columns {', '.join(missing)}: a tidy results table has "
                         f"{', '.join(RESULT_COLUMNS)}")
    frame = results.copy()
    for column in ("n", "ci_low", "ci_high"):
        if column not in frame.columns:
            frame[column] = np.nan
    return frame


def primary_rows(results: pd.DataFrame, kind: str = "gain",
                 conditions: Iterable[str] = ("transfer",), pooled: bool = False) -> pd.DataFrame:
    """Per-seed rows of one metric kind in each target's primary metric.

    Parameters
    ----------
    results : DataFrame
        The tidy results table.
    kind : {'gain', 'score', 'efficiency', 'relative'}
        Which family of rows to keep (`gain:m`, `m`, ...).
    conditions : iterable of str
        The conditions to keep, e.g. ('transfer', 'direct').
    pooled : bool
        Keep the rows pooled over seeds (seed = POOLED) too, for `seed_mean`; per-seed
        analyses leave it False.

    Returns
    -------
    DataFrame
        The kept rows; `metric` holds the bare metric name (`acc`, not `gain:acc`).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown metric kind {kind!r}: use one of {', '.join(KINDS)}")
    frame = check_results(results)
    bare = frame["metric"].astype(str).str.split(":").str[-1]
    primary = {t: primary_metric(t, sorted(bare[frame["evaluated_on"] == t].unique()))
               for t in frame["evaluated_on"].unique()}
    wanted = frame["evaluated_on"].map(lambda t: KINDS[kind] + primary[t])
    keep = (frame["metric"] == wanted) & frame["condition"].isin(list(conditions))
    if not pooled:
        keep &= frame["seed"] != POOLED
    out = frame[keep].copy()
    out["metric"] = bare[keep]
    return out.reset_index(drop=True)


ALPHA = 0.05  # the false discovery rate the significance marks control


def gain_qvalues(results: pd.DataFrame) -> pd.DataFrame:
    """Benjamini-Hochberg q-values of the gain cells, one family per (model, learner, seed): every
    cell of that matrix, in its target's primary metric, from the `p:gain:` rows the study wrote.

    With several seeds a cell's q is its largest over seeds (it counts as significant only if it
    is in every seed: an intersection-union test, valid whatever the seeds share). Returns the
    cell keys with `q`; empty when the table holds no p-values (e.g. one imported from another tool).
    """
    from transferlab.stats import bh_qvalues

    frame = check_results(results)
    bare = frame["metric"].astype(str).str.split(":").str[-1]
    primary = {t: primary_metric(t, sorted(bare[frame["evaluated_on"] == t].unique()))
               for t in frame["evaluated_on"].unique()}
    wanted = frame["evaluated_on"].map(lambda t: "p:gain:" + primary[t])
    p = frame[frame["metric"] == wanted].copy()
    if p.empty:
        return pd.DataFrame(columns=[*CELL, "q", "tests"])
    parts = []
    for _, family in p.groupby(["model", "learner", "seed"]):
        parts.append(family.assign(q=bh_qvalues(family["value"].to_numpy()), tests=int(family["value"].notna().sum())))
    q = pd.concat(parts)
    pooled = q[q["seed"] == POOLED]  # where the study pooled a cell's seeds, its pooled family decides
    per_seed = q[q["seed"] != POOLED].groupby(CELL, as_index=False).agg(q=("q", "max"), tests=("tests", "max"))
    if pooled.empty:
        return per_seed
    pooled = pooled[[*CELL, "q", "tests"]]
    rest = per_seed.merge(pooled[CELL], on=CELL, how="left", indicator=True)
    return pd.concat([pooled, rest[rest["_merge"] == "left_only"].drop(columns="_merge")], ignore_index=True)


def seed_mean(frame: pd.DataFrame, keys: list[str] | None = None) -> pd.DataFrame:
    """Combine seeds: value = mean, std = spread between seeds (0 for one seed), seeds = how
    many, and the value and CI of the cell's row pooled over seeds when the frame holds one
    (seed = POOLED), else the mean of the per-seed bounds. A cell that is NA in any seed (a ratio
    over noise) is NA in the mean, not the mean of the other seeds."""
    keys = keys or [*CELL, "metric"]
    if frame.empty:
        return pd.DataFrame(columns=[*keys, "value", "std", "seeds", "n", "ci_low", "ci_high"])
    per_seed, pooled = frame[frame["seed"] != POOLED], frame[frame["seed"] == POOLED]
    out = per_seed.groupby(keys, as_index=False, dropna=False).agg(
        value=("value", lambda v: v.mean(skipna=False)), std=("value", "std"), seeds=("seed", "nunique"), n=("n", "max"),
        ci_low=("ci_low", "mean"), ci_high=("ci_high", "mean"))
    out["std"] = out["std"].fillna(0.0).where(out["value"].notna())
    if not pooled.empty:
        bounds = pooled.groupby(keys, as_index=False, dropna=False).agg(
            pooled_value=("value", "first"), pooled_low=("ci_low", "first"), pooled_high=("ci_high", "first"))
        out = out.merge(bounds, on=keys, how="left")
        has = out["pooled_low"].notna() & out["value"].notna()  # an NA in any seed stays NA
        for column in ("value", "ci_low", "ci_high"):  # the pooled value is the centre of its own interval
            out.loc[has, column] = out.loc[has, f"pooled_{column.replace('ci_', '')}"]
        out = out.drop(columns=["pooled_value", "pooled_low", "pooled_high"])
    return out


def mover_difference(a: Estimate, b: Estimate) -> Estimate:
    """a − b with a CI from the two CIs (MOVER, Zou & Donner 2008), treating them as independent.

    Cells evaluated on the same examples are positively correlated, so this interval is
    wider than a paired bootstrap would give: a conservative stand-in when only the
    summary rows are available.
    """
    d = a.value - b.value
    low = d - math.sqrt((a.value - a.ci_low) ** 2 + (b.ci_high - b.value) ** 2)
    high = d + math.sqrt((a.ci_high - a.value) ** 2 + (b.value - b.ci_low) ** 2)
    return Estimate(d, min(a.n, b.n), low, high)


def pooled(estimates: list[Estimate]) -> Estimate:
    """The mean of several estimates, its CI the mean of their bounds.

    Averaging bounds gives an interval at least as wide as that of the mean of
    independent estimates, so it errs on the side of 'inconclusive'.
    """
    if not estimates:
        return Estimate(math.nan, 0, math.nan, math.nan)
    return Estimate(float(np.mean([e.value for e in estimates])), sum(e.n for e in estimates),
                    float(np.mean([e.ci_low for e in estimates])), float(np.mean([e.ci_high for e in estimates])))


def estimate_of(row: pd.Series | tuple) -> Estimate:
    """The Estimate of one table row (a Series or an `itertuples` tuple)."""
    get = row.get if isinstance(row, pd.Series) else lambda k: getattr(row, k, None)
    n = get("n")
    return Estimate(float(get("value")), 0 if n is None or pd.isna(n) else int(n), float(get("ci_low")),
                    float(get("ci_high")))


def format_estimate(e: Estimate) -> str:
    """'+0.123 [+0.050, +0.190]', or the value alone when there is no CI."""
    if math.isnan(e.ci_low) or math.isnan(e.ci_high):
        return f"{e.value:+.3f}"
    return f"{e.value:+.3f} [{e.ci_low:+.3f}, {e.ci_high:+.3f}]"


def _only(frame: pd.DataFrame, column: str, wanted: str | None) -> pd.DataFrame:
    """Rows of one model (or learner): the one asked for, or the only one there is."""
    present = sorted(frame[column].unique())
    if wanted is None:
        if len(present) > 1:
            raise ValueError(f"the results hold {len(present)} {column}s ({', '.join(present)}): "
                             f"pass {column}= to choose one")
        return frame
    if wanted not in present:
        raise ValueError(f"no transfer cells for {column} {wanted!r}: the results hold {', '.join(present) or 'none'}")
    return frame[frame[column] == wanted]


# ---- seed 002 analyses -----------------------------------------------------------------
def asymmetry(results: pd.DataFrame, metric_kind: str = "gain") -> pd.DataFrame:
    """A→B against B→A for every unordered pair of tasks with both transfer directions.

    "Does Math → Code ≠ Code → Math?" The two directions are measured in different
    targets' metrics, so `difference` (A→B − B→A, with a MOVER CI) is NA when their units
    differ; `disjoint` says whether the two CIs do not overlap (a conservative test).

    Parameters
    ----------
    results : DataFrame
        The tidy results table.
    metric_kind : {'gain', 'efficiency', 'relative', 'score'}
        Which metric of the transfer cells to compare.

    Returns
    -------
    DataFrame
        One row per (model, learner, pair) with task_a < task_b: `a_to_b`, `b_to_a` (each
        with `_ci_low`/`_ci_high`), `difference` (+ CI), `disjoint`, `metric_a_to_b`,
        `metric_b_to_a`.
    """
    cells = seed_mean(primary_rows(results, metric_kind, ("transfer",), pooled=True))
    index = {(r.model, r.learner, r.trained_on, r.evaluated_on): r for r in cells.itertuples(index=False)}
    rows = []
    for (model, learner, a, b), forward in sorted(index.items()):
        backward = index.get((model, learner, b, a))
        if a >= b or backward is None:
            continue
        f, g = estimate_of(forward), estimate_of(backward)
        comparable = metric_kind in ("efficiency", "relative") or \
            metric_units(forward.metric) == metric_units(backward.metric)
        diff = mover_difference(f, g) if comparable else Estimate(math.nan, 0, math.nan, math.nan)
        rows.append({"model": model, "learner": learner, "task_a": a, "task_b": b,
                     "a_to_b": f.value, "a_to_b_ci_low": f.ci_low, "a_to_b_ci_high": f.ci_high,
                     "b_to_a": g.value, "b_to_a_ci_low": g.ci_low, "b_to_a_ci_high": g.ci_high,
                     "difference": diff.value, "difference_ci_low": diff.ci_low, "difference_ci_high": diff.ci_high,
                     "disjoint": bool(f.ci_low > g.ci_high or g.ci_low > f.ci_high),
                     "metric_a_to_b": forward.metric, "metric_b_to_a": backward.metric})
    return pd.DataFrame(rows, columns=["model", "learner", "task_a", "task_b", "a_to_b", "a_to_b_ci_low",
                                       "a_to_b_ci_high", "b_to_a", "b_to_a_ci_low", "b_to_a_ci_high", "difference",
                                       "difference_ci_low", "difference_ci_high", "disjoint", "metric_a_to_b",
                                       "metric_b_to_a"])


def negative_transfer(results: pd.DataFrame) -> pd.DataFrame:
    """Transfer cells that hurt: the seed-averaged primary gain's CI lies entirely below zero.

    Returns
    -------
    DataFrame
        The cells (model, learner, trained_on, evaluated_on, metric, value, std, seeds, n,
        ci_low, ci_high), most harmful first.
    """
    cells = seed_mean(primary_rows(results, "gain", ("transfer",), pooled=True))
    hurt = cells[cells["ci_high"] < 0].sort_values(["value", "trained_on", "evaluated_on"])
    return hurt.drop(columns="condition").reset_index(drop=True)


def transfer_profiles(results: pd.DataFrame, model: str | None = None, learner: str | None = None) -> pd.DataFrame:
    """The source × target matrix of the primary gain, averaged over seeds.

    The diagonal holds the direct cells (trained and evaluated on the same task), the
    rest the transfer cells; a pair never run is NaN. With several models or learners in
    the table, name the one to show.
    """
    cells = seed_mean(primary_rows(results, "gain", ("transfer", "direct"), pooled=True))
    if cells.empty:
        raise ValueError("the results hold no transfer or direct cells with gain rows: nothing to tabulate")
    cells = _only(_only(cells, "model", model), "learner", learner)
    matrix = cells.pivot_table(index="trained_on", columns="evaluated_on", values="value", aggfunc="mean")
    return matrix.sort_index().sort_index(axis=1)
