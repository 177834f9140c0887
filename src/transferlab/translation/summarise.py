"""Phase 4: from stored evaluations to the results table and the experiment tables.

Writes, under the run directory:
- rows of the tidy results table (`results.sqlite`): base_Y and oracle scores, and per
  translation its score, gain over base_Y and gap recovered (NA when the oracle gains
  nothing measurable), plus the update-space agreement with the oracle adapter;
- `tables/tasks.csv` (one row per anchor task), `tables/translations.csv` (one row per
  translation of every experiment, with its task's base_Y, oracle and oracle-gain CI),
  `tables/matrix.csv` and `tables/summary.json`.
The NA and unstable flags of gap_recovered come from `gaps.flag_study_tables`, the function
that flags an imported table too. The report is drawn from these tables alone.
"""

from __future__ import annotations

import csv
import math
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

import pandas as pd

from transferlab.stats import bh_qvalues, bootstrap_mean, paired_difference
from transferlab.predictions import flipped_share, is_degenerate, majority_share, predicted_choices
from transferlab.engine.store import NONE, ResultRow, Store, write_json
from transferlab.tasks import get_task
from transferlab.translation.gaps import flag_study_tables
from transferlab.translation.protocol import NA, finite_mean, score_against
from transferlab.translation.translators import LEARNED


def _evaluation(store: Store, key: str) -> dict[str, Any] | None:
    return store.read_json("evaluation", key, "evaluation.json") if store.has("evaluation", key) else None


def _aligned(metric: str, *evaluations: dict[str, Any]) -> list[list[float]]:
    """Scores of the examples every evaluation shares, in the first one's order."""
    index = [{u: i for i, u in enumerate(e["uids"])} for e in evaluations]
    shared = [u for u in evaluations[0]["uids"] if all(u in ix for ix in index)]
    return [[e["scores"][metric][ix[u]] for u in shared] for e, ix in zip(evaluations, index)]


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fields = list(dict.fromkeys(k for r in rows for k in r)) if rows else ["empty"]
    with open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def _answers(prefix: str, task: Any, evaluation: dict, base: dict | None) -> dict[str, Any]:
    """The degenerate-predictor columns of one evaluation (two-choice tasks; see `predictions`):
    the most common answer's share, the share of the base model's answers flipped, the flag."""
    predicted = predicted_choices(task, evaluation)
    if predicted is None:
        return {}
    name = f"{prefix}_" if prefix else ""
    majority = majority_share(predicted)
    base_predicted = predicted_choices(task, base) if base is not None else None
    flipped = (flipped_share(evaluation["uids"], predicted, base["uids"], base_predicted)
               if base is not None and base_predicted is not None else NA)
    return {f"{name}majority": majority, f"{name}flipped": flipped, f"{name}degenerate": is_degenerate(majority, flipped)}


def summarise(plan: Any, store: Store, output: Path, failed: dict[str, str]) -> dict[str, Any]:
    spec = plan.spec
    seed, resamples = spec.seed, spec.bootstrap
    rows: list[ResultRow] = []
    task_rows: list[dict[str, Any]] = []
    base_eval, oracle_eval = {}, {}
    for task in plan.tasks:
        metric = get_task(task).primary_metric
        base = _evaluation(store, plan.eval_key("y", task, None))
        oracle = _evaluation(store, plan.eval_key("y", task, plan.anchors["y"][task].key))
        base_eval[task], oracle_eval[task] = base, oracle
        row: dict[str, Any] = {"task": task, "domain": spec.domain_of(task), "metric": metric}
        if base is not None:
            b = bootstrap_mean(base["scores"][metric], resamples, seed)
            row.update(base_y=b.value, base_y_lo=b.ci_low, base_y_hi=b.ci_high, n=b.n,
                       **_answers("base_y", get_task(task), base, None))
            rows.append(ResultRow(spec.model_y, NONE, NONE, task, "baseline", seed, metric, b.value, b.n, b.ci_low,
                                  b.ci_high))
        if oracle is not None and base is not None:
            o_scores, b_scores = _aligned(metric, oracle, base)
            o = bootstrap_mean(o_scores, resamples, seed)
            gain = paired_difference(o_scores, b_scores, resamples, seed)
            row.update(**_answers("oracle", get_task(task), oracle, base))
            row.update(oracle=o.value, oracle_lo=o.ci_low, oracle_hi=o.ci_high, oracle_gain=gain.value,
                       oracle_gain_lo=gain.ci_low, oracle_gain_hi=gain.ci_high, oracle_gain_p=gain.p, oracle_significant=gain.significant)
            rows.append(ResultRow(spec.model_y, "oracle", task, task, "oracle", seed, metric, o.value, o.n, o.ci_low,
                                  o.ci_high))
            rows.append(ResultRow(spec.model_y, "oracle", task, task, "oracle", seed, f"gain:{metric}", gain.value,
                                  gain.n, gain.ci_low, gain.ci_high))
        task_rows.append(row)

    translation_rows: list[dict[str, Any]] = []
    for tr in plan.translations:
        if tr.source != "x":
            continue  # the reverse direction only feeds the matrix
        key = plan.keys[tr]
        metric = get_task(tr.held_out).primary_metric
        row = {"experiment": tr.experiment, "held_out": tr.held_out, "domain": spec.domain_of(tr.held_out),
               "method": tr.method, "label": tr.label, "n_anchors": len(tr.anchors),
               "k": tr.params.get("k", ""), "pool": tr.label.split("@pool=")[1] if "@pool=" in tr.label else "all",
               "metric": metric, "evaluated": tr.evaluate}
        if key in failed:
            row["failure"] = failed[key]
            translation_rows.append(row)
            continue
        if not plan_has(store, key):
            row["failure"] = "translation missing (its anchors did not train)"
            translation_rows.append(row)
            continue
        meta = store.read_json("adapter", key, "translation.json")
        cos, rel = meta["cosine"], meta["relative_error"]  # ‖P−T‖²/‖T‖² = s² − 2s·cos + 1, s = ‖P‖/‖T‖
        row.update(norm_ratio=cos + math.sqrt(max(cos * cos - 1 + rel, 0.0)))
        row.update(cosine=meta["cosine"], centered_cosine=meta.get("centered_cosine", NA),
                   relative_error=meta["relative_error"], fit_seconds=meta["seconds"],
                   selected=" ".join(meta.get("selected", [])), loo_error=meta.get("loo_error", NA))
        trained_on = f"{tr.held_out}@{spec.model_x}"
        condition = f"translated:{tr.experiment}"
        rows.append(ResultRow(spec.model_y, tr.label, trained_on, tr.held_out, condition, seed, "update_cosine",
                              meta["cosine"], 1))
        evaluation = _evaluation(store, plan.eval_key("y", tr.held_out, key)) if tr.evaluate else None
        base, oracle = base_eval.get(tr.held_out), oracle_eval.get(tr.held_out)
        if evaluation is not None and base is not None and oracle is not None:
            m, b, o = _aligned(metric, evaluation, base, oracle)
            scored = score_against(m, b, o, resamples, seed, spec.min_effect)
            row.update(**_answers("", get_task(tr.held_out), evaluation, base))
            row.update(score=scored.score.value, score_lo=scored.score.ci_low, score_hi=scored.score.ci_high,
                       gain=scored.gain.value, gain_lo=scored.gain.ci_low, gain_hi=scored.gain.ci_high,
                       gain_p=scored.gain.p, gap=scored.gap.value, gap_lo=scored.gap.ci_low,
                       gap_hi=scored.gap.ci_high, n=scored.score.n)
            for name, est in ((metric, scored.score), (f"gain:{metric}", scored.gain),
                              (f"gap_recovered:{metric}", scored.gap)):
                rows.append(ResultRow(spec.model_y, tr.label, trained_on, tr.held_out, condition, seed, name,
                                      est.value, est.n, est.ci_low, est.ci_high))
        translation_rows.append(row)

    _add_qvalues(task_rows, "oracle_gain_p", "oracle_gain_q", family=lambda r: "oracle")
    _add_qvalues(translation_rows, "gain_p", "gain_q", family=lambda r: r["experiment"])
    matrix_rows = _matrix(plan, store, failed, rows)
    store.add_results(rows)
    tables = output / "tables"
    tasks_frame, trans_frame = flag_study_tables(pd.DataFrame(task_rows), pd.DataFrame(translation_rows),
                                                 spec.min_effect)
    task_rows, translation_rows = _write_frame(tables / "tasks.csv", tasks_frame), _write_frame(
        tables / "translations.csv", trans_frame)
    _write_csv(tables / "matrix.csv", matrix_rows)
    summary = _summary(spec, task_rows, translation_rows, failed)
    write_json(tables / "summary.json", _clean(summary), indent=1, default=float)
    return summary


def _add_qvalues(rows: list[dict[str, Any]], p_column: str, q_column: str, family: Any) -> None:
    """Benjamini-Hochberg q-values of each family of gain tests (the oracle gains; each
    experiment's translated gains), so a table of many cells is not read one p at a time."""
    families: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        if p_column in r:
            families[family(r)].append(r)
    for members in families.values():
        for r, q in zip(members, bh_qvalues([r[p_column] for r in members])):
            r[q_column] = float(q)


def _write_frame(path: Path, frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Write a table atomically; returns its rows as dicts without the blank cells."""
    if not len(frame):
        _write_csv(path, [])
        return []
    tmp = path.with_suffix(".tmp")
    frame.to_csv(tmp, index=False)
    os.replace(tmp, path)
    return [{k: v for k, v in r.items() if not (isinstance(v, float) and math.isnan(v))}
            for r in frame.to_dict("records")]


def _stable(row: dict[str, Any]) -> float:
    """A row's gap_recovered where an average may use it (defined, not unstable), else NA."""
    return NA if row.get("unstable") else row.get("gap", NA)


def plan_has(store: Store, key: str) -> bool:
    return store.has("adapter", key)


def _clean(value: Any) -> Any:
    """NaN -> null, so summary.json is valid JSON for any reader."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _matrix(plan: Any, store: Store, failed: dict[str, str], rows: list[ResultRow]) -> list[dict[str, Any]]:
    """Seed 001's panel: for each matrix task, each model with the adapter trained on each model
    (off-diagonal: translated with the matrix method), and each model's base score."""
    spec = plan.spec
    if not spec.matrix:
        return []
    out = []
    for task in plan.matrix_tasks():
        metric = get_task(task).primary_metric
        forward = next((t for t in plan.translations if t.experiment == "matrix" and t.held_out == task
                        and t.source == "x"), None)
        reverse = next((t for t in plan.translations if t.experiment == "matrix" and t.held_out == task
                        and t.source == "y"), None)
        cells = [
            ("x", "base", None), ("x", "x", plan.anchors["x"][task].key),
            ("x", "y", plan.keys[reverse] if reverse else None),
            ("y", "base", None), ("y", "y", plan.anchors["y"][task].key),
            ("y", "x", plan.keys[forward] if forward else None),
        ]
        for model_side, trained_side, adapter in cells:
            if trained_side != "base" and (adapter is None or adapter in failed):
                continue
            evaluation = _evaluation(store, plan.eval_key(model_side, task, adapter))
            if evaluation is None:
                continue
            est = bootstrap_mean(evaluation["scores"][metric], spec.bootstrap, spec.seed)
            model = plan.model(model_side)
            trained = "-" if trained_side == "base" else plan.model(trained_side)
            out.append({"task": task, "model": model, "trained_on_model": trained,
                        "translated": trained_side not in ("base", model_side), "score": est.value,
                        "score_lo": est.ci_low, "score_hi": est.ci_high, "n": est.n, "metric": metric})
            rows.append(ResultRow(model, "matrix", f"{task}@{trained}", task, "matrix", spec.seed, metric, est.value,
                                  est.n, est.ci_low, est.ci_high))
    return out


def _summary(spec: Any, task_rows: list[dict[str, Any]], translation_rows: list[dict[str, Any]],
             failed: dict[str, str]) -> dict[str, Any]:
    """Seed 000's success criteria: best learned method minus mean, averaged over held-out
    tasks, and domain-average gap recovered (over stable cells only); plus the NA and
    unstable tasks and their reasons."""
    main = [r for r in translation_rows if r["experiment"] == "main" and "score" in r]
    by_method: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for r in main:
        by_method[r["method"]][r["held_out"]] = r
    mean_scores = by_method.get("mean", {})
    methods: dict[str, Any] = {}
    for method, cells in by_method.items():
        shared = [t for t in cells if t in mean_scores]
        domains: dict[str, list[float]] = defaultdict(list)
        for r in cells.values():
            domains[r["domain"]].append(_stable(r))
        methods[method] = {
            "tasks": len(cells),
            "mean_score": finite_mean([r["score"] for r in cells.values()]),
            "mean_gain_over_base_y": finite_mean([r["gain"] for r in cells.values()]),
            "minus_mean_translator": finite_mean([cells[t]["score"] - mean_scores[t]["score"] for t in shared]),
            "mean_gap_recovered": finite_mean([_stable(r) for r in cells.values()]),
            "gap_defined_on": sum(not math.isnan(_stable(r)) for r in cells.values()),
            "gap_unstable": sum(bool(r.get("unstable")) for r in cells.values()),
            "domain_gap_recovered": {d: finite_mean(v) for d, v in domains.items()},
            "mean_update_cosine": finite_mean([r.get("cosine", NA) for r in cells.values()]),
            "mean_norm_ratio": finite_mean([r.get("norm_ratio", NA) for r in cells.values()]),
            "mean_fit_seconds": finite_mean([r.get("fit_seconds", NA) for r in cells.values()]),
        }
    learned = {m: v for m, v in methods.items() if m in LEARNED and not math.isnan(v["minus_mean_translator"])}
    best = max(learned, key=lambda m: learned[m]["minus_mean_translator"]) if learned else None
    na = {r["task"]: r["gap_na_reason"] for r in task_rows if r.get("gap_na_reason")}
    unstable = {r["task"]: r["gap_unstable_reason"] for r in task_rows if r.get("gap_unstable")}
    return {
        "model_x": spec.model_x, "model_y": spec.model_y, "tasks": len(task_rows),
        "domains": {d: list(ts) for d, ts in spec.domains.items()},
        "best_learned_method": best,
        "best_learned_minus_mean": learned[best]["minus_mean_translator"] if best else NA,
        "best_domain_gap_recovered": learned[best]["domain_gap_recovered"] if best else {},
        "methods": methods, "min_effect": spec.min_effect, "gap_na": na, "gap_unstable": unstable,
        "translations_failed": len(failed),
    }
