"""Analyses of the transfer matrix (seed 002): asymmetry, negative transfer, task clusters
and a verdict for each of the proposal's hypotheses.

Everything here is a pure function of the tidy results table (`store.RESULT_COLUMNS`),
so an analysis can be redone from a CSV without a model. Each target is read in its
primary metric (`report.primary_metric`), and seeds are averaged the way the report
does: the value is the mean over seeds, `std` the spread between seeds, and the CI
bounds are the means of the per-seed bounds (an approximation; the seed spread is
reported next to it instead of being folded in).

The helpers (`task_domain`, `metric_units`, `primary_rows`, `seed_mean`, `pooled`,
`mover_difference`, `estimate_of`, `format_estimate`) are shared with `transferlab.drift`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from transferlab.analysis import Estimate
from transferlab.errors import TransferlabError, missing_package
from transferlab.report import primary_metric
from transferlab.similarity import correlate
from transferlab.store import RESULT_COLUMNS

KINDS = {"score": "", "gain": "gain:", "efficiency": "efficiency:", "relative": "relative:"}
VERDICTS = ("supported", "not supported", "inconclusive", "not tested")
CELL = ["model", "learner", "trained_on", "evaluated_on", "condition"]
# Metrics that are proportions in [0, 1], so gains measured in them share one unit.
_PROPORTION = re.compile(r"(acc|acc_norm|accuracy|exact_match(_\w+)?|em|f1|pass@\d+|(prompt|inst)_(strict|loose))")
_LINKAGES = ("single", "complete", "average", "weighted")


# ---- shared helpers over the tidy table ------------------------------------------------
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
                 conditions: Iterable[str] = ("transfer",)) -> pd.DataFrame:
    """Per-seed rows of one metric kind in each target's primary metric.

    Parameters
    ----------
    results : DataFrame
        The tidy results table.
    kind : {'gain', 'score', 'efficiency', 'relative'}
        Which family of rows to keep (`gain:m`, `m`, ...).
    conditions : iterable of str
        The conditions to keep, e.g. ('transfer', 'direct').

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
    out = frame[keep].copy()
    out["metric"] = bare[keep]
    return out.reset_index(drop=True)


def seed_mean(frame: pd.DataFrame, keys: list[str] | None = None) -> pd.DataFrame:
    """Average over seeds: value = mean, std = spread between seeds (0 for one seed),
    seeds = how many, CI bounds = mean of the per-seed bounds. A cell that is NA in any
    seed (a ratio over noise) is NA in the mean, not the mean of the other seeds."""
    keys = keys or [*CELL, "metric"]
    if frame.empty:
        return pd.DataFrame(columns=[*keys, "value", "std", "seeds", "n", "ci_low", "ci_high"])
    out = frame.groupby(keys, as_index=False, dropna=False).agg(
        value=("value", lambda v: v.mean(skipna=False)), std=("value", "std"), seeds=("seed", "nunique"), n=("n", "max"),
        ci_low=("ci_low", "mean"), ci_high=("ci_high", "mean"))
    out["std"] = out["std"].fillna(0.0).where(out["value"].notna())
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
    cells = seed_mean(primary_rows(results, metric_kind, ("transfer",)))
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
    cells = seed_mean(primary_rows(results, "gain", ("transfer",)))
    hurt = cells[cells["ci_high"] < 0].sort_values(["value", "trained_on", "evaluated_on"])
    return hurt.drop(columns="condition").reset_index(drop=True)


def transfer_profiles(results: pd.DataFrame, model: str | None = None, learner: str | None = None) -> pd.DataFrame:
    """The source × target matrix of the primary gain, averaged over seeds.

    The diagonal holds the direct cells (trained and evaluated on the same task), the
    rest the transfer cells; a pair never run is NaN. With several models or learners in
    the table, name the one to show.
    """
    cells = seed_mean(primary_rows(results, "gain", ("transfer", "direct")))
    if cells.empty:
        raise ValueError("the results hold no transfer or direct cells with gain rows: nothing to tabulate")
    cells = _only(_only(cells, "model", model), "learner", learner)
    matrix = cells.pivot_table(index="trained_on", columns="evaluated_on", values="value", aggfunc="mean")
    return matrix.sort_index().sort_index(axis=1)


@dataclass(frozen=True)
class TaskClusters:
    """Hierarchical clustering of tasks by their transfer profiles.

    Attributes
    ----------
    tasks : list of str
        The clustered tasks, in the order of the linkage's observations.
    linkage : ndarray
        The scipy linkage matrix.
    order : list of str
        The tasks in dendrogram leaf order (similar tasks adjacent).
    assignment : dict
        Task → flat cluster id (1-based, as scipy's `fcluster`).
    distances : DataFrame
        The task × task distance matrix that was clustered.
    features : DataFrame
        Each task's profile: `out:<t>` = its gain as a source on t, `in:<t>` = its gain as
        a target from t.
    """

    tasks: list[str]
    linkage: np.ndarray
    order: list[str]
    assignment: dict[str, int]
    distances: pd.DataFrame
    features: pd.DataFrame


def cluster_tasks(results: pd.DataFrame, method: str = "average", *, n_clusters: int | None = None,
                  model: str | None = None, learner: str | None = None) -> TaskClusters:
    """Cluster tasks by how they transfer, as sources and as targets.

    A task's profile is its row of the transfer matrix (what training on it does to every
    other task) followed by its column (what training on every other task does to it);
    the diagonal (direct training) is left out, so a task is not similar to another just
    by being easy to learn.

    NaN handling: cells never run are missing, not zero. The distance between two tasks
    is the Euclidean distance over the features both have, scaled up by
    sqrt(all features / shared features) (as scikit-learn's `nan_euclidean_distances`);
    two tasks with no feature in common are an error, never a guess.

    Parameters
    ----------
    results : DataFrame
        The tidy results table.
    method : {'average', 'single', 'complete', 'weighted'}
        The scipy linkage (methods that need raw Euclidean observations are refused).
    n_clusters : int, optional
        Cut the tree into this many clusters; by default it is cut at 0.7 × the highest
        merge, the threshold scipy's dendrogram colours by.
    model, learner : str, optional
        Which matrix to cluster when the table holds several.

    Returns
    -------
    TaskClusters
    """
    if method not in _LINKAGES:
        raise ValueError(f"linkage method {method!r} is not supported on a distance matrix with gaps: "
                         f"use one of {', '.join(_LINKAGES)}")
    try:
        from scipy.cluster.hierarchy import fcluster, leaves_list, linkage
        from scipy.spatial.distance import squareform
    except ImportError:
        raise missing_package("scipy", "clustering tasks") from None
    matrix = transfer_profiles(results, model, learner)
    tasks = sorted(set(matrix.index) | set(matrix.columns))
    if len(tasks) < 3:
        raise ValueError(f"clustering needs at least 3 tasks, the transfer matrix has {len(tasks)} "
                         f"({', '.join(tasks)}): add sources or targets")
    _check_one_unit(results, matrix.columns)
    values = matrix.reindex(index=tasks, columns=tasks).to_numpy(dtype=float, copy=True)
    np.fill_diagonal(values, np.nan)  # direct training says nothing about how tasks relate
    square = pd.DataFrame(values, index=tasks, columns=tasks)
    features = pd.concat([square.add_prefix("out:"), square.T.add_prefix("in:")], axis=1)
    x = features.to_numpy(dtype=float)
    empty = [t for t, row in zip(tasks, x) if np.isnan(row).all()]
    if empty:
        raise ValueError(f"no off-diagonal transfer cell involves {', '.join(empty)}: it cannot be placed")
    distances = np.zeros((len(tasks), len(tasks)))
    for i in range(len(tasks)):
        for j in range(i + 1, len(tasks)):
            shared = ~np.isnan(x[i]) & ~np.isnan(x[j])
            if not shared.any():
                raise ValueError(f"tasks {tasks[i]} and {tasks[j]} share no transfer cell, so their distance is "
                                 "unknown: run more pairs or leave one of them out")
            gap = float(np.sum((x[i, shared] - x[j, shared]) ** 2))
            distances[i, j] = distances[j, i] = math.sqrt(gap * x.shape[1] / shared.sum())
    tree = linkage(squareform(distances, checks=False), method=method)
    if n_clusters is not None:
        labels = fcluster(tree, t=n_clusters, criterion="maxclust")
    else:
        labels = fcluster(tree, t=0.7 * float(tree[:, 2].max()), criterion="distance")
    return TaskClusters(tasks=tasks, linkage=tree, order=[tasks[i] for i in leaves_list(tree)],
                        assignment={t: int(c) for t, c in zip(tasks, labels)},
                        distances=pd.DataFrame(distances, index=tasks, columns=tasks), features=features)


def _check_one_unit(results: pd.DataFrame, targets: Iterable[str]) -> None:
    """Refuse profiles whose targets' gains are in different units."""
    rows = primary_rows(results, "gain", ("transfer", "direct"))
    units = {t: metric_units(m) for t, m in zip(rows["evaluated_on"], rows["metric"]) if t in set(targets)}
    if len(set(units.values())) > 1:
        shown = ", ".join(f"{t}: {u}" for t, u in sorted(units.items()))
        raise ValueError(f"the targets' primary metrics are in different units ({shown}): distances would mix "
                         "them; cluster targets of one unit at a time")


# ---- hypotheses ------------------------------------------------------------------------
def verdict(estimate: Estimate, margin: float = 0.0) -> str:
    """'supported' when the CI lies above zero, 'not supported' when it lies at or below
    `margin` (the data rule out an effect larger than that), else 'inconclusive'."""
    if math.isnan(estimate.value) or math.isnan(estimate.ci_low) or math.isnan(estimate.ci_high):
        return "inconclusive"
    if estimate.ci_low > 0:
        return "supported"
    if estimate.ci_high <= margin:
        return "not supported"
    return "inconclusive"


def _row(hypothesis: str, claim: str, evidence: str, estimate: Estimate | None, cells: int,
         decided: str | None = None, margin: float = 0.0) -> dict:
    e = estimate or Estimate(math.nan, 0, math.nan, math.nan)
    return {"hypothesis": hypothesis, "claim": claim, "evidence": evidence, "estimate": e.value,
            "ci_low": e.ci_low, "ci_high": e.ci_high, "cells": cells,
            "verdict": decided or verdict(e, margin)}


def _method_of(learner: str, methods: Mapping[str, str] | None) -> str | None:
    """'rl' or 'sl' for a learner: from `methods`, else from its name's words (rl, grpo, ppo / sl, sft)."""
    if methods is not None:
        return methods.get(learner)
    words = set(re.split(r"[^a-z0-9]+", learner.lower()))
    rl, sl = bool(words & {"rl", "grpo", "ppo"}), bool(words & {"sl", "sft"})
    return "rl" if rl and not sl else "sl" if sl and not rl else None


def _h1(cells: pd.DataFrame, domains: Mapping[str, str] | None, source: str, target: str, margin: float) -> dict:
    claim = f"{source} → {target} transfer is positive"
    picked = cells[(cells["condition"] == "transfer")
                   & (cells["trained_on"].map(lambda t: task_domain(t, domains)) == source)
                   & (cells["evaluated_on"].map(lambda t: task_domain(t, domains)) == target)]
    if picked.empty:
        return _row("H1", claim, f"no transfer cell from a {source} task to a {target} task", None, 0, "not tested")
    estimates = [estimate_of(r) for _, r in picked.iterrows()]
    parts = [f"{r.trained_on} → {r.evaluated_on} ({r.model}, {r.learner}): {format_estimate(e)}"
             for r, e in zip(picked.itertuples(), estimates)]
    total = pooled(estimates)
    return _row("H1", claim, "; ".join(parts) + f"; mean gain {format_estimate(total)}", total, len(estimates),
                margin=margin)


def _h2(cells: pd.DataFrame, similarity: pd.DataFrame | None, resamples: int, seed: int, margin: float) -> dict:
    claim = "transfer gain rises with task similarity (Spearman ρ > 0)"
    if similarity is None:
        return _row("H2", claim, "no similarity table was given", None, 0, "not tested")
    missing = [c for c in ("task_a", "task_b", "similarity") if c not in similarity.columns]
    if missing:
        raise ValueError(f"the similarity table lacks the columns {', '.join(missing)}: "
                         "it needs task_a, task_b, similarity")
    # Similarity is symmetric; transfer is directed: one point per directed pair, with its
    # gain averaged over models, learners and seeds.
    pairs = similarity[["task_a", "task_b", "similarity"]]
    both_ways = pd.concat([pairs, pairs.rename(columns={"task_a": "task_b", "task_b": "task_a"})])
    both_ways = both_ways[both_ways["task_a"] != both_ways["task_b"]].drop_duplicates(["task_a", "task_b"])
    transfer = cells[cells["condition"] == "transfer"]
    gains = (transfer.groupby(["trained_on", "evaluated_on"])["value"].mean().reset_index()
             .rename(columns={"trained_on": "source", "evaluated_on": "target"}))
    result = correlate(both_ways, gains, resamples, seed)
    if result.reason:
        return _row("H2", claim, result.reason, None, result.n, "not tested")
    estimate = Estimate(result.rho, result.n, result.ci_low, result.ci_high)
    evidence = (f"Spearman ρ = {format_estimate(estimate)} over {result.n} directed task pairs "
                "(95% bootstrap CI over pairs)")
    return _row("H2", claim, evidence, estimate, result.n, margin=margin)


def _h3(cells: pd.DataFrame, methods: Mapping[str, str] | None, margin: float) -> dict:
    claim = "RL-trained adapters transfer more than SL-trained ones"
    transfer = cells[cells["condition"] == "transfer"].copy()
    transfer["method"] = transfer["learner"].map(lambda name: _method_of(name, methods))
    found = sorted(set(transfer["method"].dropna()))
    if found != ["rl", "sl"]:
        return _row("H3", claim, f"transfer cells of RL and SL learners are both needed; found "
                                 f"{', '.join(found) or 'neither'} (learners: "
                                 f"{', '.join(sorted(transfer['learner'].unique())) or 'none'})", None, 0, "not tested")
    # Several learners of one method: their gains and CI bounds are averaged per cell.
    per = transfer.groupby(["model", "trained_on", "evaluated_on", "method"], as_index=False).agg(
        value=("value", "mean"), n=("n", "max"), ci_low=("ci_low", "mean"), ci_high=("ci_high", "mean"))
    keyed = {(r.model, r.trained_on, r.evaluated_on, r.method): r for r in per.itertuples(index=False)}
    diffs, parts = [], []
    for (model, source, target, method), r in sorted(keyed.items()):
        other = keyed.get((model, source, target, "sl"))
        if method != "rl" or other is None:
            continue
        d = mover_difference(estimate_of(r), estimate_of(other))
        diffs.append(d)
        parts.append(f"{source} → {target} ({model}): RL − SL {format_estimate(d)}")
    if not diffs:
        return _row("H3", claim, "no transfer cell was run with both an RL and an SL learner", None, 0, "not tested")
    total = pooled(diffs)
    return _row("H3", claim, "; ".join(parts) + f"; mean RL − SL gain {format_estimate(total)}", total, len(diffs),
                margin=margin)


def _h4(cells: pd.DataFrame, margin: float) -> dict:
    claim = "training on A then B beats training on B alone, evaluated on B"
    direct = {(r.model, r.learner, r.evaluated_on): r for r in cells[cells["condition"] == "direct"].itertuples()}
    diffs, parts = [], []
    for r in cells[cells["condition"] == "sequential"].itertuples():
        partner = direct.get((r.model, r.learner, r.evaluated_on))
        if partner is None:
            continue
        d = mover_difference(estimate_of(r), estimate_of(partner))
        diffs.append(d)
        parts.append(f"{r.trained_on} vs {r.evaluated_on} alone ({r.model}, {r.learner}): {format_estimate(d)}")
    if not diffs:
        return _row("H4", claim, "no sequential cell has a direct cell of the same target, model and learner",
                    None, 0, "not tested")
    total = pooled(diffs)
    return _row("H4", claim, "; ".join(parts) + f"; mean sequential − direct gain {format_estimate(total)}", total,
                len(diffs), margin=margin)


def hypothesis_table(results: pd.DataFrame, *, methods: Mapping[str, str] | None = None,
                     similarity: pd.DataFrame | None = None, domains: Mapping[str, str] | None = None,
                     source_domain: str = "math", target_domain: str = "code", margin: float = 0.0,
                     resamples: int = 1000, seed: int = 0) -> pd.DataFrame:
    """What the results say about the four hypotheses of the transfer proposal (seed 002).

    - H1: transfer from `source_domain` tasks to `target_domain` tasks is positive: the
      mean primary gain of those transfer cells.
    - H2: transfer correlates with similarity: Spearman's ρ between `similarity` and the
      gain of each directed transfer pair (gains averaged over models and learners), with
      a bootstrap CI over pairs. "not tested" without a similarity table or with fewer
      than 3 matched pairs.
    - H3: RL transfers better than SL: per transfer cell, the RL learners' gain minus the
      SL learners' gain (MOVER CI), averaged over cells run with both.
    - H4: sequential training helps: per sequential cell A>B, its gain on B minus the
      direct (B only) gain, averaged.

    Pooled estimates average the values and the CI bounds (see `pooled`). Verdicts come
    from `verdict`: "supported" when the CI is above zero, "not supported" when it is at or
    below `margin`, "inconclusive" otherwise, "not tested" when the cells are absent.

    Parameters
    ----------
    results : DataFrame
        The tidy results table.
    methods : mapping, optional
        Learner name → 'rl' or 'sl'. Without it a learner's method is read from the words
        of its name ('rl', 'grpo', 'ppo' / 'sl', 'sft'); names with both or neither count
        for no method.
    similarity : DataFrame, optional
        Columns task_a, task_b, similarity (unordered pairs).
    domains : mapping, optional
        Task → domain, overriding the registered tasks' domains (for H1).
    source_domain, target_domain : str
        The domains of H1.
    margin : float
        The largest effect still counted as no effect (for "not supported").
    resamples, seed : int
        The bootstrap of H2.

    Returns
    -------
    DataFrame
        One row per hypothesis: hypothesis, claim, evidence, estimate, ci_low, ci_high,
        cells, verdict.
    """
    cells = seed_mean(primary_rows(results, "gain", ("transfer", "direct", "sequential")))
    rows = [_h1(cells, domains, source_domain, target_domain, margin),
            _h2(cells, similarity, resamples, seed, margin),
            _h3(cells, methods, margin),
            _h4(cells, margin)]
    return pd.DataFrame(rows)
