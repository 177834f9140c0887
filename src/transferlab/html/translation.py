"""The HTML page of a translation run: its tables, sortable and filterable, and the main table as heatmaps.

    transferlab translation report RUN   # RUN/report/report.html beside translation.md

From the run's tables (`tasks.csv`, `translations.csv`, `matrix.csv`, `summary.json`) with the
gap flags the translation report recomputed (`translation.gaps.flag_study_tables`), passed in
by that report: heatmaps of experiment 1 (method × held-out task) for the gain over base_Y and
for gap_recovered (hover: score, gain and gap with CIs, n, the NA reason; `*` = gain CI
excludes 0, † = unstable, as in translation.md), the per-method summary, then every table
and translation.md itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from transferlab.html.charts import HeatCell, heatmap
from transferlab.html.markdown import markdown_section
from transferlab.html.page import PAGE, Page, esc, write_page, write_summary
from transferlab.html.tables import Cell, ci_text, frame_table, missing, number, table

TRANSLATION_COLUMNS = ["experiment", "held_out", "domain", "method", "n_anchors", "k", "pool", "metric", "score",
                       "score_lo", "score_hi", "gain", "gain_lo", "gain_hi", "gap", "gap_lo", "gap_hi", "na_reason",
                       "unstable", "unstable_reason", "cosine", "centered_cosine", "norm_ratio", "relative_error",
                       "fit_seconds", "n"]


def _truthy(value: Any) -> bool:
    return str(value).strip().lower() in ("true", "1", "yes")


def _hover(r: Any) -> str:
    gap = ci_text(r.get("gap"), r.get("gap_lo"), r.get("gap_hi"))
    lines = [f"method <b>{esc(r['method'])}</b>", f"held out <b>{esc(r['held_out'])}</b> ({esc(r.get('metric', ''))})",
             f"score {ci_text(r.get('score'), r.get('score_lo'), r.get('score_hi'))} (95% CI)",
             f"gain over base_Y {ci_text(r.get('gain'), r.get('gain_lo'), r.get('gain_hi'), signed=True)} (95% CI)",
             f"gap recovered {gap}" + ("" if missing(r.get("gap_lo")) else " (95% CI)"),
             f"n = {number(r.get('n'), 0)}"]
    if isinstance(r.get("na_reason"), str) and r.get("na_reason"):
        lines.append(f"NA: {esc(r['na_reason'])}")
    if _truthy(r.get("unstable", False)):
        lines.append(f"† unstable: {esc(r.get('unstable_reason', ''))}")
    return "<br>".join(lines)


def _heatmaps(page: Page, main: pd.DataFrame, order: list[str]) -> None:
    if main.empty:
        return
    methods = [m for m in order if m in set(main["method"])] + sorted(set(main["method"]) - set(order))
    tasks = list(dict.fromkeys(main["held_out"]))
    for column, name, diverging in (("gain", "gain over base_Y", True), ("gap", "gap recovered", False)):
        cells = {}
        for _, r in main.iterrows():
            value = r.get(column)
            mark = ""
            if column == "gain" and not missing(r.get("gain_lo")) and (r["gain_lo"] > 0 or r["gain_hi"] < 0):
                mark = "*"
            if column == "gap" and _truthy(r.get("unstable", False)):
                mark = "†"
            label = "NA" if missing(value) else f"{number(value, 3, diverging)}{mark}"
            cells[str(r["method"]), str(r["held_out"])] = HeatCell(value, label, _hover(r))
        data, layout = heatmap(methods, tasks, cells, title=f"experiment 1: {name} (method × held-out task)",
                               diverging=diverging, zmin=0 if not diverging else None,
                               zmax=1 if not diverging else None, colorbar=name)
        layout["yaxis"]["title"]["text"] = "method"
        layout["xaxis"]["title"]["text"] = "held-out task"
        page.chart(data, layout, wide=len(tasks) > 6, caption=("* = the gain's 95% CI excludes 0" if diverging else
                                          "NA (hover for the reason) where oracle − base_Y is noise; † = unstable "
                                          "(shown, left out of every average)"))


def _methods(summary: dict[str, Any]) -> str:
    rows = []
    for method, m in (summary.get("methods") or {}).items():
        rows.append([method, m.get("tasks"), Cell(number(m.get("mean_score")), m.get("mean_score")),
                     Cell(number(m.get("mean_gain_over_base_y"), signed=True), m.get("mean_gain_over_base_y")),
                     Cell(number(m.get("minus_mean_translator"), signed=True), m.get("minus_mean_translator")),
                     Cell(number(m.get("mean_gap_recovered")), m.get("mean_gap_recovered")), m.get("gap_defined_on"),
                     Cell(number(m.get("mean_update_cosine")), m.get("mean_update_cosine")),
                     Cell(number(m.get("mean_fit_seconds"), 2), m.get("mean_fit_seconds"))])
    return table(["method", "tasks", "mean score", "gain over base_Y", "minus mean translator", "mean gap recovered",
                  "gap defined on", "update cosine", "fit seconds"], rows,
                 caption="Per method, averaged over the held-out tasks (summary.json).")


def headline(summary: dict[str, Any]) -> list[tuple[str, str]]:
    """The card numbers of a translation run, from its summary.json."""
    models = f"{summary.get('model_x', '?')} → {summary.get('model_y', '?')}"
    out = [("models", f"{models}, {summary.get('tasks', '?')} tasks")]
    best = summary.get("best_learned_method")
    if best:
        out.append(("best learned method minus the mean translator",
                    f"{best}: {number(summary.get('best_learned_minus_mean'), signed=True)}"))
        gap = (summary.get("methods") or {}).get(best, {})
        out.append(("its mean gap recovered", f"{number(gap.get('mean_gap_recovered'), 2)} "
                                              f"(defined on {gap.get('gap_defined_on', '?')} tasks)"))
    if "translations_failed" in summary:
        out.append(("translations failed", str(summary["translations_failed"])))
    return out


def write_translation_page(out_dir: Path, tasks: pd.DataFrame, trans: pd.DataFrame, matrix: pd.DataFrame,
                           summary: dict[str, Any], *, markdown: Path | None = None,
                           order: tuple[str, ...] = ()) -> Path:
    """Write `report.html` (and `report.json`) into OUT_DIR; `order` lists the methods in report order."""
    out_dir = Path(out_dir)
    title = f"Cross-model LoRA adapter translation: {summary.get('model_x', '?')} → {summary.get('model_y', '?')}"
    page = Page(title, subtitle=f"translation run {out_dir.parent.name}")
    page.text("gap_recovered = (method − base_Y) / (oracle − base_Y), NA with its reason where the oracle gained "
              "nothing measurable. Hover a cell for CIs and n; tables sort on a header click and filter by words.",
              note=True)
    main = trans[trans["experiment"] == "main"] if len(trans) and "experiment" in trans else trans
    page.heading("Experiment 1: held-out tasks")
    page.grid(True)
    _heatmaps(page, main, list(order))
    page.grid(False)
    page.heading("Methods")
    page.raw(_methods(summary))
    page.heading("Tables")
    if len(tasks):
        page.heading("tasks.csv: base_Y, oracle and the gap flags", level=3)
        page.raw(frame_table(tasks, filterable=True))
    if len(trans):
        page.heading("translations.csv: every translation", level=3)
        page.raw(frame_table(trans, columns=TRANSLATION_COLUMNS, filterable=True))
    if len(matrix):
        page.heading("matrix.csv: the cross-model matrix", level=3)
        page.raw(frame_table(matrix, filterable=True))
    if markdown is not None and Path(markdown).is_file():
        page.heading(f"Report ({Path(markdown).name})")
        page.raw(markdown_section(Path(markdown), open_=True))
    path = write_page(page, out_dir / PAGE)
    write_summary(out_dir, "translation", title, headline(summary), page=PAGE,
                  markdown=Path(markdown).name if markdown is not None else None)
    return path
