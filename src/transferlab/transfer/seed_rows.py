"""A transfer run's analogues of seed 002's and seed 004's numbers, for the "compared with the seed" table.

- seed 004 (capability drift): an adapter labelled instruction_following, scored on a numeric
  (math-domain) target and on IFEval (ILA = `inst_strict`, PLA = `prompt_strict`): the base
  model's score, the adapter's, and the paired gain, each with its CI.
- seed 002 (a proposal): transfer efficiency of each transfer cell whose source and target
  domains are two of the proposal's (math, code, physics/science, logic), beside its
  hypothetical value; and the mean over every transfer cell's defined efficiency.

Seeds combine as the report does: the row pooled over seeds when the study wrote one, the only
seed's row otherwise, else the mean of the seeds' values and bounds (said in `detail`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from transferlab.engine.store import POOLED
from transferlab.seed_numbers import SEED_002_DOMAIN_OF, Ours
from transferlab.transfer.analysis import task_domain

INSTRUCTION = "instruction_following"
IFEVAL_METRICS = {"ila": "inst_strict", "pla": "prompt_strict"}


def _combined(rows: pd.DataFrame) -> tuple[float, float, float, int, str]:
    """(value, low, high, n, note) of one cell's rows over seeds."""
    pooled = rows[rows["seed"] == POOLED]
    if len(pooled):
        r = pooled.iloc[0]
        return r["value"], r["ci_low"], r["ci_high"], int(r["n"]), f"pooled over {rows['seed'].nunique() - 1} seeds"
    if len(rows) == 1:
        r = rows.iloc[0]
        return r["value"], r["ci_low"], r["ci_high"], int(r["n"]), f"seed {int(r['seed'])}"
    note = f"mean of {len(rows)} seeds' values and CI bounds"
    value = rows["value"].mean(skipna=False)
    return value, rows["ci_low"].mean(), rows["ci_high"].mean(), int(rows["n"].max()), note


def _estimate(results: pd.DataFrame, metric: str, detail: str, **where: str) -> Ours | None:
    keep = results["metric"] == metric
    for column, value in where.items():
        keep &= results[column] == value
    rows = results[keep]
    if rows.empty:
        return None
    value, low, high, n, seeds = _combined(rows)
    return Ours(value, low, high, f"{detail} ({metric}, n={n}, {seeds})")


def _seed_004(results: pd.DataFrame, labels: Mapping[str, str] | None) -> list[tuple[str, Ours]]:
    labels = dict(labels or {})
    trained = results[results["condition"].isin(["transfer", "direct"])]
    adapters = sorted({s for s in trained["trained_on"] if (labels.get(s) or task_domain(s)) == INSTRUCTION})
    ifeval = sorted(set(results.loc[results["metric"] == "inst_strict", "evaluated_on"]))
    numeric = sorted({t for t in results["evaluated_on"] if task_domain(t) == "math"})
    rows: list[tuple[str, Ours]] = []
    for model in sorted(results["model"].unique()):
        mine = results[results["model"] == model]
        targets = [("numeric", t, None) for t in numeric]
        targets += [(k, t, m) for t in ifeval for k, m in IFEVAL_METRICS.items()]
        for key, target, metric in targets:
            metric = metric or _primary(mine, target)
            base = _estimate(mine, metric, f"{model} base model on {target}", evaluated_on=target, condition="baseline")
            for adapter in adapters:
                for learner in sorted(set(trained.loc[trained["trained_on"] == adapter, "learner"])):
                    where = dict(evaluated_on=target, trained_on=adapter, learner=learner)
                    what = f"{model} + {learner} adapter trained on {adapter} (label {INSTRUCTION}), on {target}"
                    score = _estimate(mine, metric, what, **where)
                    gain = _estimate(mine, f"gain:{metric}", what, **where)
                    if score is None:
                        continue
                    rows += [(f"004.{key}.base", base)] if base is not None else []
                    rows += [(f"004.{key}.adapter", score)] + ([(f"004.{key}.gain", gain)] if gain is not None else [])
    return _unique(rows)


def _primary(results: pd.DataFrame, target: str) -> str:
    from transferlab.transfer.analysis import primary_metric

    bare = results.loc[results["evaluated_on"] == target, "metric"].str.split(":").str[-1]
    return primary_metric(target, sorted(bare.unique()))


def _unique(rows: list[tuple[str, Ours]]) -> list[tuple[str, Ours]]:
    """Drop repeated (key, detail) rows (a base score shared by several adapters), keeping order."""
    seen, out = set(), []
    for key, ours in rows:
        if (key, ours.detail) not in seen:
            seen.add((key, ours.detail))
            out.append((key, ours))
    return out


def _degenerate_cells(cells: pd.DataFrame | None) -> set[tuple]:
    """(model, learner, trained_on, evaluated_on) of transfer cells flagged † in any seed."""
    if cells is None or cells.empty or "degenerate" not in cells:
        return set()
    flagged = cells[(cells["condition"] == "transfer") & (cells["template"] == "default") & cells["degenerate"]]
    return set(flagged[["model", "learner", "trained_on", "evaluated_on"]].itertuples(index=False, name=None))


def _seed_002(metrics: pd.DataFrame, cells: pd.DataFrame | None = None) -> list[tuple[str, Ours]]:
    """Efficiency of the transfer cells; the mean leaves out † cells: a degenerate predictor's
    ratio is the answer prior's score over the direct score, not transfer."""
    efficiency = metrics[(metrics["quantity"] == "efficiency") & (metrics["condition"] == "transfer")
                         & (metrics["template"] == "default")]
    degenerate = _degenerate_cells(cells)
    rows, values, left_out = [], [], 0
    keys = ["model", "learner", "trained_on", "evaluated_on", "metric"]
    for key, group in efficiency.groupby(keys, sort=True):
        cell = dict(zip(keys, key))
        value, low, high, n, seeds = _combined(group)
        reason = "" if not pd.isna(value) else f"NA: {group['na_reason'].iloc[0]}; "
        flagged = key[:4] in degenerate
        if flagged:
            reason += "† degenerate predictor, not a finding; "
            left_out += 1
        else:
            values.append(value)
        source = SEED_002_DOMAIN_OF.get(task_domain(cell["trained_on"]))
        target = SEED_002_DOMAIN_OF.get(task_domain(cell["evaluated_on"]))
        if source and target and source != target:
            rows.append((f"002.efficiency.{source}.{target}", Ours(value, low, high, (
                f"{reason}{cell['model']}, {cell['learner']}: {cell['trained_on']} -> {cell['evaluated_on']} "
                f"({cell['metric']}, n={n}, {seeds})"))))
    if values or left_out:
        defined = [v for v in values if not pd.isna(v)]
        total = len(values) + left_out
        skipped = f", leaving out {left_out} degenerate (†)" if left_out else ""
        detail = (f"mean of the {len(defined)} defined of {total} transfer cells{skipped} (range {min(defined):.3f} "
                  f"to {max(defined):.3f}); no CI: the cells share targets and direct adapters"
                  if defined else f"none of the {total} transfer cells has a defined efficiency{skipped} (NA: its "
                                  "direct score's CI reaches chance)")
        rows.append(("002.efficiency.mean", Ours(sum(defined) / len(defined) if defined else math.nan,
                                                 detail=detail)))
    return rows


def seed_rows(results: pd.DataFrame, metrics: pd.DataFrame, labels: Mapping[str, str] | None = None,
              cells: pd.DataFrame | None = None) -> list[tuple[str, Ours]]:
    """Our (seed number key, value) pairs: seed 004's analogues first (read from `results`, which
    also holds IFEval's non-primary ILA), then seed 002's (from `tables.metric_table`; `cells`,
    from `tables.cell_table`, says which transfer cells are degenerate)."""
    return _seed_004(results, labels) + _seed_002(metrics, cells)


def our_setup(results: pd.DataFrame, run_dir: Path | None = None) -> str:
    """Model, learners (from the run's spec.json when there is one), targets, n and seeds."""
    parts = [", ".join(sorted(results["model"].unique()))]
    spec: dict = {}
    if run_dir is not None:
        try:
            spec = json.loads((run_dir / "spec.json").read_text())
        except (OSError, ValueError):
            spec = {}
    for learner in spec.get("learners", []) if isinstance(spec, dict) else []:
        t = learner.get("train", learner) if isinstance(learner, dict) else {}
        parts.append(f"learner {learner.get('name')} ({learner.get('type')}: r={t.get('rank')}, "
                     f"lr={t.get('learning_rate')}, {t.get('steps') or 'one epoch of'} steps x batch "
                     f"{t.get('batch_size')})")
    if not spec:
        learners = sorted(set(results["learner"]) - {"-"})
        parts.append(f"learners {', '.join(learners)} (no spec.json beside the report: sizes not known here)")
    budgets = spec.get("budgets", {}) if isinstance(spec, dict) else {}
    if budgets.get("train_examples"):
        parts.append(f"{budgets['train_examples']} training examples")
    n = results[results["condition"] == "baseline"].groupby("evaluated_on")["n"].max()
    parts.append("targets " + ", ".join(f"{t} (n={int(v)})" for t, v in n.items()))
    seeds = sorted(set(results["seed"]) - {POOLED})
    parts.append(f"{len(seeds)} seed{'s' if len(seeds) != 1 else ''}; 95% paired bootstrap CIs")
    return "; ".join(parts)
