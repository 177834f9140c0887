"""Figures and the Markdown summary of a transfer study, drawn from the results table only.

Nothing here calls a model: `transferlab report RUN` redraws everything from
`RUN/results.sqlite` (or from a tidy CSV/Parquet made by any tool).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from transferlab.errors import TransferlabError
from transferlab.engine.store import NONE
from transferlab.predictions import DEGENERATE_SHARE, gained_cells, is_degenerate
from transferlab.transfer.analysis import ALPHA, primary_metric
from transferlab.transfer.secondary import secondary_report


def matrices(results: pd.DataFrame, model: str, learner: str,
             kinds: tuple[str, ...] = ("", "gain:")) -> list[pd.DataFrame]:
    """One long frame per metric kind ('' = scores, 'gain:', 'relative:', 'efficiency:'),
    each with rows = what was trained on ('base' first) and columns = targets."""
    from transferlab.transfer.analysis import CELL, gain_qvalues, seed_mean

    frame = seed_mean(results[results["model"] == model])
    qvalues = gain_qvalues(results[results["model"] == model])
    frame = frame.merge(qvalues, on=CELL, how="left") if not qvalues.empty else frame.assign(q=np.nan, tests=np.nan)
    targets = sorted(frame["evaluated_on"].unique())
    metric_of = {t: primary_metric(t, sorted(frame.loc[frame["evaluated_on"] == t, "metric"].unique()))
                 for t in targets}
    found: dict[str, list[dict]] = {k: [] for k in kinds}
    shares = frame[frame["metric"].isin(["share:majority", "share:flipped"])].pivot_table(
        index=["learner", "trained_on", "evaluated_on", "condition"], columns="metric", values="value")
    degenerate = {key for key, s in shares.iterrows()
                  if is_degenerate(s.get("share:majority", np.nan), s.get("share:flipped", np.nan))}
    for _, r in frame.iterrows():
        base_metric = metric_of[r["evaluated_on"]]
        is_base = r["condition"] == "baseline"
        if not is_base and r["learner"] != learner:
            continue
        row = {"trained_on": "base" if is_base else r["trained_on"], "evaluated_on": r["evaluated_on"],
               "metric": base_metric, "value": r["value"], "ci_low": r["ci_low"], "ci_high": r["ci_high"],
               "std": r["std"], "seeds": r["seeds"], "n": r["n"],
               "degenerate": (r["learner"], r["trained_on"], r["evaluated_on"], r["condition"]) in degenerate}
        for kind in kinds:
            if r["metric"] == f"{kind}{base_metric}":
                gain = kind == "gain:"  # q-values are the gains' own; ratios keep the CI rule
                found[kind].append({**row, "q": r["q"] if gain else np.nan, "tests": r["tests"] if gain else np.nan})
    return [pd.DataFrame(found[k]) for k in kinds]


def marked(cell: pd.Series | dict, center: float = 0.0) -> bool:
    """A cell's significance mark: its BH q-value below ALPHA when it has one (gains the study
    wrote p-values for), else its 95% CI excluding `center` (ratios, tables from other tools)."""
    if pd.isna(cell["value"]):
        return False
    q = cell.get("q", np.nan)
    if not pd.isna(q):
        return bool(q < ALPHA)
    return bool(cell["ci_low"] > center or cell["ci_high"] < center)


def _fmt_ci(value: float, low: float, high: float, signed: bool = False) -> str:
    if value is None or pd.isna(value):
        return "NA"
    sign = "+" if signed else ""
    text = f"{value:{sign}.3f}"
    if low is not None and not pd.isna(low):
        text += f" [{low:{sign}.3f}, {high:{sign}.3f}]"
    return text


def heatmap(cells: pd.DataFrame, path: Path, title: str, diverging: bool, center: float = 0.0) -> None:
    """An annotated heatmap with CIs. Diverging maps are centred on `center` (0 for gains,
    1 for efficiency) and '*' marks a cell whose 95% CI excludes it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from transferlab.transfer.figures import save_figure

    rows = sorted(cells["trained_on"].unique(), key=lambda r: (r != "base", r))
    cols = sorted(cells["evaluated_on"].unique())
    grid = np.full((len(rows), len(cols)), np.nan)
    notes = [["" for _ in cols] for _ in rows]
    for _, c in cells.iterrows():
        i, j = rows.index(c["trained_on"]), cols.index(c["evaluated_on"])
        if pd.isna(c["value"]):
            notes[i][j] = "NA"
            continue
        grid[i, j] = c["value"]
        star = "*" if diverging and marked(c, center) else ""
        star += "†" if c.get("degenerate", False) else ""
        notes[i][j] = f"{c['value']:+.3f}{star}\n[{c['ci_low']:+.2f}, {c['ci_high']:+.2f}]" if diverging else \
            f"{c['value']:.3f}{star}\n[{c['ci_low']:.2f}, {c['ci_high']:.2f}]"
    fig, ax = plt.subplots(figsize=(1.6 * len(cols) + 2.8, 0.9 * len(rows) + 1.8))
    if diverging:
        bound = float(np.nanmax(np.abs(grid - center))) if np.isfinite(grid).any() else 1.0
        bound = bound or 1.0
        image = ax.imshow(grid, cmap="RdBu", vmin=center - bound, vmax=center + bound)
    else:
        image = ax.imshow(grid, cmap="viridis")
    ax.set_xticks(range(len(cols)), cols, rotation=30, ha="right")
    ax.set_yticks(range(len(rows)), rows)
    ax.set_xlabel("evaluated on")
    ax.set_ylabel("trained on")
    for i in range(len(rows)):
        for j in range(len(cols)):
            if notes[i][j] == "NA":
                ax.text(j, i, "NA", ha="center", va="center", fontsize=8, color="gray")
            elif notes[i][j]:
                # Dark text on light cells, light text on dark cells.
                r, g, b, _ = image.cmap(image.norm(grid[i, j]))
                light = 0.299 * r + 0.587 * g + 0.114 * b > 0.5
                ax.text(j, i, notes[i][j], ha="center", va="center", fontsize=8,
                        color="black" if light else "white")
    ax.set_title(title)
    n = int(cells["n"].max()) if "n" in cells else 0
    by_q = "q" in cells and cells["q"].notna().any()
    marks = [f"* = BH q < {ALPHA:g}" if by_q else f"* = CI excludes {center:g}"] if diverging else []
    if "degenerate" in cells and cells["degenerate"].any():
        marks.append("† = degenerate predictor")
    note = "; ".join(["cells: value [95% bootstrap CI]", *marks, f"n ≤ {n} per target"])
    fig.text(0.01, 0.01, note, fontsize=7, color="dimgray")
    fig.colorbar(image, ax=ax, shrink=0.8)
    save_figure(fig, path)


def write_report(results: pd.DataFrame, out_dir: Path, title: str = "Transfer study", *,
                 labels: dict[str, str] | None = None, methods: dict[str, str] | None = None,
                 similarity: pd.DataFrame | None = None, curves: pd.DataFrame | None = None) -> list[Path]:
    """Heatmaps, asymmetry and similarity figures and `summary.md` for every (model, learner), and
    the tidy `tables/*.csv` with the "compared with the seed" table (`transfer.tables`).

    `labels` (trained_on → nominal label), `methods` (learner → 'sl'/'rl') and
    `similarity` (task_a, task_b, kind, similarity) are what the run stored next to the
    results (`Store.labels()`, ...); without them the drift table labels adapters by
    domain, H3 reads methods from learner names and H2 is not tested. `curves` (the run's
    `engine.curves.read_curves`) draws the learning curves first; without, one line says how.
    """
    if results.empty:
        raise TransferlabError("the results table is empty: run the study first (transferlab run SPEC)")
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    lines = [f"# {title}", "",
             "Scores are means over the evaluation examples with 95% bootstrap CIs; gains are paired differences "
             "against the untrained base model on the same examples (`*`: Benjamini-Hochberg q < 0.05 over "
             "the matrix's gain cells, or the CI excluding zero where the table holds no p-values). "
             "Regenerate with `transferlab report RUN_DIR`.", ""]
    from transferlab.transfer.curves import learning_curves

    curve_lines, curve_figures = learning_curves(curves, out_dir)  # whether training worked comes first
    lines, written = lines + curve_lines, written + curve_figures
    trained = results[results["condition"] != "baseline"]
    pairs = sorted(set(zip(trained["model"], trained["learner"]))) or \
        [(m, NONE) for m in sorted(results["model"].unique())]
    for model, learner in pairs:
        scores, gains, efficiency, relative = matrices(results, model, learner,
                                                       ("", "gain:", "efficiency:", "relative:"))
        stem = f"{model}_{learner}".replace("/", "_")
        findings, secondary = secondary_report(results, model, learner)  # seed 002's secondary metrics
        lines += [f"## {model} — learner `{learner}`", ""]
        if not scores.empty:
            path = out_dir / f"{stem}_scores.png"
            heatmap(scores, path, f"{model}: scores ({learner})", diverging=False)
            written.append(path)
            lines += _table(scores, signed=False, caption=f"![scores]({path.name})")
        if not gains.empty:
            path = out_dir / f"{stem}_gain.png"
            heatmap(gains, path, f"{model}: transfer gain over base ({learner})", diverging=True)
            written.append(path)
            lines += _table(gains, signed=True, caption=f"![transfer gain]({path.name})")
            lines += _findings(gains)[:-1] + findings + [""]
        for frame, kind, name, definition, why_na, center in (
                (efficiency, "efficiency", "transfer efficiency", "transfer / direct score",
                 "the direct score's 95% CI reaches the task's chance level", 1.0),
                (relative, "relative", "relative transfer (gap recovered)", "(transfer − base) / (direct − base)",
                 "the direct gain's 95% CI includes zero: the oracle gained nothing measurable", 0.0)):
            if frame.empty:
                continue
            path = out_dir / f"{stem}_{kind}.png"
            heatmap(frame, path, f"{model}: {name} ({learner})", diverging=True, center=center)
            written.append(path)
            lines += [f"{name[0].upper()}{name[1:]} = {definition}, paired over the examples the cells share. "
                      f"NA where {why_na}, so a ratio would be noise; a cell NA in any seed is NA. "
                      f"`*`: the CI excludes {center:g}.", ""]
            lines += _table(frame, signed=True, caption=f"![{name}]({path.name})", center=center)
        lines += secondary
    figure_lines, figures = _figures(results, out_dir, similarity)
    written += figures
    lines += figure_lines
    lines += analysis_sections(results, labels=labels, methods=methods, similarity=similarity)
    from transferlab.transfer.tables import write_tables  # tables/*.csv and the seed comparison

    table_lines, tables = write_tables(results, out_dir, labels, run_dir=out_dir.parent)
    lines, written = lines + table_lines, written + tables
    summary = out_dir / "summary.md"
    tmp = summary.with_name(f".{summary.name}.{os.getpid()}.tmp")
    tmp.write_text("\n".join(lines) + "\n")
    os.replace(tmp, summary)
    return [summary, *written]


def _table(cells: pd.DataFrame, signed: bool, caption: str, center: float = 0.0) -> list[str]:
    cols = sorted(cells["evaluated_on"].unique())
    metric_of = {c: cells.loc[cells["evaluated_on"] == c, "metric"].iloc[0] for c in cols}
    rows = sorted(cells["trained_on"].unique(), key=lambda r: (r != "base", r))
    head = "| trained on \\ evaluated on | " + " | ".join(f"{c} ({metric_of[c]})" for c in cols) + " |"
    out = ([caption, ""] if caption else []) + [head, "|" + "---|" * (len(cols) + 1)]
    n_of = {c: int(cells.loc[cells["evaluated_on"] == c, "n"].max()) for c in cols}
    for r in rows:
        entries = []
        for c in cols:
            hit = cells[(cells["trained_on"] == r) & (cells["evaluated_on"] == c)]
            if hit.empty:
                entries.append("")
                continue
            h = hit.iloc[0]
            star = "*" if signed and marked(h, center) else ""
            spread = f" ({int(h['seeds'])} seeds)" if h.get("seeds", 1) > 1 else ""
            if spread and not pd.isna(h["value"]):
                spread = f" ± {h['std']:.3f}{spread}"
            dagger = "†" if h.get("degenerate", False) else ""
            entries.append(_fmt_ci(h["value"], h["ci_low"], h["ci_high"], signed) + star + dagger + spread)
        out.append(f"| {r} | " + " | ".join(entries) + " |")
    out += ["", "n per target: " + ", ".join(f"{c}: {n_of[c]}" for c in cols)
            + (f"; † = degenerate predictor (one answer, or the base model's answers flipped, on at least "
               f"{DEGENERATE_SHARE:.0%} of the examples): not a finding" if cells.get("degenerate", pd.Series(
                   dtype=bool)).any() else ""), ""]
    return out


def _findings(gains: pd.DataFrame) -> list[str]:
    off = gains[gains["trained_on"] != gains["evaluated_on"]]
    diag = gains[gains["trained_on"] == gains["evaluated_on"]]
    out = ["Findings:"]
    tests = gains["tests"].max() if "tests" in gains else np.nan
    if not pd.isna(tests):
        uncorrected = int(((gains["ci_low"] > 0) | (gains["ci_high"] < 0)).sum())
        out.append(f"- significance is controlled over the matrix: Benjamini-Hochberg q < {ALPHA:g} over its "
                   f"{int(tests)} gain cells (at a {ALPHA:.0%} level each, about {ALPHA * tests:.1f} of them would "
                   f"pass by chance alone); {uncorrected} cells have a CI excluding zero before the correction.")
    flagged = gains[gains["degenerate"]] if "degenerate" in gains else gains.iloc[0:0]
    if len(flagged):
        out.append("- degenerate predictors (†), whose gains are not findings: " + ", ".join(
            f"{r.trained_on} → {r.evaluated_on}" for r in flagged.itertuples()) + ".")
    if not diag.empty:
        sig = diag[diag.apply(marked, axis=1) & (diag["value"] > 0)]
        out.append(f"- direct training helped its own task significantly in {len(sig)} of {len(diag)} tasks.")
    if not off.empty:
        gained = gained_cells(off)
        if len(gained):
            best = gained.sort_values("value").iloc[-1]
            out.append(f"- largest transfer: {best['trained_on']} → {best['evaluated_on']}: "
                       f"{_fmt_ci(best['value'], best['ci_low'], best['ci_high'], True)}.")
        else:
            out.append("- no transfer cell gained over the base model (degenerate predictors left out).")
        mark = off.apply(marked, axis=1) if len(off) else pd.Series(dtype=bool)
        positive = off[mark & (off["value"] > 0)]
        negative = off[mark & (off["value"] < 0)]
        out.append(f"- significant positive transfer in {len(positive)} of {len(off)} off-diagonal cells, "
                   f"negative in {len(negative)}" + (": " + ", ".join(
                       f"{r.trained_on} → {r.evaluated_on}" for r in negative.itertuples()) if len(negative) else "")
                   + ".")
    return out + [""]


def _figures(results: pd.DataFrame, out_dir: Path, similarity: pd.DataFrame | None) -> tuple[list[str], list[Path]]:
    """The asymmetry plot and one similarity scatter per similarity kind, with their Markdown."""
    from transferlab.transfer.figures import asymmetry_plot, similarity_scatter
    from transferlab.transfer.similarity import correlate
    from transferlab.transfer.analysis import asymmetry, primary_rows, seed_mean

    lines: list[str] = []
    written: list[Path] = []
    pairs = asymmetry(results)
    if not pairs.empty:
        path = out_dir / "asymmetry.png"
        asymmetry_plot(pairs, path, "Asymmetry: gain A → B against B → A (95% CIs)")
        written.append(path)
        lines += ["## Asymmetry plot", "", f"![asymmetry]({path.name})", ""]
    if similarity is None or similarity.empty:
        return lines, written
    cells = seed_mean(primary_rows(results, "gain", ("transfer",), pooled=True))
    # One point per directed pair: averaged over models and learners, as H2 does.
    points = cells.groupby(["trained_on", "evaluated_on"], as_index=False)[["value", "ci_low", "ci_high"]].mean()
    points = points.rename(columns={"trained_on": "source", "evaluated_on": "target"})
    lines += ["## Transfer against task similarity", "",
              "Spearman's ρ between the similarity of two tasks and the transfer gain from one to the other, one "
              "point per directed pair. Pairs sharing a task are not independent, so the 95% bootstrap CI resamples "
              "tasks (keeping every pair between drawn tasks) and p is a one-sided permutation test that relabels "
              "the tasks (Mantel).", ""]
    for kind in sorted(similarity["kind"].unique()):
        one = similarity[similarity["kind"] == kind]
        corr = correlate(one, points[["source", "target", "value"]])
        joined = one.merge(points, left_on=["task_a", "task_b"], right_on=["source", "target"])
        if joined.empty:
            continue
        path = out_dir / f"similarity_{kind}.png"
        similarity_scatter(joined, corr, kind, path, f"Transfer gain vs {kind} similarity")
        written.append(path)
        interval = f"({corr.note})" if corr.note else f"[{corr.ci_low:+.3f}, {corr.ci_high:+.3f}]"
        rho = (f"ρ = {corr.rho:+.3f} {interval} over {corr.n} pairs of {corr.tasks} tasks, "
               f"permutation p = {corr.p:.3f}"
               if corr.reason == "" else f"not computed: {corr.reason}")
        lines += [f"- {kind}: {rho}. ![{kind}]({path.name})"]
    return lines + [""], written


def analysis_sections(results: pd.DataFrame, *, labels: dict[str, str] | None = None,
                      methods: dict[str, str] | None = None, similarity: pd.DataFrame | None = None) -> list[str]:
    """Capability drift, asymmetry, negative transfer, task clusters and the seed-002
    hypotheses, as Markdown (from the stored tables alone)."""
    from transferlab.transfer.drift import drift_table
    from transferlab.transfer.analysis import asymmetry, negative_transfer
    from transferlab.transfer.clusters import cluster_tasks
    from transferlab.transfer.hypotheses import hypothesis_table

    lines: list[str] = []
    label_note = ("Each adapter carries the nominal label its spec gave it (`labels:`), or the domain of the task "
                  "it was trained on. " if labels else "Each adapter's nominal label is the domain it was trained on. ")
    # H2 correlates one similarity measure: the embedding one when the run has it.
    h2_similarity = None
    if similarity is not None and not similarity.empty:
        kind = "embedding" if "embedding" in set(similarity["kind"]) else sorted(similarity["kind"].unique())[0]
        h2_similarity = similarity[similarity["kind"] == kind]

    # Only tasks that are both a source and a target have a whole profile: a source-only task
    # and a target-only one share no cell, so they are left out (and named) instead.
    trained = results[results["condition"].isin(("transfer", "direct"))]
    both = set(trained["trained_on"]) & set(trained["evaluated_on"])
    one_sided = sorted((set(trained["trained_on"]) | set(trained["evaluated_on"])) - both)
    cluster_note = "Average-linkage clustering of each task's gains as a source and as a target."
    if one_sided:
        cluster_note += (f" Left out, being only a source or only a target: {', '.join(one_sided)}.")

    def clusters() -> pd.DataFrame:
        found = cluster_tasks(results[results["trained_on"].isin(both) & results["evaluated_on"].isin(both)])
        return pd.DataFrame({"task": found.order, "cluster": [found.assignment[t] for t in found.order]})

    sections = [
        ("Capability drift", lambda: drift_table(results, labels=labels),
         ["trained_on", "label", "seeds", "on_label_targets", "on_label_gain", "on_label_std", "on_label_ci_low",
          "on_label_ci_high", "best_off_label", "best_off_label_gain", "drift_score", "drift_std", "pattern"],
         label_note + "The drift score is the mean off-label gain minus the on-label gain, in the metric's own "
         "units; `_std` columns are the spread between seeds."),
        ("Asymmetry (A→B vs B→A, transfer gain)", lambda: asymmetry(results),
         ["task_a", "task_b", "a_to_b", "b_to_a", "difference", "disjoint"], ""),
        ("Negative transfer (gain CI entirely below zero)", lambda: negative_transfer(results),
         ["learner", "trained_on", "evaluated_on", "metric", "value", "ci_low", "ci_high"], ""),
        ("Tasks clustered by transfer profile", clusters, ["task", "cluster"], cluster_note),
        ("Hypotheses of seed 002", lambda: hypothesis_table(results, methods=methods, similarity=h2_similarity),
         ["hypothesis", "claim", "evidence", "verdict"],
         "H2 uses the embedding similarity of the tasks' texts." if h2_similarity is not None else ""),
    ]
    for title, build, columns, note in sections:
        lines += [f"## {title}", ""]
        try:
            frame = build()
        except ValueError as err:
            lines += [f"Not enough cells: {err}", ""]
            continue
        if frame.empty:
            lines += ["No cells to show.", ""]
            continue
        if note:
            lines += [note, ""]
        shown = [c for c in columns if c in frame.columns]
        lines += ["| " + " | ".join(shown) + " |", "|" + "---|" * len(shown)]
        for _, row in frame.iterrows():
            lines.append("| " + " | ".join(_cell(row[c]) for c in shown) + " |")
        lines.append("")
    return lines


def _cell(value: object) -> str:
    if isinstance(value, float):
        return "NA" if pd.isna(value) else f"{value:+.3f}"
    return str(value).replace("|", "/")
