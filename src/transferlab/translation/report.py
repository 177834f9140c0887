"""The translation report: Markdown and small PNGs, drawn from the run's tables alone.

    transferlab run experiments/translation.yaml   # writes OUTPUT/report/translation.md and figures

Nothing here calls a model: it reads `tables/*.csv`, `tables/summary.json`, `audit.json`
and `run.json`, so a report can be redrawn from a copied run directory.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from transferlab.translation.translators import LEARNED

ORDER = ("mean", "global_ridge", "pertensor_ridge", "topk_global_ridge", "topk_pertensor_ridge", "pertensor_mlp",
         "subspace_projection")


def _read(run: Path, name: str) -> pd.DataFrame:
    path = run / "tables" / name
    try:
        return pd.read_csv(path)
    except (FileNotFoundError, pd.errors.EmptyDataError):
        return pd.DataFrame()


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "NA"
    return f"{value:.{digits}f}"


def _ci(row: Any, col: str, digits: int = 3) -> str:
    value = row.get(col)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "NA"
    lo, hi = row.get(f"{col}_lo"), row.get(f"{col}_hi")
    return f"{value:.{digits}f} [{_fmt(lo, digits)}, {_fmt(hi, digits)}]"


def write_report(run: str | Path, out: str | Path | None = None) -> list[Path]:
    """Write `translation.md` and its figures; returns the Markdown path first, then the figures."""
    import matplotlib

    matplotlib.use("Agg")
    run = Path(run)
    out = Path(out) if out else run / "report"
    out.mkdir(parents=True, exist_ok=True)
    tasks, trans, matrix = _read(run, "tasks.csv"), _read(run, "translations.csv"), _read(run, "matrix.csv")
    summary = json.loads((run / "tables" / "summary.json").read_text())
    audit = json.loads((run / "audit.json").read_text()).get("failed_tasks", {}) if (run / "audit.json").exists() else {}
    runs = json.loads((run / "run.json").read_text()) if (run / "run.json").exists() else []
    figures: list[Path] = []
    main = trans[trans.experiment == "main"] if len(trans) else trans
    methods = [m for m in ORDER if len(main) and m in set(main.method)]
    methods += sorted(set(main.method) - set(methods)) if len(main) else []

    lines = [f"# Cross-model LoRA adapter translation: {summary['model_x']} → {summary['model_y']}", ""]
    if runs:
        last = runs[-1]
        total = sum(r["wall_seconds"] for r in runs)
        lines += [f"Command: `{last['command']}`  ", f"Wall time: {total / 60:.1f} min over {len(runs)} invocation(s) "
                  f"(last finished {last['finished']}).", ""]
    spec = json.loads((run / "spec.json").read_text()) if (run / "spec.json").exists() else {}
    if spec:
        a = spec["anchor"]
        lines += [f"Anchors: LoRA r={a['rank']}, alpha={a['alpha']}, target={','.join(a['target_modules'])}, "
                  f"lr={a['learning_rate']}, steps={a['steps'] or 'one epoch'}, batch={a['batch_size']}, "
                  f"{spec['budgets']['train_examples']} training examples; evaluation on "
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
            values = [_fmt(cells.loc[m, "score"]) if m in cells.index and "score" in cells else "—" for m in methods]
            gap = cells.loc[best] if best in cells.index else None
            gap_text = "NA" if gap is None or pd.isna(gap.get("gap")) else _fmt(gap["gap"], 2)
            lines.append(f"| {t.domain} | {t.task} | {_fmt(getattr(t, 'base_y', math.nan))} | " + " | ".join(values)
                         + f" | {_fmt(getattr(t, 'oracle', math.nan))} | {gap_text} |")
        lines += ["", f"Scores are {tasks.metric.iloc[0]} (the task's primary metric) on n={int(tasks.n.max())} examples. "
                  "gap_recovered = (method − base_Y) / (oracle − base_Y), NA when oracle − base_Y is within noise.", ""]
        figures.append(_main_figure(main, tasks, methods, out / "main_table.png"))
        lines += ["![Main table](main_table.png)", ""]
        lines += ["Gap recovered per method (NA: oracle gain not distinguishable from zero):", ""]
        header = ["Task", "oracle − base_Y", *methods]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for t in tasks.itertuples():
            cells = main[main.held_out == t.task].set_index("method")
            gaps = [_ci(cells.loc[m].to_dict(), "gap", 2) if m in cells.index else "—" for m in methods]
            lines.append(f"| {t.task} | {_ci(t._asdict(), 'oracle_gain')} | " + " | ".join(gaps) + " |")
        lines.append("")

    # ---- summary -------------------------------------------------------------------------
    lines += ["## Summary (seed 000's success criteria)", ""]
    best = summary.get("best_learned_method")
    lines += [f"- Best learned method minus the mean translator, averaged over held-out tasks: "
              f"`{_fmt(summary.get('best_learned_minus_mean'), 3)}` ({best}).",
              f"- Domain-average gap recovered ({best}): `" + json.dumps(
                  {d: (None if v is None or (isinstance(v, float) and math.isnan(v)) else round(v, 3))
                   for d, v in (summary.get("best_domain_gap_recovered") or {}).items()}) + "` (NA cells left out; "
              "null = no task of the domain has a defined gap).",
              f"- gap_recovered is NA on {len(summary['gap_na'])} of {summary['tasks']} tasks (oracle gain within noise).", ""]
    header = ["method", "mean score", "minus mean translator", "mean gap recovered (defined on)", "update cosine to oracle",
              "‖prediction‖ / ‖oracle‖", "fit s"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for m in methods:
        s = summary["methods"][m]
        lines.append(f"| {m} | {_fmt(s['mean_score'])} | {_fmt(s['minus_mean_translator'], 3)} | "
                     f"{_fmt(s['mean_gap_recovered'], 2)} ({s['gap_defined_on']}) | {_fmt(s['mean_update_cosine'], 3)} | "
                     f"{_fmt(s.get('mean_norm_ratio', math.nan), 2)} | {_fmt(s['mean_fit_seconds'], 2)} |")
    lines.append("")
    if methods:
        figures.append(_summary_figure(main, methods, out / "summary.png"))
        lines += ["![Per-method difference to the mean translator](summary.png)", ""]

    # ---- experiment 2 ------------------------------------------------------------------
    scaling = trans[trans.experiment == "scaling"] if len(trans) else trans
    if len(scaling):
        lines += ["## Experiment 2 — anchor-count and top-k scaling", ""]
        path = _scaling_figure(trans, out / "scaling.png")
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
        figures.append(_domain_figure(cross, main, out / "domain_heatmap.png"))
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
        figures.append(_matrix_figure(matrix, out / "matrix.png"))
        lines += ["![Model × trained on](matrix.png)", "",
                  "| Task | Model | base | trained on " + " | trained on ".join(sorted(set(matrix.model))) + " |",
                  "|---|---|---|" + "---|" * len(set(matrix.model))]
        for (task, model), group in matrix.groupby(["task", "model"], sort=False):
            cells = {r.trained_on_model: r for r in group.itertuples()}
            values = [_fmt(cells[m].score) + (" (translated)" if cells[m].translated else "") if m in cells else "—"
                      for m in sorted(set(matrix.model))]
            lines.append(f"| {task} | {model} | {_fmt(cells['-'].score) if '-' in cells else '—'} | "
                         + " | ".join(values) + " |")
        lines.append("")

    # ---- failure modes ---------------------------------------------------------------
    lines += ["## Honest failure modes and notes", ""]
    lines += _failure_notes(summary, tasks, trans, audit)
    text = "\n".join(lines) + "\n"
    md = out / "translation.md"
    md.write_text(text)
    return [md, *figures]


def _main_figure(main: pd.DataFrame, tasks: pd.DataFrame, methods: list[str], path: Path) -> Path:
    import matplotlib.pyplot as plt
    import numpy as np

    cols = ["base_Y", *methods, "oracle"]
    grid = np.full((len(tasks), len(cols)), np.nan)
    for i, t in enumerate(tasks.itertuples()):
        grid[i, 0] = getattr(t, "base_y", np.nan)
        grid[i, -1] = getattr(t, "oracle", np.nan)
        cells = main[main.held_out == t.task].set_index("method")
        for j, m in enumerate(methods, start=1):
            if m in cells.index and "score" in cells:
                grid[i, j] = cells.loc[m, "score"]
    gain = grid - grid[:, :1]
    fig, ax = plt.subplots(figsize=(1.0 + 0.9 * len(cols), 0.8 + 0.36 * len(tasks)))
    bound = np.nanmax(np.abs(gain)) if np.isfinite(gain).any() else 1
    im = ax.imshow(gain, cmap="RdBu", vmin=-bound, vmax=bound, aspect="auto")
    for i in range(grid.shape[0]):
        for j in range(grid.shape[1]):
            if np.isfinite(grid[i, j]):
                ax.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center", fontsize=7)
    ax.set_xticks(range(len(cols)), [c.replace("_", "\n", 1) for c in cols], fontsize=7)
    ax.set_yticks(range(len(tasks)), [f"{t.task} ({t.domain})" for t in tasks.itertuples()], fontsize=7)
    fig.colorbar(im, ax=ax, label="score − base_Y", shrink=0.8)
    ax.set_title("Held-out task scores on model Y (colour: gain over base_Y)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _summary_figure(main: pd.DataFrame, methods: list[str], path: Path) -> Path:
    import matplotlib.pyplot as plt

    mean = main[main.method == "mean"].set_index("held_out")
    fig, ax = plt.subplots(figsize=(6.5, 3.0))
    for i, m in enumerate(methods):
        cells = main[(main.method == m) & main.held_out.isin(mean.index)]
        if "score" not in cells:
            continue
        diff = (cells.set_index("held_out").score - mean.score).dropna()
        ax.scatter([i] * len(diff), diff, s=12, alpha=0.6, color="C0" if m in LEARNED else "C7")
        if len(diff):
            ax.plot([i - 0.3, i + 0.3], [diff.mean()] * 2, color="C3")
    ax.axhline(0, color="black", lw=0.6)
    ax.set_xticks(range(len(methods)), [m.replace("_", "\n", 1) for m in methods], fontsize=7)
    ax.set_ylabel("score − mean translator")
    ax.set_title("Per held-out task (dots) and average (red)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


EVALUATED = ("score", "score_lo", "score_hi", "gain", "gain_lo", "gain_hi", "gap", "gap_lo", "gap_hi")


def _same_evaluated_tasks(main: pd.DataFrame, experiment: pd.DataFrame) -> pd.DataFrame:
    """Experiment 1's rows with model-Y scores kept only for the tasks the other experiment
    evaluated, so every point of a curve or heatmap averages over the same tasks."""
    evaluated = set(experiment[experiment.evaluated.astype(str) == "True"].held_out)
    main = main.copy()
    for col in EVALUATED:
        if col in main:
            main.loc[~main.held_out.isin(evaluated), col] = math.nan
    return main


def _scaling_points(trans: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    scaling = trans[trans.experiment == "scaling"]
    main = _same_evaluated_tasks(trans[trans.experiment == "main"], scaling)
    held = set(scaling.held_out)
    base_method = scaling[~scaling.label.str.contains("@k=")].method
    count_method = base_method.iloc[0] if len(base_method) else "global_ridge"
    counts = pd.concat([scaling[scaling.label.str.contains("@n=")],
                        main[(main.method == count_method) & main.held_out.isin(held)]])
    topk_method = scaling[scaling.label.str.contains("@k=")].method
    topk_name = topk_method.iloc[0] if len(topk_method) else "topk_global_ridge"
    ks = pd.concat([scaling[scaling.label.str.contains("@k=")],
                    main[(main.method == topk_name) & main.held_out.isin(held)]])
    return counts, ks


def _scaling_figure(trans: pd.DataFrame, path: Path) -> Path:
    import matplotlib.pyplot as plt

    counts, ks = _scaling_points(trans)
    fig, axes = plt.subplots(1, 2, figsize=(8.5, 3.2))
    for ax, frame, x, title in ((axes[0], counts, "n_anchors", "anchor count"), (axes[1], ks, "k", "top-k")):
        if not len(frame):
            continue
        frame = frame.copy()
        frame[x] = pd.to_numeric(frame[x], errors="coerce")
        grouped = frame.groupby(x)
        if "gain" in frame:
            g = grouped.gain.mean()
            ax.plot(g.index, g.values, "o-", color="C0", label="gain over base_Y")
        c = grouped.centered_cosine.mean() if "centered_cosine" in frame else None
        ax2 = ax.twinx()
        if c is not None:
            ax2.plot(c.index, c.values, "s--", color="C1", label="centred cosine to oracle")
        ax.set_xlabel(title)
        ax.set_ylabel("gain over base_Y", color="C0")
        ax2.set_ylabel("centred update cosine", color="C1")
        ax.axhline(0, color="black", lw=0.5)
        evaluated = frame.dropna(subset=["score"]).held_out.nunique() if "score" in frame else 0
        ax.set_title(f"{frame.method.iloc[0]}: gain over {evaluated} evaluated, cosine over "
                     f"{frame.held_out.nunique()} held-out tasks", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _scaling_table(trans: pd.DataFrame) -> list[str]:
    counts, ks = _scaling_points(trans)
    lines = ["| curve | x | tasks (evaluated) | mean score | mean gain over base_Y | mean gap recovered (defined on) | "
             "centred cosine |", "|---|---|---|---|---|---|---|"]
    for name, frame, x in (("anchors", counts, "n_anchors"), ("top-k", ks, "k")):
        frame = frame.copy()
        frame[x] = pd.to_numeric(frame[x], errors="coerce")
        for value, group in frame.groupby(x):
            gaps = group.gap.dropna() if "gap" in group else pd.Series(dtype=float)
            evaluated = group.dropna(subset=["score"]).held_out.nunique() if "score" in group else 0
            lines.append(f"| {name} | {int(value)} | {group.held_out.nunique()} ({evaluated}) | "
                         f"{_fmt(group.score.mean()) if 'score' in group else 'NA'} | "
                         f"{_fmt(group.gain.mean()) if 'gain' in group else 'NA'} | "
                         f"{_fmt(gaps.mean(), 2) if len(gaps) else 'NA'} ({len(gaps)}) | "
                         f"{_fmt(group.centered_cosine.mean())} |")
    return lines + [""]


def _domain_cells(cross: pd.DataFrame, main: pd.DataFrame) -> pd.DataFrame:
    method = cross.method.iloc[0]
    everything = _same_evaluated_tasks(main[main.method == method], cross).assign(pool="all")
    frame = pd.concat([cross[cross.method == method], everything[everything.held_out.isin(set(cross.held_out))]])
    return frame


def _domain_figure(cross: pd.DataFrame, main: pd.DataFrame, path: Path) -> Path:
    import matplotlib.pyplot as plt
    import numpy as np

    frame = _domain_cells(cross, main)
    domains = list(dict.fromkeys(frame.domain))
    pools = [p for p in dict.fromkeys(frame.pool) if p != "all"] + ["all"]
    fig, axes = plt.subplots(1, 2, figsize=(4.0 + 1.4 * len(pools), 0.9 + 0.5 * len(domains)))
    for ax, col, title, cmap in ((axes[0], "gain", "gain over base_Y", "RdBu"),
                                 (axes[1], "centered_cosine", "centred update cosine", "PuOr")):
        grid = np.full((len(domains), len(pools)), np.nan)
        if col in frame:
            for i, d in enumerate(domains):
                for j, p in enumerate(pools):
                    values = frame[(frame.domain == d) & (frame.pool == p)][col].dropna()
                    if len(values):
                        grid[i, j] = values.mean()
        bound = np.nanmax(np.abs(grid)) if np.isfinite(grid).any() else 1
        im = ax.imshow(grid, cmap=cmap, vmin=-bound, vmax=bound, aspect="auto")
        for i in range(len(domains)):
            for j in range(len(pools)):
                ax.text(j, i, "—" if np.isnan(grid[i, j]) else f"{grid[i, j]:.3f}", ha="center", va="center",
                        fontsize=7)
        ax.set_xticks(range(len(pools)), pools, fontsize=7)
        ax.set_yticks(range(len(domains)), domains, fontsize=7)
        ax.set_xlabel("anchor pool")
        ax.set_ylabel("held-out domain")
        ax.set_title(f"{frame.method.iloc[0]}: {title}", fontsize=8)
        fig.colorbar(im, ax=ax, shrink=0.8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _domain_table(cross: pd.DataFrame, main: pd.DataFrame) -> list[str]:
    frame = _domain_cells(cross, main)
    lines = ["| Held-out domain | anchor pool | tasks (evaluated) | mean gain over base_Y | mean gap recovered (defined on) | "
             "centred cosine | not run |", "|---|---|---|---|---|---|---|"]
    for (domain, pool), group in frame.groupby(["domain", "pool"], sort=False):
        ran = group[group.get("failure").isna()] if "failure" in group else group
        gaps = ran.gap.dropna() if "gap" in ran else pd.Series(dtype=float)
        skipped = len(group) - len(ran)
        evaluated = ran.dropna(subset=["score"]).held_out.nunique() if "score" in ran else 0
        lines.append(f"| {domain} | {pool} | {len(ran)} ({evaluated}) | "
                     f"{_fmt(ran.gain.mean()) if 'gain' in ran and len(ran) else 'NA'} | "
                     f"{_fmt(gaps.mean(), 2) if len(gaps) else 'NA'} ({len(gaps)}) | "
                     f"{_fmt(ran.centered_cosine.mean()) if len(ran) else 'NA'} | {skipped or ''} |")
    return lines + [""]


def _matrix_figure(matrix: pd.DataFrame, path: Path) -> Path:
    import matplotlib.pyplot as plt
    import numpy as np

    models = list(dict.fromkeys(matrix.model))
    cols = ["-", *models]
    grid = np.full((len(models), len(cols)), np.nan)
    for i, m in enumerate(models):
        for j, c in enumerate(cols):
            values = matrix[(matrix.model == m) & (matrix.trained_on_model == c)].score
            if len(values):
                grid[i, j] = values.mean()
    fig, ax = plt.subplots(figsize=(5.2, 2.6))
    im = ax.imshow(grid, cmap="magma", aspect="auto")
    for i in range(grid.shape[0]):
        for j in range(grid.shape[1]):
            if np.isfinite(grid[i, j]):
                ax.text(j, i, f"{grid[i, j]:.3f}", ha="center", va="center", fontsize=8, color="cyan")
    ax.set_xticks(range(len(cols)), ["base", *models], fontsize=7)
    ax.set_yticks(range(len(models)), models, fontsize=7)
    ax.set_xlabel("adapter trained on (off-diagonal: translated)")
    ax.set_ylabel("model")
    ax.set_title(f"Mean over {matrix.task.nunique()} tasks", fontsize=9)
    fig.colorbar(im, ax=ax, shrink=0.8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def finite_mean_local(values: list[float]) -> float:
    kept = [v for v in values if v is not None and not math.isnan(v)]
    return sum(kept) / len(kept) if kept else math.nan


def _failure_notes(summary: dict[str, Any], tasks: pd.DataFrame, trans: pd.DataFrame,
                   audit: dict[str, str]) -> list[str]:
    notes = []
    na = summary.get("gap_na", {})
    if na:
        notes.append(f"- The oracle (a Y adapter trained on the held-out task) gains nothing distinguishable from noise "
                     f"on {len(na)} of {summary['tasks']} tasks ({', '.join(na)}); their gap_recovered is NA, and "
                     "any translation there can only be judged by its raw score against base_Y.")
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
        ratio = finite_mean_local([methods[m]["mean_norm_ratio"] for m in shrunk])
        notes.append(f"- Predictions are shrunk: the learned methods' updates are on average {ratio:.2f}x the oracle's "
                     "size. A ridge chosen by leave-one-out that finds no X→Y signal returns (nearly) the mean "
                     "adapter, and averaging anchors cancels their task-specific directions; a small update need "
                     "not move any decision of model Y.")
    if "subspace_projection" in methods:
        s = methods["subspace_projection"]
        notes.append(f"- The training-free subspace projection maps X's i-th singular direction onto Y's; its mean update "
                     f"cosine to the oracle is {_fmt(s['mean_update_cosine'])}: across model families those directions "
                     "do not correspond, so it is a floor, not a competitor.")
    if len(trans) and "centered_cosine" in trans:
        main = trans[(trans.experiment == "main") & trans.method.isin(LEARNED)]
        if len(main):
            value = main.centered_cosine.mean()
            reading = ("they barely point from the mean towards the oracle: the anchor Y adapters span little of a new "
                       "task's update" if value < 0.3 else "the direction is partly right, yet a right direction in "
                       "update space need not change the model's decisions")
            notes.append(f"- In update space the learned predictions depart from the mean adapter with a mean centred "
                         f"cosine of {_fmt(value)} to the oracle's departure (1 = its direction exactly, 0 = unrelated): "
                         f"{reading}.")
    if len(tasks) and "n" in tasks:
        notes.append(f"- Each score uses {int(tasks.n.max())} examples: a 95% CI is roughly ±{1.96 * 0.5 / math.sqrt(tasks.n.max()):.2f} "
                     "around a 0.5 accuracy, so differences between methods below that are noise.")
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
