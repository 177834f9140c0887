"""Seed 002's robustness to prompt variations: does a transfer cell's gain survive a change of
prompt template?

A study with `prompt_templates: [default, qa, instruct]` scores every (base or adapter,
target) under each template (`tasks.prompts.TEMPLATES`; training always uses `default`).
The default template's rows keep their names (`acc`, `gain:acc`, ...); another template's
are `template:<name>:acc`, `template:<name>:gain:acc`, each gain paired against the base
model under the same template. Per trained cell and metric `m` the study then writes:

- `template_spread:gain:m`: the largest minus the smallest gain over the templates
  (default included; n = the number of templates; no CI);
- `template_sign:gain:m`: +1 if the gain's 95% CI lies above zero under every template,
  -1 if below zero under every template, 0 otherwise: the sign *survives* only when it is
  significant, and the same, under each template. No multiplicity correction: every
  template must pass on its own, which is already stricter than one test.

The weaker `same direction` rule the report also shows: every template's point estimate
is on the same side of zero (significance aside).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import pandas as pd

from transferlab.engine.store import ResultRow

DEFAULT = "default"
_TEMPLATE = re.compile(r"template:([^:]+):(.+)")
TRAINED = ("transfer", "direct", "sequential", "joint")


def template_metric(template: str, metric: str) -> str:
    """The row name of `metric` under `template` (`acc`, `gain:acc` for the default one)."""
    return metric if template == DEFAULT else f"template:{template}:{metric}"


def split_template(metric: str) -> tuple[str, str]:
    """(template, metric without it): `template:qa:gain:acc` -> ('qa', 'gain:acc')."""
    hit = _TEMPLATE.fullmatch(metric)
    return (hit.group(1), hit.group(2)) if hit else (DEFAULT, metric)


def template_order(names: set[str] | Sequence[str]) -> list[str]:
    """Templates in the built-in order (default first), unknown names after, sorted."""
    from transferlab.tasks.prompts import TEMPLATES

    known = list(TEMPLATES)
    return sorted(set(names), key=lambda t: (known.index(t) if t in known else len(known), t))


def sign_survives(lows: Sequence[float], highs: Sequence[float]) -> int:
    """+1 when every CI lies above zero, -1 when every one lies below, else 0 (see the module docstring)."""
    if not lows or any(x is None or math.isnan(x) for x in (*lows, *highs)):
        return 0
    if all(low > 0 for low in lows):
        return 1
    if all(high < 0 for high in highs):
        return -1
    return 0


def same_direction(values: Sequence[float]) -> bool:
    """The weaker rule: every point estimate strictly on the same side of zero."""
    return bool(values) and (all(v > 0 for v in values) or all(v < 0 for v in values))


def robustness_rows(rows: Sequence[ResultRow]) -> list[ResultRow]:
    """`template_spread:gain:m` and `template_sign:gain:m` for every cell (and seed, pooled
    included) whose gain exists under every template the rows hold; none with one template."""
    groups: dict[tuple, dict[str, ResultRow]] = {}
    for row in rows:
        template, metric = split_template(row.metric)
        if metric.startswith("gain:") and row.condition in TRAINED:
            key = (row.model, row.learner, row.trained_on, row.evaluated_on, row.condition, row.seed, metric)
            groups.setdefault(key, {})[template] = row
    templates = {t for group in groups.values() for t in group}
    if len(templates) < 2:
        return []
    out = []
    for (model, learner, trained_on, evaluated_on, condition, seed, metric), group in groups.items():
        if set(group) != templates or any(math.isnan(r.value) for r in group.values()):
            continue  # an evaluation under some template is missing (failed): no verdict
        values = [r.value for r in group.values()]
        lows = [math.nan if r.ci_low is None else r.ci_low for r in group.values()]
        highs = [math.nan if r.ci_high is None else r.ci_high for r in group.values()]
        n = len(group)
        for name, value in ((f"template_spread:{metric}", max(values) - min(values)),
                            (f"template_sign:{metric}", float(sign_survives(lows, highs)))):
            out.append(ResultRow(model, learner, trained_on, evaluated_on, condition, seed, name, value, n,
                                 math.nan, math.nan))
    return out


def robustness_table(results: pd.DataFrame, model: str, learner: str) -> pd.DataFrame:
    """One row per trained cell of (model, learner) in its target's primary metric: the gain
    under each template (seeds combined as the report does), the spread, whether the sign
    survives every template and the weaker same-direction rule. Empty with one template."""
    from transferlab.transfer.analysis import primary_metric, seed_mean

    frame = results[(results["model"] == model) & (results["learner"] == learner)
                    & results["condition"].isin(TRAINED)]
    parts = frame["metric"].map(split_template)
    frame = frame.assign(template=parts.str[0], metric=parts.str[1])
    gains = frame[frame["metric"].str.startswith("gain:")]
    templates = template_order(set(gains["template"]))
    if len(templates) < 2:
        return pd.DataFrame()
    bare = frame["metric"].str.split(":").str[-1]
    primary = {t: "gain:" + primary_metric(t, sorted(bare[frame["evaluated_on"] == t].unique()))
               for t in gains["evaluated_on"].unique()}
    gains = gains[gains["metric"] == gains["evaluated_on"].map(primary)]
    combined = seed_mean(gains, ["model", "learner", "trained_on", "evaluated_on", "condition", "metric", "template"])
    rows = []
    for (trained_on, evaluated_on, condition, metric), cell in combined.groupby(
            ["trained_on", "evaluated_on", "condition", "metric"]):
        by = cell.set_index("template")
        if set(by.index) != set(templates) or by["value"].isna().any():
            continue
        values = [float(by.loc[t, "value"]) for t in templates]
        row = {"trained_on": trained_on, "evaluated_on": evaluated_on, "condition": condition,
               "metric": metric.removeprefix("gain:"), "templates": len(templates),
               "spread": max(values) - min(values),
               "sign": sign_survives([float(by.loc[t, "ci_low"]) for t in templates],
                                     [float(by.loc[t, "ci_high"]) for t in templates]),
               "same_direction": same_direction(values)}
        for t in templates:
            row.update({t: float(by.loc[t, "value"]), f"{t}_ci_low": float(by.loc[t, "ci_low"]),
                        f"{t}_ci_high": float(by.loc[t, "ci_high"])})
        rows.append(row)
    return pd.DataFrame(rows)


def base_scores(results: pd.DataFrame, model: str) -> pd.DataFrame:
    """The base model's primary score on each target under each template (rows = targets)."""
    from transferlab.transfer.analysis import primary_metric

    frame = results[(results["model"] == model) & (results["condition"] == "baseline")]
    parts = frame["metric"].map(split_template)
    frame = frame.assign(template=parts.str[0], metric=parts.str[1])
    frame = frame[~frame["metric"].str.contains(":")]
    templates = template_order(set(frame["template"]))
    if len(templates) < 2:
        return pd.DataFrame()
    rows = []
    for target, one in frame.groupby("evaluated_on"):
        metric = primary_metric(target, sorted(one["metric"].unique()))
        one = one[one["metric"] == metric].drop_duplicates("template").set_index("template")
        rows.append({"evaluated_on": target, "metric": metric,
                     **{t: (float(one.loc[t, "value"]), float(one.loc[t, "ci_low"]), float(one.loc[t, "ci_high"]))
                        for t in templates if t in one.index}})
    return pd.DataFrame(rows)
