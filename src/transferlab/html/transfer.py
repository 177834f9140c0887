"""The HTML page of a transfer (or drift) run: interactive heatmaps, changed examples, curves, tables.

    transferlab report RUN        # writes RUN/report/report.html beside summary.md and the PNGs

Per (model, learner), heatmaps of scores, gains, efficiency and relative transfer (hover:
value, 95 % CI, n, q-value, seeds; `*` and `†` as in the PNGs); a click on a trained cell lists
the examples whose outcome changed against the base model (`html.examples`). Then the learning
curves, the tidy results table and the whole `summary.md` (drift, asymmetry, hypotheses), its
tables sortable. The matrices and the significance rule are the transfer study's own
(`transfer.report.matrices` and `marked`), passed in by its report so the numbers here are
the numbers in the PNGs; this package imports no study.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from transferlab.html.charts import HeatCell, heatmap
from transferlab.html.curves import curve_section
from transferlab.html.examples import CAP, changed_examples
from transferlab.html.markdown import markdown_section
from transferlab.html.page import PAGE, Page, esc, write_page, write_summary
from transferlab.html.tables import Cell, ci_text, frame_table, missing, number, table
from transferlab.predictions import gained_cells

KINDS = ("", "gain:", "efficiency:", "relative:")
# kind -> (name, diverging, centre)
SHOWN = {"": ("scores", False, 0.0), "gain:": ("transfer gain over base", True, 0.0),
         "efficiency:": ("transfer efficiency (transfer / direct)", True, 1.0),
         "relative:": ("relative transfer (gap recovered)", True, 0.0)}
ALPHA = 0.05
RESULT_COLUMNS = ["model", "learner", "trained_on", "evaluated_on", "condition", "seed", "metric", "value", "n",
                  "ci_low", "ci_high"]


def _order(cells: Any) -> tuple[list[str], list[str]]:
    rows = sorted(cells["trained_on"].astype(str).unique(), key=lambda r: (r != "base", r))
    return rows, sorted(cells["evaluated_on"].astype(str).unique())


def _hover(c: Any, kind: str, marked: bool) -> str:
    name, diverging, centre = SHOWN[kind]
    lines = [f"trained on <b>{esc(c['trained_on'])}</b>",
             f"evaluated on <b>{esc(c['evaluated_on'])}</b> ({esc(c['metric'])})",
             f"{name}: {number(c['value'], signed=diverging)}",
             f"95% CI [{number(c['ci_low'], signed=diverging)}, {number(c['ci_high'], signed=diverging)}]",
             f"n = {number(c['n'], 0)}"]
    seeds = c.get("seeds")
    if not missing(seeds) and int(seeds) > 1:
        lines.append(f"seeds: {int(seeds)}, std {number(c.get('std'))}")
    q = c.get("q")
    if not missing(q):
        lines.append(f"q-value {float(q):.3g} (Benjamini-Hochberg over {number(c.get('tests'), 0)} gain cells)")
    elif kind == "gain:":
        lines.append("q-value: none stored (mark = CI excludes 0)")
    if diverging:
        lines.append("significant *" if marked else "not significant")
    if c.get("degenerate", False):
        lines.append("† degenerate predictor (one answer everywhere, or flips the base wholesale)")
    if str(c["trained_on"]) != "base":
        lines.append("<i>click: the examples whose outcome changed</i>")
    return "<br>".join(lines)


def _heat(page: Page, cells: Any, kind: str, model: str, learner: str, mark: Callable, group: str) -> None:
    name, diverging, centre = SHOWN[kind]
    rows, cols = _order(cells)
    found = {}
    for _, c in cells.iterrows():
        marked = bool(diverging and mark(c, centre))
        star = ("*" if marked else "") + ("†" if c.get("degenerate", False) else "")
        if missing(c["value"]):
            label = "NA"
        else:
            ci = "" if missing(c["ci_low"]) else (f"<br>[{number(c['ci_low'], 2, diverging)}, "
                                                  f"{number(c['ci_high'], 2, diverging)}]")
            label = f"{number(c['value'], 3, diverging)}{star}{ci}"
        found[str(c["trained_on"]), str(c["evaluated_on"])] = HeatCell(c["value"], label, _hover(c, kind, marked))
    by_q = "q" in cells and cells["q"].notna().any()
    marks = ([f"* = BH q < {ALPHA:g}" if by_q else f"* = CI excludes {centre:g}"] if diverging else [])
    if "degenerate" in cells and cells["degenerate"].any():
        marks.append("† = degenerate predictor")
    n = number(cells["n"].max(), 0) if "n" in cells else "?"
    note = "; ".join(["cells: value [95% bootstrap CI]", *marks, f"n ≤ {n} per target", "click a cell for examples"])
    data, layout = heatmap(rows, cols, found, title=f"{model}: {name} ({learner})", diverging=diverging,
                           center=centre, colorbar=name.split(" (")[0])
    page.chart(data, layout, examples=group, caption=note, wide=len(cols) > 6)


def _cell_table(cells: Any, kind: str, mark: Callable) -> str:
    name, diverging, centre = SHOWN[kind]
    rows = []
    for _, c in cells.iterrows():
        marked = bool(diverging and mark(c, centre))
        rows.append([str(c["trained_on"]), str(c["evaluated_on"]), c["metric"],
                     Cell(ci_text(c["value"], c["ci_low"], c["ci_high"], signed=diverging), c["value"]),
                     Cell(number(c["n"], 0), c["n"]), Cell("—" if missing(c.get("q")) else f"{float(c['q']):.3g}",
                                                           c.get("q")),
                     "*" if marked else "", "†" if c.get("degenerate", False) else ""])
    return table(["trained on", "evaluated on", "metric", f"{name} [95% CI]", "n", "q-value", "mark", "degenerate"],
                 rows)


def _headline(pairs: list[tuple[str, str, Any]], mark: Callable) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for model, learner, gains in pairs[:3]:
        if gains.empty:
            continue
        who = f"{model} / {learner}" if len(pairs) > 1 else ""
        trained = gains[gains["trained_on"] != "base"]
        own = trained[trained["trained_on"] == trained["evaluated_on"]]
        off = trained[trained["trained_on"] != trained["evaluated_on"]]
        up = [r for _, r in off.iterrows() if mark(r, 0.0) and r["value"] > 0]
        down = [r for _, r in off.iterrows() if mark(r, 0.0) and r["value"] < 0]
        helped = sum(1 for _, r in own.iterrows() if mark(r, 0.0) and r["value"] > 0)
        prefix = f"{who}: " if who else ""
        out.append((f"{prefix}matrix",
                    f"{trained['trained_on'].nunique()} sources × {gains['evaluated_on'].nunique()} targets"))
        if len(own):
            out.append((f"{prefix}direct training helped significantly", f"{helped} of {len(own)} tasks"))
        if len(off):
            out.append((f"{prefix}significant transfer (off-diagonal)",
                        f"+{len(up)} / −{len(down)} of {len(off)} cells"))
            best = gained_cells(off).sort_values("value").tail(1)  # a zero or a degenerate cell is no "largest"
            if len(best):
                b = best.iloc[0]
                out.append((f"{prefix}largest transfer", f"{b['trained_on']} → {b['evaluated_on']}: "
                            f"{ci_text(b['value'], b['ci_low'], b['ci_high'], signed=True)}"))
    return out


def _spec(run_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((run_dir / "spec.json").read_text())
    except (OSError, ValueError):
        return None


def write_transfer_page(run_dir: Path, results: Any, *, title: str, matrices: Callable, mark: Callable,
                        curves: Any = None, artifacts: Path | None = None, out_dir: Path | None = None,
                        cap: int = CAP) -> Path:
    """Write `report.html` (and `report.json`) for a transfer run; returns the page's path.

    `matrices(results, model, learner, kinds)` gives one frame per kind (rows trained_on, with
    value, ci_low, ci_high, n, q, seeds, degenerate); `mark(cell, centre)` is the significance
    rule. `artifacts` is the store's artifact folder (per-example records for the click)."""
    run_dir = Path(run_dir)
    out_dir = Path(out_dir) if out_dir else run_dir / "report"
    spec = _spec(run_dir)
    page = Page(title, subtitle=f"transfer run {run_dir.name}")
    page.text("Scores are means over the evaluation examples with 95% bootstrap CIs; gains are paired differences "
              "against the untrained base model on the same examples. Hover a cell for its CI, n and q-value; click "
              "a trained cell for the examples whose outcome it changed. Every table sorts on a header click and "
              "filters by words.", note=True)
    trained = results[results["condition"] != "baseline"]
    pairs = sorted(set(zip(trained["model"], trained["learner"]))) or \
        [(m, "none") for m in sorted(results["model"].unique())]
    headline_pairs, examples = [], {}
    for model, learner in pairs:
        frames = dict(zip(KINDS, matrices(results, model, learner, KINDS)))
        group = page.new_id("g")
        gains = frames["gain:"]
        wanted = [(model, learner, str(r["trained_on"]), str(r["evaluated_on"]), str(r["metric"]))
                  for _, r in (gains if not gains.empty else frames[""]).iterrows() if r["trained_on"] != "base"]
        found = changed_examples(artifacts, wanted, spec=spec, run_dir=run_dir, cap=cap)
        examples[group] = {f"{k[2]}\u0000{k[3]}": v for k, v in found.items()}
        headline_pairs.append((model, learner, gains))
        page.heading(f"{model} — learner {learner}")
        page.grid(True)
        for kind in KINDS:
            if not frames[kind].empty:
                _heat(page, frames[kind], kind, model, learner, mark, group)
        page.grid(False)
        page.raw(f'<div class="tl-examples" id="examples-{group}"><p class="tl-note">Click a trained cell of a '
                 f"heatmap above: the examples whose outcome changed against the base model appear here "
                 f"(per-example records found for {len(found)} of {len(wanted)} cells; at most {cap} per cell)."
                 "</p></div>")
        for kind in KINDS:
            if not frames[kind].empty:
                page.heading(f"{SHOWN[kind][0].capitalize()}: every cell", level=4)
                page.raw(_cell_table(frames[kind], kind, mark))
    page.data["tl-examples"] = examples
    curve_section(page, curves)
    page.heading("Results table")
    page.raw(frame_table(results, columns=RESULT_COLUMNS, filterable=True, table_id="results",
                         caption="The tidy results table (seed −1 = pooled over seeds). Type e.g. `gain: mmlu` to "
                                 "filter."))
    summary = out_dir / "summary.md"
    if summary.is_file():
        page.heading("Analyses (summary.md)")
        page.raw(markdown_section(summary, summary="summary.md: drift, asymmetry, negative transfer, clusters, "
                                                   "hypotheses and every figure", open_=True))
    path = write_page(page, out_dir / PAGE)
    write_summary(out_dir, "transfer", title, _headline(headline_pairs, mark), page=PAGE,
                  markdown="summary.md" if summary.is_file() else None)
    return path
