"""Summarise a transfer run: from the stored per-example evaluations to the tidy results table.

For every cell: the score with its bootstrap CI, the gain over the baseline with a paired
CI, and for transfer-like cells the efficiency and relative transfer against the direct
cell. Seed 002's secondary metrics follow: each cell's score and gain under every extra
prompt template (`template:<name>:...`) with the spread and sign verdict over templates
(`transfer.robustness`), and the gain per training token and FLOP (`transfer.efficiency`).
Only the driver runs this, after the jobs: it reads artifacts and writes rows.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from transferlab.engine.store import NONE, POOLED, ResultRow, Store
from transferlab.predictions import flipped_share, majority_share, predicted_answers, predicted_choices
from transferlab.stats import (
    Estimate,
    align,
    bootstrap_mean,
    hierarchical_mean,
    hierarchical_ratio,
    paired_difference,
    paired_ratio,
)
from transferlab.tasks import get_task
from transferlab.transfer.efficiency import efficiency_rows, training_cost
from transferlab.transfer.plan import Cell, Plan
from transferlab.transfer.robustness import robustness_rows, template_metric


Loader = Callable[[str], "dict | None"]


def _evaluation_loader(store: Store) -> Loader:
    """Each evaluation verified and parsed once, however many cells share it (baselines do)."""
    loaded: dict[str, dict | None] = {}

    def load(key: str) -> dict | None:
        if key not in loaded:
            loaded[key] = store.read_json("evaluation", key, "evaluation.json") if store.has("evaluation", key) else None
        return loaded[key]

    return load


NA = float("nan")


def summarise(plan: Plan, store: Store, resamples: int = 1000) -> int:
    """Write score and gain rows for every cell whose evaluations exist, and for transfer
    cells the normalised metrics (efficiency, relative transfer); returns the row count."""
    rows: list[ResultRow] = []
    load = _evaluation_loader(store)
    per_seed: dict[tuple, list[tuple[list[float], list[float] | None]]] = {}  # what pools over seeds
    ratios: dict[tuple, list[tuple[list[float], list[float], list[float] | None] | None]] = {}
    direct = {(c.model, c.learner, c.seed, c.evaluated_on): c for c in plan.cells if c.condition == "direct"}
    for cell in plan.cells + plan.variants:
        framed = cell.template != "default"  # a variant: scores and gains only, named template:<name>:...
        if cell.condition in ("transfer", "sequential", "joint") and not framed:
            partner = direct.get((cell.model, cell.learner, cell.seed, cell.evaluated_on))
            if partner is not None:
                rows += _normalised(cell, partner, load, resamples, ratios)
        result = load(cell.evaluation)
        if result is None:
            continue
        base = load(cell.baseline)
        task = get_task(cell.evaluated_on)
        if not framed:
            rows += _degenerate_rows(cell, task, result, base if cell.condition != "baseline" else None)
        for metric in task.metrics:
            scores = result["scores"][metric]
            weights = result.get("weights", {}).get(metric)
            name = template_metric(cell.template, metric)
            rows.append(_row(cell, name, bootstrap_mean(scores, resamples, seed=cell.seed, weights=weights)))
            if cell.condition != "baseline" and base is not None:
                shared, treated, control = align(result["uids"], scores, base["uids"], base["scores"][metric])
                paired_weights = [weights[i] for i in shared] if weights else None
                gain = paired_difference(treated, control, resamples, cell.seed, weights=paired_weights)
                rows.append(_row(cell, template_metric(cell.template, f"gain:{metric}"), gain))
                if not framed:  # the gain's p-value, so the report can control the false discovery rate
                    rows.append(_row(cell, f"p:gain:{metric}", Estimate(gain.p, gain.n, NA, NA)))
                key = (cell.model, cell.learner, cell.trained_on, cell.evaluated_on, cell.condition)
                per_seed.setdefault((*key, name), []).append((scores, weights))
                per_seed.setdefault((*key, template_metric(cell.template, f"gain:{metric}")), []).append(
                    ([t - c for t, c in zip(treated, control)], paired_weights))
    rows += _pooled(per_seed, resamples) + _pooled_ratios(ratios, resamples)
    rows += robustness_rows(rows) + efficiency_rows(rows, _costs(plan, store))
    return store.add_results(rows)


def _costs(plan: Plan, store: Store) -> dict[tuple, Any]:
    """The training cost of every trained cell's adapter (`transfer.efficiency.training_cost`)."""
    jobs = {j.key: j for j in plan.jobs}
    trainings = {k: j.params for k, j in jobs.items() if j.kind == "train"}
    by_adapter: dict[str, Any] = {}  # each adapter's artifact verified and read once
    costs: dict[tuple, Any] = {}
    for cell in plan.cells:
        adapter = jobs[cell.evaluation].params.get("adapter") if cell.evaluation in jobs else None
        if adapter and adapter not in by_adapter:
            by_adapter[adapter] = training_cost(store, adapter, trainings, cell.model)
        if adapter and by_adapter[adapter] is not None:
            costs[(cell.model, cell.learner, cell.trained_on, cell.evaluated_on, cell.condition, cell.seed)] = \
                by_adapter[adapter]
    return costs


def _degenerate_rows(cell: Cell, task: Any, result: dict, base: dict | None) -> list[ResultRow]:
    """`share:majority` (the most common answer's share) and, for trained cells of choice tasks,
    `share:flipped` (choices that differ from the base model's), where the answers are known."""
    answers = predicted_answers(task, result)
    if answers is None:
        return []
    n = len(answers)
    rows = [_row(cell, "share:majority", Estimate(majority_share(answers), n, NA, NA))]
    predicted = predicted_choices(task, result)
    base_predicted = predicted_choices(task, base) if base is not None else None
    if predicted is not None and base_predicted is not None:
        flipped = flipped_share(result["uids"], predicted, base["uids"], base_predicted)  # type: ignore[index]
        rows.append(_row(cell, "share:flipped", Estimate(flipped, n, NA, NA)))
    return rows


def _pooled(per_seed: dict[tuple, list[tuple[list[float], list[float] | None]]], resamples: int) -> list[ResultRow]:
    """Rows pooled over seeds (seed = POOLED) for every cell trained with two or more seeds: the
    hierarchical bootstrap over seeds, then examples. The report reads these, never an average
    of the seeds' own bounds."""
    rows = []
    for (model, learner, trained_on, evaluated_on, condition, metric), parts in per_seed.items():
        if len(parts) < 2:
            continue
        est = hierarchical_mean([s for s, _ in parts], resamples, seed=0, weights=[w for _, w in parts])
        cell = Cell(model, learner, trained_on, evaluated_on, condition, POOLED, "", "")
        rows.append(_row(cell, metric, est))
        if metric.startswith("gain:"):
            rows.append(_row(cell, f"p:{metric}", Estimate(est.p, est.n, NA, NA)))
    return rows


def _pooled_ratios(ratios: dict[tuple, list], resamples: int) -> list[ResultRow]:
    """Efficiency and relative transfer pooled over seeds (seed = POOLED); NA if NA in any seed."""
    rows = []
    for (model, learner, trained_on, evaluated_on, condition, metric), parts in ratios.items():
        if len(parts) < 2:
            continue
        cell = Cell(model, learner, trained_on, evaluated_on, condition, POOLED, "", "")
        if any(p is None for p in parts):
            rows.append(_row(cell, metric, Estimate(NA, 0, NA, NA)))
            continue
        rows.append(_row(cell, metric, hierarchical_ratio([p[0] for p in parts], [p[1] for p in parts], resamples,
                                                          seed=0, weights=[p[2] for p in parts])))
    return rows


def _normalised(cell: Cell, direct: Cell, load: Loader, resamples: int,
                ratios: dict[tuple, list] | None = None) -> list[ResultRow]:
    """Transfer efficiency = transfer / direct, and relative transfer (gap recovered) =
    (transfer - base) / (direct - base), paired over the examples all three share.

    Each is NA when its denominator is within noise of what it is compared with: efficiency
    when the direct score's CI reaches the task's chance level (a direct score of 0.30 with
    chance 0.25 is no score to divide by), relative transfer when the direct gain's CI
    includes zero (the oracle itself gained nothing measurable). A ratio over noise would
    be meaningless.
    """
    evaluations = [load(k) for k in (cell.evaluation, direct.evaluation, cell.baseline)]
    if any(e is None for e in evaluations):
        return []
    transfer, oracle, base = evaluations
    rows = []
    task = get_task(cell.evaluated_on)
    scored = set(transfer["uids"])
    chance = task.chance_level([e for e in task.examples(transfer.get("split", "test")) if e.uid in scored])
    for metric in task.metrics:
        index = [{u: i for i, u in enumerate(e["uids"])} for e in (oracle, base)]
        shared = [i for i, u in enumerate(transfer["uids"]) if all(u in ix for ix in index)]
        pick = lambda e, ix: [e["scores"][metric][ix[transfer["uids"][i]]] for i in shared]  # noqa: E731
        t = [transfer["scores"][metric][i] for i in shared]
        d, b = pick(oracle, index[0]), pick(base, index[1])
        weights = transfer.get("weights", {}).get(metric)
        w = [weights[i] for i in shared] if weights else None
        direct_score = bootstrap_mean(d, resamples, cell.seed, weights=w)
        efficiency = (paired_ratio(t, d, resamples, cell.seed, weights=w) if direct_score.ci_low > chance
                      else Estimate(NA, len(shared), NA, NA))
        rows.append(_row(cell, f"efficiency:{metric}", efficiency))
        key = (cell.model, cell.learner, cell.trained_on, cell.evaluated_on, cell.condition)
        if ratios is not None:
            ratios.setdefault((*key, f"efficiency:{metric}"), []).append(
                (t, d, w) if direct_score.ci_low > chance else None)
        direct_gain = paired_difference(d, b, resamples, cell.seed, weights=w)
        if direct_gain.significant:
            gap = paired_ratio([x - y for x, y in zip(t, b)], [x - y for x, y in zip(d, b)], resamples, cell.seed,
                               weights=w)
        else:
            gap = Estimate(NA, len(shared), NA, NA)
        rows.append(_row(cell, f"relative:{metric}", gap))
        if ratios is not None:
            ratios.setdefault((*key, f"relative:{metric}"), []).append(
                ([x - y for x, y in zip(t, b)], [x - y for x, y in zip(d, b)], w) if direct_gain.significant else None)
    return rows


def _row(cell: Cell, metric: str, est) -> ResultRow:
    return ResultRow(model=cell.model, learner=cell.learner or NONE, trained_on=cell.trained_on or NONE,
                     evaluated_on=cell.evaluated_on, condition=cell.condition, seed=cell.seed, metric=metric,
                     value=est.value, n=est.n, ci_low=est.ci_low, ci_high=est.ci_high)
