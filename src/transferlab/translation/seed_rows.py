"""The translation report's "compared with the seed" section: seed 000's main table and success
criteria, and seed 001's LoRA panel, beside ours (`report/tables/seed_comparison.csv`).

Our means over held-out tasks get a 95% CI that resamples tasks (the seed's numbers are also
averages over a handful of tasks, and which tasks were held out is the main source of spread);
the seed gives no CIs. The seed's per-method means are computed from its printed main table.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from transferlab.seed_numbers import (SEED_000_METHODS, SEED_000_MIN_EFFECT, Ours, comparison_markdown,
                                      comparison_table, seed_001_rows, write_comparison)
from transferlab.stats import bootstrap_mean

# The seed's column -> (our table, our column or method). Its top-k columns use k = 8, as ours do by default.
METHOD_OF = {"base_Y": ("tasks", "base_y"), "oracle": ("tasks", "oracle"),
             "topk8_global_ridge": ("main", "topk_global_ridge"),
             "topk8_pertensor_ridge": ("main", "topk_pertensor_ridge")}
TASK_CI = "95% CI resampling held-out tasks"


def _over_tasks(values: pd.Series, detail: str) -> Ours | None:
    values = pd.to_numeric(values, errors="coerce").dropna()
    if values.empty:
        return None
    est = bootstrap_mean(values.to_list(), 1000, seed=0)
    return Ours(est.value, est.ci_low, est.ci_high, f"{detail}, over {len(values)} held-out tasks; {TASK_CI}")


def _main_scores(main: pd.DataFrame, method: str) -> pd.Series:
    rows = main[main["method"] == method]
    return rows.set_index("held_out")["score"] if "score" in rows else pd.Series(dtype=float)


def seed_000_rows(tasks: pd.DataFrame, main: pd.DataFrame, summary: dict[str, Any], min_effect: float) -> list:
    rows: list[tuple[str, Ours | None]] = []
    best = summary.get("best_learned_method")
    if best:
        diff = (_main_scores(main, best) - _main_scores(main, "mean")).dropna()
        rows.append(("000.best_minus_mean", _over_tasks(diff, f"{best} (the best learned method) minus mean")))
    for method in SEED_000_METHODS:
        table, ours = METHOD_OF.get(method, ("main", method))
        values = tasks.set_index("task")[ours] if table == "tasks" and ours in tasks else _main_scores(main, ours)
        rows.append((f"000.mean_score.{method}", _over_tasks(values, f"{ours}, mean score")))
    if "oracle_gain" in tasks:
        rows.append(("000.oracle_gain.mean", _over_tasks(tasks["oracle_gain"], "oracle - base_Y")))
        defined = tasks["gap_na_rule"].fillna("").astype(str).eq("") if "gap_na_rule" in tasks else \
            pd.to_numeric(tasks["oracle_gain"], errors="coerce") >= min_effect
        ours = _over_tasks(defined.astype(float), f"{int(defined.sum())} of {len(defined)} tasks: oracle gain at least "
                           f"{min_effect:g} and its CI above 0")
        rows.append(("000.oracle_gain.defined", ours))
    domains = summary.get("best_domain_gap_recovered") or {}
    if best and domains:
        text = ", ".join(f"{d} {'NA' if v is None or (isinstance(v, float) and math.isnan(v)) else f'{v:.3f}'}"
                         for d, v in domains.items())
        rows.append(("000.domain_gap", Ours(math.nan, detail=f"{best}: {text} (NA and unstable cells left out)")))
    return [(k, o) for k, o in rows if o is not None]


def our_setup(summary: dict[str, Any], spec: dict[str, Any], tasks: pd.DataFrame, min_effect: float) -> str:
    parts = [f"X = {summary.get('model_x')} -> Y = {summary.get('model_y')}"]
    anchor = spec.get("anchor") if isinstance(spec, dict) else None
    if anchor:
        parts.append(f"LoRA r={anchor.get('rank')}, alpha={anchor.get('alpha')}, "
                     f"{'+'.join(anchor.get('target_modules', []))}, lr {anchor.get('learning_rate')}, "
                     f"{anchor.get('steps') or 'one epoch of'} steps x batch {anchor.get('batch_size')}, "
                     f"{spec.get('budgets', {}).get('train_examples')} training examples")
    else:
        parts.append("anchor settings not recorded in this directory (no spec.json)")
    domains = summary.get("domains", {})
    parts.append(f"{len(tasks)} held-out tasks in {len(domains)} domains ({', '.join(domains)})")
    if "n" in tasks and len(tasks):
        low, high = int(tasks["n"].min()), int(tasks["n"].max())
        parts.append(f"n = {high if low == high else f'{low}-{high}'} test examples per task, paired bootstrap CIs")
    parts.append(f"minimum oracle effect {min_effect:g}" + (f" (the seed-000 row above uses {SEED_000_MIN_EFFECT:g})"
                                                            if min_effect != SEED_000_MIN_EFFECT else ""))
    return "; ".join(parts)


def seed_section(out: Path, tasks: pd.DataFrame, main: pd.DataFrame, summary: dict[str, Any], matrix: pd.DataFrame,
                 spec: dict[str, Any], min_effect: float) -> list[str]:
    """Write out/tables/seed_comparison.csv and return its Markdown section."""
    from transferlab.seed001_figure import lora_cells

    rows = seed_000_rows(tasks, main, summary, min_effect)
    if len(matrix):
        cells = lora_cells(matrix)
        rows += seed_001_rows("lora", [(r.model, r.trained_on, Ours(r.value, r.ci_low, r.ci_high,
                                                                    f"LoRA alone, no prompt; {r.note}"))
                                       for r in cells.itertuples()])
    frame = comparison_table(rows, our_setup(summary, spec, tasks, min_effect))
    path = write_comparison(frame, out / "tables")
    return comparison_markdown(frame) + [f"The section's table as CSV: [`tables/{path.name}`](tables/{path.name}); the "
                                         "study's tidy tables are the run's `tables/*.csv`.", ""]
