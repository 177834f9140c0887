"""How the translation report writes its cells: a number, a value with its CI and BH q, a
gap_recovered cell with its †, the sample sizes, the NA-rule counts, and the wall time of a run's
invocations. Shared by the study's report and the wide-table (imported) report."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import pandas as pd

from transferlab.translation.gaps import RULES


def fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "NA"
    return f"{value:.{digits}f}"


def ci_cell(row: Any, col: str, digits: int = 3) -> str:
    value = row.get(col)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "NA"
    lo, hi, q = row.get(f"{col}_lo"), row.get(f"{col}_hi"), row.get(f"{col}_q")
    q_text = f", q {q:.3f}" if isinstance(q, float) and not math.isnan(q) else ""
    return f"{value:.{digits}f} [{fmt(lo, digits)}, {fmt(hi, digits)}]{q_text}"


def busy_seconds(runs: list[dict[str, Any]]) -> float:
    """Wall time of a run's invocations: the union of their [finished - wall, finished] spans,
    so two workers on one spec at once count once, and a pause between sittings not at all."""
    spans = sorted((end - r["wall_seconds"], end) for r in runs
                   for end in [datetime.fromisoformat(r["finished"]).timestamp()])
    total, reach = 0.0, -math.inf
    for start, end in spans:
        total += max(0.0, end - max(start, reach))
        reach = max(reach, end)
    return total


def sample_sizes(tasks: pd.DataFrame) -> str:
    low, high = int(tasks.n.min()), int(tasks.n.max())
    if low == high:
        return f"n={high} examples"
    small = ", ".join(f"{t.task} {int(t.n)}" for t in tasks.itertuples() if t.n < high)
    return f"n={high} examples per task, fewer where the test split holds fewer ({small})"


def gap_cell(row: Any, digits: int = 2, ci: bool = False) -> str:
    """A gap_recovered cell: NA, the value (with its CI), † when unstable."""
    if row is None or pd.isna(row.get("gap")):
        return "NA"
    bounds = ci and not (pd.isna(row.get("gap_lo")) and pd.isna(row.get("gap_hi")))
    text = ci_cell(row, "gap", digits) if bounds else fmt(row["gap"], digits)
    return text + ("†" if str(row.get("unstable")) == "True" else "")


def rule_counts(tasks: pd.DataFrame) -> str:
    """' (2 wrong sign, 7 below the minimum effect, ...)' from the tasks' NA rules."""
    if "gap_na_rule" not in tasks:
        return ""
    counts = tasks.gap_na_rule.fillna("").astype(str).value_counts()
    parts = [f"{counts[k]} {v}" for k, v in RULES.items() if k in counts]
    return f" ({', '.join(parts)})" if parts else ""
