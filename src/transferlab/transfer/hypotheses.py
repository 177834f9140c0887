"""A verdict for each of seed 002's hypotheses (H1 math -> code, H2 similarity, H3 SL vs RL,
H4 sequential vs joint), each with the estimate, its CI and the cells behind it.

A pure function of the tidy results table, its learner methods and the task similarity.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

import pandas as pd

from transferlab.stats import Estimate
from transferlab.transfer.analysis import (
    estimate_of,
    format_estimate,
    mover_difference,
    pooled,
    primary_rows,
    seed_mean,
    task_domain,
)
from transferlab.transfer.similarity import correlate

VERDICTS = ("supported", "not supported", "inconclusive", "not tested")


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
    interval = result.note or "95% bootstrap CI resampling tasks"
    evidence = (f"Spearman ρ = {format_estimate(estimate)} over {result.n} directed pairs of {result.tasks} tasks "
                f"({interval}; permutation p = {result.p:.3f})")
    decided = None
    if verdict(estimate, margin) == "supported" and not result.p < 0.05:
        decided = "inconclusive"  # the interval says yes, relabelling the tasks says it could be chance
        evidence += ": the CI excludes zero but the permutation test does not"
    return _row("H2", claim, evidence, estimate, result.n, decided=decided, margin=margin)


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
    learned = _learned_sources(cells, methods)
    diffs, parts, unlearned = [], [], set()
    for (model, source, target, method), r in sorted(keyed.items()):
        other = keyed.get((model, source, target, "sl"))
        if method != "rl" or other is None:
            continue
        missing = [m.upper() for m in ("rl", "sl") if (model, source, m) not in learned]
        if missing:  # an adapter that did not learn its source transfers nothing because it learned nothing
            unlearned.add(f"the {' and '.join(missing)} adapter on {source} ({model})")
            continue
        d = mover_difference(estimate_of(r), estimate_of(other))
        diffs.append(d)
        parts.append(f"{source} → {target} ({model}): RL − SL {format_estimate(d)}")
    if unlearned:
        parts.append(f"left out: {'; '.join(sorted(unlearned))} gained nothing on its own task (direct gain CI "
                     "includes zero or was not run)")
    if not diffs:
        reason = parts[-1] if unlearned else "no transfer cell was run with both an RL and an SL learner"
        return _row("H3", claim, reason, None, 0, "not tested")
    total = pooled(diffs)
    return _row("H3", claim, "; ".join(parts) + f"; mean RL − SL gain {format_estimate(total)}", total, len(diffs),
                margin=margin)


def _learned_sources(cells: pd.DataFrame, methods: Mapping[str, str] | None) -> set[tuple[str, str, str]]:
    """(model, source, 'rl' / 'sl') where that method's adapter gained on its own task (direct gain CI above
    zero, every learner of the method): H3 compares transfer only between adapters that learned."""
    direct = cells[(cells["condition"] == "direct") & (cells["trained_on"] == cells["evaluated_on"])]
    found: dict[tuple[str, str, str], bool] = {}
    for r in direct.itertuples(index=False):
        method = _method_of(r.learner, methods)
        if method is not None:
            key = (r.model, r.trained_on, method)
            found[key] = found.get(key, True) and bool(r.ci_low > 0)
    return {key for key, ok in found.items() if ok}


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
      a bootstrap CI resampling tasks, "supported" only when the
      task-permutation p-value is below 0.05 too. "not tested" without a similarity table or with fewer
      than 3 matched pairs.
    - H3: RL transfers better than SL: per transfer cell, the RL learners' gain minus the
      SL learners' gain (MOVER CI), averaged over cells run with both, where both methods'
      adapters gained on their own source (direct gain CI above zero): an adapter that learned
      nothing shows no transfer for that reason alone, and would pass for "less forgetting".
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
    cells = seed_mean(primary_rows(results, "gain", ("transfer", "direct", "sequential"), pooled=True))
    rows = [_h1(cells, domains, source_domain, target_domain, margin),
            _h2(cells, similarity, resamples, seed, margin),
            _h3(cells, methods, margin),
            _h4(cells, margin)]
    return pd.DataFrame(rows)
