"""The transfer report's tidy tables (`<report>/tables/`), drawn from the results table alone.

- `cells.csv`: one row per (model, learner, trained_on, evaluated_on, condition, template, seed)
  in the target's primary metric: the score with its 95% CI and n, the gain over the base model
  with its CI, the gain's p- and BH q-value, and the flags the report draws (`*` significant,
  `†` degenerate predictor). `seed` = -1 is the row pooled over seeds (hierarchical bootstrap),
  as in the results table; the report's matrices show it where it exists.
- `metrics.csv`: the derived rows of the same cells, one per (cell, quantity): transfer
  efficiency, relative transfer, gain per training token / PFLOP, training cost, template
  spread and sign; NA values carry the reason.
- `drift.csv`: the capability-drift table (one row per adapter), when the run has one.

q-values use the report's families: one per (model, learner, seed) over the default template's
gain cells (`analysis.gain_qvalues`); template variants have no p-values, so their `*` is the CI
excluding zero. The full results table (every metric) is `transferlab results export RUN`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from transferlab.predictions import is_degenerate
from transferlab.transfer.analysis import ALPHA, primary_metric
from transferlab.transfer.robustness import DEFAULT, split_template

KEYS = ["model", "learner", "trained_on", "evaluated_on", "condition", "template", "seed"]
NA_REASONS = {"efficiency": "the direct score's 95% CI reaches the task's chance level",
              "relative": "the direct gain's 95% CI includes zero: the oracle gained nothing measurable"}


def _split(results: pd.DataFrame) -> pd.DataFrame:
    """The results with `template` and `quantity` ('' = score, 'gain', 'p:gain', 'efficiency', ...)
    split off the metric name, in each target's primary metric only (shares kept as they are)."""
    template, rest = zip(*(split_template(m) for m in results["metric"])) if len(results) else ((), ())
    frame = results.assign(template=list(template), rest=list(rest))
    bare = frame["rest"].str.split(":").str[-1]
    primary = {t: primary_metric(t, sorted(bare[frame["evaluated_on"] == t].unique()))  # as gain_qvalues reads it
               for t in frame["evaluated_on"].unique()}
    frame["primary"] = frame["evaluated_on"].map(primary)
    keep = (frame["rest"] == frame["primary"]) | frame.apply(lambda r: r["rest"].endswith(":" + r["primary"]), axis=1)
    frame["quantity"] = [r[: -len(p) - 1] if r != p else "" for r, p in zip(frame["rest"], frame["primary"])]
    shares = frame["rest"].isin(["share:majority", "share:flipped"])
    frame.loc[shares, "quantity"] = frame.loc[shares, "rest"]
    return frame[keep | shares]


def cell_table(results: pd.DataFrame) -> pd.DataFrame:
    """cells.csv: score, gain, p, q and flags per cell (see the module docstring)."""
    from transferlab.stats import bh_qvalues

    frame = _split(results)
    columns = [*KEYS, "metric", "n", "score", "score_ci_low", "score_ci_high", "gain", "gain_ci_low", "gain_ci_high",
               "p", "q", "significant", "degenerate", "marks"]
    if frame.empty:
        return pd.DataFrame(columns=columns)
    wide = frame[frame["quantity"] == ""][[*KEYS, "primary", "n", "value", "ci_low", "ci_high"]].rename(
        columns={"primary": "metric", "value": "score", "ci_low": "score_ci_low", "ci_high": "score_ci_high"})
    gains = frame[frame["quantity"] == "gain"][[*KEYS, "value", "ci_low", "ci_high", "n"]].rename(
        columns={"value": "gain", "ci_low": "gain_ci_low", "ci_high": "gain_ci_high", "n": "gain_n"})
    p = frame[frame["quantity"] == "p:gain"][[*KEYS, "value"]].rename(columns={"value": "p"})
    wide = wide.merge(gains, on=KEYS, how="outer").merge(p, on=KEYS, how="left")
    wide["n"] = wide["n"].fillna(wide.pop("gain_n"))
    wide["metric"] = wide["metric"].fillna(wide["evaluated_on"].map(dict(zip(frame["evaluated_on"], frame["primary"]))))
    wide["q"] = np.nan
    for _, family in wide[wide["template"] == DEFAULT].groupby(["model", "learner", "seed"]):
        wide.loc[family.index, "q"] = bh_qvalues(family["p"].to_numpy(dtype=float))
    has_gain = wide["gain"].notna()
    by_ci = (wide["gain_ci_low"] > 0) | (wide["gain_ci_high"] < 0)
    wide["significant"] = has_gain & np.where(wide["q"].notna(), wide["q"] < ALPHA, by_ci)
    wide["degenerate"] = _degenerate(frame, wide)
    wide["marks"] = np.where(wide["significant"], "*", "") + np.where(wide["degenerate"], "†", "")
    order = {"baseline": 0, "direct": 1, "transfer": 2, "sequential": 3, "joint": 4}
    wide = wide.assign(_c=wide["condition"].map(order).fillna(9)).sort_values(
        ["model", "evaluated_on", "template", "_c", "learner", "trained_on", "seed"]).drop(columns="_c")
    return wide[columns].reset_index(drop=True)


def _degenerate(frame: pd.DataFrame, wide: pd.DataFrame) -> pd.Series:
    """A cell's degenerate flag from its answer shares (default template; a pooled row uses the
    seeds' mean shares, as the report's matrices do)."""
    shares = frame[frame["quantity"].str.startswith("share:")]
    if shares.empty:
        return pd.Series(False, index=wide.index)
    cell = [k for k in KEYS if k not in ("template", "seed")]
    per_seed = shares.pivot_table(index=[*cell, "seed"], columns="quantity", values="value")
    mean = shares.pivot_table(index=cell, columns="quantity", values="value")

    def flag(row: pd.Series) -> bool:
        if row["template"] != DEFAULT:
            return False
        table, key = (mean, tuple(row[c] for c in cell)) if row["seed"] < 0 else \
            (per_seed, (*(row[c] for c in cell), row["seed"]))
        if key not in table.index:
            return False
        s = table.loc[key]
        return is_degenerate(s.get("share:majority", np.nan), s.get("share:flipped", np.nan))

    return wide.apply(flag, axis=1).astype(bool) if len(wide) else pd.Series(False, index=wide.index)


def metric_table(results: pd.DataFrame) -> pd.DataFrame:
    """metrics.csv: every derived quantity of the cells (efficiency, relative, cost, robustness)."""
    frame = _split(results)
    derived = frame[~frame["quantity"].isin(["", "gain", "p:gain"]) & ~frame["quantity"].str.startswith("share:")]
    out = derived[[*KEYS, "quantity", "primary", "value", "ci_low", "ci_high", "n"]].rename(
        columns={"primary": "metric"})
    reason = out["quantity"].map(NA_REASONS).fillna("undefined")
    out = out.assign(na_reason=np.where(out["value"].isna(), reason, ""))
    return out.sort_values([*KEYS[:5], "quantity", "template", "seed"]).reset_index(drop=True)


def write_tables(results: pd.DataFrame, out_dir: Path, labels: Mapping[str, str] | None = None,
                 run_dir: Path | None = None) -> tuple[list[str], list[Path]]:
    """Write tables/*.csv (tidy results and the seed comparison); return the summary's lines for
    them (the "compared with the seed" table first) and the files written."""
    from transferlab.seed_numbers import comparison_markdown, comparison_table, write_comparison
    from transferlab.tidy import write_table
    from transferlab.transfer.drift import drift_table
    from transferlab.transfer.seed_rows import our_setup, seed_rows

    tables = out_dir / "tables"
    cells, metrics = cell_table(results), metric_table(results)
    written = [write_table(cells, tables, "cells"), write_table(metrics, tables, "metrics")]
    try:
        drift = drift_table(results, labels=labels)
    except ValueError:  # no adapter with a label and a target: no drift table, as in the report
        drift = pd.DataFrame()
    if not drift.empty:
        written.append(write_table(drift, tables, "drift"))
    else:
        (tables / "drift.csv").unlink(missing_ok=True)
    comparison = comparison_table(seed_rows(results, metrics, labels, cells), our_setup(results, run_dir))
    written.append(write_comparison(comparison, tables))
    lines = comparison_markdown(comparison)
    lines += ["## Tidy tables", "", "Every number above, as CSV (regenerated by `transferlab report RUN`): "
              + ", ".join(f"[`tables/{p.name}`](tables/{p.name})" for p in written)
              + ". `cells`: one row per (model, learner, trained_on, evaluated_on, condition, template, seed) in the "
              "target's primary metric, with score, gain over base, CIs, n, p, BH q, `*` and `†` flags (seed -1 = "
              "pooled over seeds); `metrics`: efficiency, relative transfer, cost and robustness rows of the same "
              "cells, NA with its reason.", ""]
    return lines, written
