"""The translation report: the Markdown, drawn from the run's tables alone.

    transferlab run experiments/translation.yaml   # writes OUTPUT/report/translation.md and figures

Nothing here calls a model: it reads `tables/*.csv`, `tables/summary.json`, `audit.json`
and `run.json`, so a report can be redrawn from a copied run directory
(`transferlab translation report RUN`). gap_recovered's NA and unstable flags are
recomputed from the tables with `gaps.flag_study_tables`, so a run summarised under older
rules is redrawn under the current ones. `write_report`
lays out every section (setup, the three experiments, the cross-model matrix, failure
notes) and its tables; `figures` draws the PNGs it links, and `points` selects the rows
that experiment 2's and 3's tables and figures share.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from transferlab.errors import TransferlabError
from transferlab.translation.gaps import MIN_EFFECT, RULES, flag_study_tables, rules_text, stable_gaps
from transferlab.translation.figures import domain_figure, main_figure, matrix_figure, scaling_figure, summary_figure
from transferlab.translation.points import domain_cells, scaling_points
from transferlab.translation.protocol import finite_mean
from transferlab.translation.report_cells import busy_seconds, ci_cell, fmt, gap_cell, rule_counts, sample_sizes
from transferlab.translation.translators import LEARNED

ORDER = ("mean", "global_ridge", "pertensor_ridge", "topk_global_ridge", "topk_pertensor_ridge", "pertensor_mlp",
         "subspace_projection")


def _read(run: Path, name: str) -> pd.DataFrame:
    path = run / "tables" / name
    try:
        return pd.read_csv(path)
    except (FileNotFoundError, pd.errors.EmptyDataError):
        return pd.DataFrame()


def _current_flags(summary: dict[str, Any], tasks: pd.DataFrame, main: pd.DataFrame) -> dict[str, Any]:
    """summary.json's gap fields recomputed from the re-flagged tables (averages over stable cells)."""
    summary = dict(summary, methods={m: dict(v) for m, v in summary.get("methods", {}).items()})
    if "gap_na_reason" in tasks:
        summary["gap_na"] = {r.task: r.gap_na_reason for r in tasks.itertuples() if isinstance(r.gap_na_reason, str)
                             and r.gap_na_reason}
        summary["gap_unstable"] = {r.task: r.gap_unstable_reason for r in tasks.itertuples()
                                   if str(r.gap_unstable) == "True"}
    for method, cells in (main.groupby("method") if len(main) and "gap" in main else ()):
        gaps = stable_gaps(cells)
        summary["methods"].setdefault(method, {}).update(
            mean_gap_recovered=gaps.mean() if len(gaps) else math.nan, gap_defined_on=len(gaps),
            gap_unstable=int((cells.get("unstable", pd.Series(dtype=str)).astype(str) == "True").sum()))
        if method == summary.get("best_learned_method"):
            summary["best_domain_gap_recovered"] = {
                d: (stable_gaps(group).mean() if len(stable_gaps(group)) else math.nan)
                for d, group in cells.groupby("domain", sort=False)}
    return summary


SUMMARY_KEYS = ("model_x", "model_y", "domains", "tasks", "methods")


def write_report(run: str | Path, out: str | Path | None = None) -> list[Path]:
    """Write `translation.md` and its figures; returns the Markdown path first, then the figures.
    Tables that are not a translation study's (damaged, or another tool's) are a one-line error,
    and nothing is written."""
    run = Path(run)
    where = run / "tables" / "summary.json"
    try:
        summary = json.loads(where.read_text())
    except (OSError, ValueError) as err:
        raise TransferlabError(f"cannot read {where} ({err}): run the spec again to rewrite the tables") from None
    missing = [k for k in SUMMARY_KEYS if k not in summary] if isinstance(summary, dict) else list(SUMMARY_KEYS)
    if missing:
        raise TransferlabError(f"{where} is not a translation study's summary (it lacks {', '.join(missing)}): "
                               "run the spec again (`transferlab run SPEC`) to rewrite the tables")
    try:
        return _write_report(run, out)
    except (KeyError, ValueError, TypeError, AttributeError, IndexError) as err:
        raise TransferlabError(f"{run / 'tables'} does not hold a translation study's tables "
                               f"({type(err).__name__}: {err}): run the spec again to rewrite them") from None


def _write_report(run: Path, out: str | Path | None = None) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    out = Path(out) if out else run / "report"
    out.mkdir(parents=True, exist_ok=True)
    tasks, trans, matrix = _read(run, "tasks.csv"), _read(run, "translations.csv"), _read(run, "matrix.csv")
    summary = json.loads((run / "tables" / "summary.json").read_text())
    spec = json.loads((run / "spec.json").read_text()) if (run / "spec.json").exists() else {}
    min_effect = spec.get("min_effect", summary.get("min_effect", MIN_EFFECT))
    tasks, trans = flag_study_tables(tasks, trans, min_effect)
    audit = json.loads((run / "audit.json").read_text()).get("failed_tasks", {}) if (run / "audit.json").exists() else {}
    runs = json.loads((run / "run.json").read_text()) if (run / "run.json").exists() else []
    figures: list[Path] = []
    main = trans[trans.experiment == "main"] if len(trans) else trans
    methods = [m for m in ORDER if len(main) and m in set(main.method)]
    methods += sorted(set(main.method) - set(methods)) if len(main) else []
    summary = _current_flags(summary, tasks, main)

    lines = [f"# Cross-model LoRA adapter translation: {summary['model_x']} → {summary['model_y']}", ""]
    if runs:
        last = runs[-1]
        lines += [f"Command: `{last['command']}`  ", f"Wall time: {busy_seconds(runs) / 60:.1f} min over {len(runs)} "
                  f"invocation(s) (last finished {last['finished']}; invocations that ran at once, sharing the "
                  "work through claims, count once).", ""]
    if spec:
        a = spec["anchor"]
        lines += [f"Anchors: LoRA r={a['rank']}, alpha={a['alpha']}, target={','.join(a['target_modules'])}, "
                  f"lr={a['learning_rate']}, steps={a['steps'] or 'one epoch'}, batch={a['batch_size']}, "
                  f"{spec['budgets']['train_examples']} training examples; evaluation on up to "
                  f"{spec['budgets']['eval_examples']} {spec['eval_split']} examples per task; 95% bootstrap CIs "
                  f"({spec['bootstrap']} resamples), paired against base_Y.", ""]
    layout = json.loads((run / "tables" / "layout.json").read_text()) if (run / "tables" / "layout.json").exists() else {}
    for model, info in layout.items():
        shapes = ", ".join(f"{m} {r}x{c}" for m, (r, c) in info["shapes"].items())
        lines.append(f"- {model}: {info['layers']} layers, {shapes} (out x in), LoRA rank {info['rank']}")
    if layout:
        lines += ["", "Layers are matched by relative depth; widths and head layouts differ, which the kernel "
                      "translators never need to align (X updates are only compared with X updates, and a "
                      "prediction is a combination of Y updates).", ""]
    lines += ["Domains: " + "; ".join(f"**{d}**: {', '.join(ts)}" for d, ts in summary["domains"].items()), ""]

    # ---- experiment 1 ------------------------------------------------------------------
    lines += ["## Experiment 1 — main table (leave one task out)", ""]
    if len(main) and len(tasks):
        best = summary.get("best_learned_method")
        header = ["Domain", "Task", "base_Y", *methods, "oracle", f"gap_recovered ({best})"]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for t in tasks.itertuples():
            cells = main[main.held_out == t.task].set_index("method")
            values = [fmt(cells.loc[m, "score"]) if m in cells.index and "score" in cells else "—" for m in methods]
            gap_text = gap_cell(cells.loc[best].to_dict() if best in cells.index else None)
            lines.append(f"| {t.domain} | {t.task} | {fmt(getattr(t, 'base_y', math.nan))} | " + " | ".join(values)
                         + f" | {fmt(getattr(t, 'oracle', math.nan))} | {gap_text} |")
        lines += ["", f"Scores are {tasks.metric.iloc[0]} (the task's primary metric) on {sample_sizes(tasks)}. "
                  + rules_text(min_effect), ""]
        figures.append(main_figure(main, tasks, methods, out / "main_table.png"))
        lines += ["![Main table](main_table.png)", ""]
        lines += [f"Gap recovered per method (NA or † unstable: see the rule column; minimum effect {min_effect:g}):", ""]
        header = ["Task", "oracle − base_Y [CI], BH q", "rule", *methods]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for t in tasks.itertuples():
            cells = main[main.held_out == t.task].set_index("method")
            gaps = [gap_cell(cells.loc[m].to_dict(), ci=True) if m in cells.index else "—" for m in methods]
            row = t._asdict()
            na, unstable = row.get("gap_na_rule"), row.get("gap_unstable_rule")
            rule = (f"NA: {RULES.get(na, na)}" if isinstance(na, str) and na else
                    f"† {RULES.get(unstable, unstable)}" if isinstance(unstable, str) and unstable else "")
            lines.append(f"| {t.task} | {ci_cell(row, 'oracle_gain')} | {rule} | " + " | ".join(gaps) + " |")
        lines.append("")

    # ---- summary -------------------------------------------------------------------------
    lines += ["## Summary (seed 000's success criteria)", ""]
    best = summary.get("best_learned_method")
    lines += [f"- Best learned method minus the mean translator, averaged over held-out tasks: "
              f"`{fmt(summary.get('best_learned_minus_mean'), 3)}` ({best}).",
              f"- Domain-average gap recovered ({best}): `" + json.dumps(
                  {d: (None if v is None or (isinstance(v, float) and math.isnan(v)) else round(v, 3))
                   for d, v in (summary.get("best_domain_gap_recovered") or {}).items()}) + "` (NA and unstable cells left out; "
              "null = no task of the domain has a stable gap).",
              f"- gap_recovered is NA on {len(summary['gap_na'])} of {summary['tasks']} tasks{rule_counts(tasks)} "
              f"and unstable on {len(summary.get('gap_unstable', {}))}"
              + (f" ({', '.join(summary['gap_unstable'])})" if summary.get("gap_unstable") else "") + ".", ""]
    header = ["method", "mean score", "minus mean translator", "mean gap recovered (stable cells; unstable)",
              "update cosine to oracle",
              "‖prediction‖ / ‖oracle‖", "fit s"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for m in methods:
        s = summary["methods"][m]
        lines.append(f"| {m} | {fmt(s['mean_score'])} | {fmt(s['minus_mean_translator'], 3)} | "
                     f"{fmt(s['mean_gap_recovered'], 2)} ({s['gap_defined_on']}; {s.get('gap_unstable', 0)}) | "
                     f"{fmt(s['mean_update_cosine'], 3)} | "
                     f"{fmt(s.get('mean_norm_ratio', math.nan), 2)} | {fmt(s['mean_fit_seconds'], 2)} |")
    lines.append("")
    if methods:
        figures.append(summary_figure(main, methods, out / "summary.png"))
        lines += ["![Per-method difference to the mean translator](summary.png)", ""]

    # ---- experiment 2 ------------------------------------------------------------------
    scaling = trans[trans.experiment == "scaling"] if len(trans) else trans
    if len(scaling):
        lines += ["## Experiment 2 — anchor-count and top-k scaling", ""]
        path = scaling_figure(trans, out / "scaling.png")
        figures.append(path)
        lines += ["![Scaling](scaling.png)", "",
                  "Left: random anchor pools of n tasks (the rightmost point is all other anchors, experiment 1). "
                  "Right: top-k. Solid: gain over base_Y, on the held-out tasks evaluated with model Y (the same "
                  "tasks at every point); dashed: centred cosine between the predicted and the oracle update "
                  "(update space, every held-out task).", ""]
        lines += _scaling_table(trans)

    # ---- experiment 3 ------------------------------------------------------------------
    cross = trans[trans.experiment == "cross_domain"] if len(trans) else trans
    if len(cross):
        lines += ["## Experiment 3 — cross-domain anchor pools", ""]
        figures.append(domain_figure(cross, main, out / "domain_heatmap.png"))
        lines += ["![Held-out domain × anchor pool](domain_heatmap.png)", ""]
        lines += _domain_table(cross, main)
    topk = main[main.method.str.startswith("topk_global")] if len(main) else main
    if len(topk) and "selected" in topk:
        domain_of = {t: d for d, ts in summary["domains"].items() for t in ts}
        lines += ["Top-k anchors actually selected (topk_global_ridge, nearest X updates by cosine):", "",
                  "| Held-out task | domain | selected anchors (nearest first) | same-domain share |", "|---|---|---|---|"]
        for r in topk.itertuples():
            chosen = str(r.selected).split() if isinstance(r.selected, str) else []
            same = sum(domain_of.get(c) == r.domain for c in chosen)
            lines.append(f"| {r.held_out} | {r.domain} | {', '.join(chosen)} | {same}/{len(chosen)} |")
        lines.append("")

    # ---- matrix ----------------------------------------------------------------------
    if len(matrix):
        lines += ["## Cross-model adapter matrix (seed 001, LoRA panel)", ""]
        figures.append(matrix_figure(matrix, out / "matrix.png"))
        lines += ["![Model × trained on](matrix.png)", "",
                  "| Task | Model | base | trained on " + " | trained on ".join(sorted(set(matrix.model))) + " |",
                  "|---|---|---|" + "---|" * len(set(matrix.model))]
        for (task, model), group in matrix.groupby(["task", "model"], sort=False):
            cells = {r.trained_on_model: r for r in group.itertuples()}
            values = [fmt(cells[m].score) + (" (translated)" if cells[m].translated else "") if m in cells else "—"
                      for m in sorted(set(matrix.model))]
            lines.append(f"| {task} | {model} | {fmt(cells['-'].score) if '-' in cells else '—'} | "
                         + " | ".join(values) + " |")
        lines.append("")

    from transferlab.translation.seed_rows import seed_section  # seed 000's and 001's numbers beside ours

    lines += seed_section(out, tasks, main, summary, matrix, spec, min_effect)
    # ---- failure modes ---------------------------------------------------------------
    lines += ["## Honest failure modes and notes", ""]
    lines += _failure_notes(summary, tasks, trans, audit)
    text = "\n".join(lines) + "\n"
    md = out / "translation.md"
    md.write_text(text)
    from transferlab.html.translation import write_translation_page
    return [md, *figures, write_translation_page(out, tasks, trans, matrix, summary, markdown=md, order=ORDER)]


def _scaling_table(trans: pd.DataFrame) -> list[str]:
    counts, ks = scaling_points(trans)
    lines = ["| curve | x | tasks (evaluated) | mean score | mean gain over base_Y | mean gap recovered (stable cells) | "
             "centred cosine |", "|---|---|---|---|---|---|---|"]
    for name, frame, x in (("anchors", counts, "n_anchors"), ("top-k", ks, "k")):
        frame = frame.copy()
        frame[x] = pd.to_numeric(frame[x], errors="coerce")
        for value, group in frame.groupby(x):
            gaps = stable_gaps(group)
            evaluated = group.dropna(subset=["score"]).held_out.nunique() if "score" in group else 0
            lines.append(f"| {name} | {int(value)} | {group.held_out.nunique()} ({evaluated}) | "
                         f"{fmt(group.score.mean()) if 'score' in group else 'NA'} | "
                         f"{fmt(group.gain.mean()) if 'gain' in group else 'NA'} | "
                         f"{fmt(gaps.mean(), 2) if len(gaps) else 'NA'} ({len(gaps)}) | "
                         f"{fmt(group.centered_cosine.mean())} |")
    return lines + [""]


def _domain_table(cross: pd.DataFrame, main: pd.DataFrame) -> list[str]:
    frame = domain_cells(cross, main)
    lines = ["| Held-out domain | anchor pool | tasks (evaluated) | mean gain over base_Y | mean gap recovered (stable cells) | "
             "centred cosine | not run |", "|---|---|---|---|---|---|---|"]
    for (domain, pool), group in frame.groupby(["domain", "pool"], sort=False):
        ran = group[group.get("failure").isna()] if "failure" in group else group
        gaps = stable_gaps(ran)
        skipped = len(group) - len(ran)
        evaluated = ran.dropna(subset=["score"]).held_out.nunique() if "score" in ran else 0
        lines.append(f"| {domain} | {pool} | {len(ran)} ({evaluated}) | "
                     f"{fmt(ran.gain.mean()) if 'gain' in ran and len(ran) else 'NA'} | "
                     f"{fmt(gaps.mean(), 2) if len(gaps) else 'NA'} ({len(gaps)}) | "
                     f"{fmt(ran.centered_cosine.mean()) if len(ran) else 'NA'} | {skipped or ''} |")
    return lines + [""]


def _failure_notes(summary: dict[str, Any], tasks: pd.DataFrame, trans: pd.DataFrame,
                   audit: dict[str, str]) -> list[str]:
    notes = []
    for column, who in (("base_y_degenerate", "base_Y gives one answer"),
                        ("oracle_degenerate", "the oracle gives one answer, or flips base_Y's answers,")):
        if column in tasks and tasks[column].fillna(False).astype(bool).any():
            hit = tasks[tasks[column].fillna(False).astype(bool)]
            notes.append(f"- Degenerate predictor: {who} on at least 95% of the examples of {', '.join(hit.task)}: "
                         "its score there is a label prior or a flip, so a gain over it counts only where the "
                         "adapted model is not degenerate itself (degenerate adapters are listed here).")
    if "degenerate" in trans and trans["degenerate"].fillna(False).astype(bool).any():
        hit = trans[trans["degenerate"].fillna(False).astype(bool)]
        notes.append(f"- Degenerate translated adapters ({len(hit)}): one answer or base_Y's answers flipped on at least "
                     "95% of the examples: " + ", ".join(sorted(set(f"{r.method} on {r.held_out}"
                                                                   for r in hit.itertuples()))) + ".")
    na = summary.get("gap_na", {})
    if na:
        notes.append(f"- The oracle (a Y adapter trained on the held-out task) gains less than the minimum effect, "
                     f"loses, or gains nothing distinguishable from noise on {len(na)} of {summary['tasks']} tasks "
                     f"({', '.join(na)}); their gap_recovered is NA, and any translation there can only be judged by "
                     "its raw score against base_Y.")
    if summary.get("gap_unstable"):
        notes.append(f"- gap_recovered is unstable (†) on {', '.join(summary['gap_unstable'])}: the oracle gain is "
                     "barely above the minimum effect, so a small error in it moves the ratio a lot; those cells are "
                     "left out of every average.")
    methods = summary.get("methods", {})
    behind = [m for m, s in methods.items() if m in LEARNED and not math.isnan(s["minus_mean_translator"] or math.nan)
              and s["minus_mean_translator"] <= 0]
    if behind:
        notes.append(f"- Learned methods that do not beat the mean translator on average: {', '.join(behind)}.")
    if len(trans) and "loo_error" in trans:
        ridge = trans[(trans.experiment == "main") & (trans.method == "global_ridge")].dropna(subset=["loo_error"])
        if len(ridge):
            n = int(ridge.n_anchors.iloc[0])
            notes.append(f"- Leave-one-anchor-out on the anchors (global_ridge, {n} anchors per fit): the best ridge's "
                         f"error is {ridge.loo_error.mean():.2f}x the anchors' spread around their mean, against "
                         f"{(n / (n - 1)) ** 2:.2f}x for predicting the mean of the others"
                         + (": the X updates carry no measurable information about the Y updates here, so the "
                            "regularisation rightly pulls every learned method to the mean."
                            if ridge.loo_error.mean() >= (n / (n - 1)) ** 2 - 0.02 else "."))
    shrunk = [m for m, s in methods.items() if m in LEARNED and (s.get("mean_norm_ratio") or 1) < 0.8]
    if shrunk:
        ratio = finite_mean([methods[m]["mean_norm_ratio"] for m in shrunk])
        notes.append(f"- Predictions are shrunk: the learned methods' updates are on average {ratio:.2f}x the oracle's "
                     "size. A ridge chosen by leave-one-out that finds no X→Y signal returns (nearly) the mean "
                     "adapter, and averaging anchors cancels their task-specific directions; a small update need "
                     "not move any decision of model Y.")
    if "subspace_projection" in methods:
        s = methods["subspace_projection"]
        notes.append(f"- The training-free subspace projection maps X's i-th singular direction onto Y's; its mean update "
                     f"cosine to the oracle is {fmt(s['mean_update_cosine'])}: across model families those directions "
                     "do not correspond, so it is a floor, not a competitor.")
    if len(trans) and "centered_cosine" in trans:
        main = trans[(trans.experiment == "main") & trans.method.isin(LEARNED)]
        if len(main):
            value = main.centered_cosine.mean()
            reading = ("they barely point from the mean towards the oracle: the anchor Y adapters span little of a new "
                       "task's update" if value < 0.3 else "the direction is partly right, yet a right direction in "
                       "update space need not change the model's decisions")
            notes.append(f"- In update space the learned predictions depart from the mean adapter with a mean centred "
                         f"cosine of {fmt(value)} to the oracle's departure (1 = its direction exactly, 0 = unrelated): "
                         f"{reading}.")
    if len(tasks) and "n" in tasks:
        low, high = int(tasks.n.min()), int(tasks.n.max())
        half = " to ".join(f"±{1.96 * 0.5 / math.sqrt(n):.2f}" for n in sorted({high, low}, reverse=True))
        notes.append(f"- Each score uses {high if low == high else f'{low} to {high}'} examples: a 95% CI is roughly "
                     f"{half} around a 0.5 accuracy, so differences between methods below that are noise.")
    if audit:
        notes.append("- Tasks left out (see audit.json): " + "; ".join(f"{t}: {why}" for t, why in audit.items()) + ".")
    else:
        notes.append("- Every anchor task loaded and trained (audit.json lists none left out).")
    failed = trans[trans["failure"].notna()] if len(trans) and "failure" in trans else pd.DataFrame()
    if len(failed):  # one line per kind of reason, e.g. pools with fewer anchors than the method needs
        kinds = failed.assign(why=failed.failure.str.replace(r", got \d+ \(.*\)$", "", regex=True))
        for why, group in kinds.groupby("why"):
            cells = ", ".join(f"{r.label} for {r.held_out}" for r in group.itertuples())
            notes.append(f"- Not translated ({len(group)}): {why} — {cells}.")
    return notes + [""]
