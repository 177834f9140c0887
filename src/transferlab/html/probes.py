"""The HTML page of a probe run: seed 003's figures as interactive charts, and its tables.

    transferlab probes report RUN   # RUN/report/report.html beside summary.md and the PNGs

Charts: in-distribution accuracy by layer (one line per algorithm, a menu per dataset), the
generalisation score by layer of each algorithm's best probe (chosen on the hparams split,
reported on validation, as every "best" in the study), the r0 distribution of the scores by
layer, and the train × eval matrix of recovered accuracy (hover: value, CI, n, the probe;
`°` where the chance-corrected CI includes 0, hatched in the PNG). Then the probes table and
the whole summary.md. Every number comes from the study's `probes.tables.Tables`, passed in
by its report (duck-typed: this package imports no study).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from transferlab.html.charts import MAGMA, HeatCell, colour, heatmap, line
from transferlab.html.markdown import markdown_section
from transferlab.html.page import PAGE, Page, esc, write_page, write_summary
from transferlab.html.tables import Cell, ci_text, missing, number, table

THRESHOLD = 0.8  # seed 003's "generalises" line, as `probes.tables.THRESHOLD`


def _layer_accuracy(page: Page, t: Any, baselines: tuple[str, ...]) -> None:
    own = t.in_distribution().sort_values("layer")
    datasets = sorted(own["evaluated_on"].unique())
    traces, owner = [], []
    for d, dataset in enumerate(datasets):
        rows = own[own["evaluated_on"] == dataset]
        for i, (algorithm, runs) in enumerate(rows.groupby("algorithm", sort=True)):
            hover = [f"{esc(algorithm)} trained and tested on {esc(dataset)}<br>layer {int(r.layer)}<br>accuracy "
                     f"{ci_text(r.value, r.ci_low, r.ci_high)} (95% CI)<br>n = {number(r.n, 0)}"
                     for r in runs.itertuples()]
            trace = line(list(runs["layer"]), list(runs["value"]), algorithm, hover=hover, low=list(runs["ci_low"]),
                         high=list(runs["ci_high"]), color=colour(i),
                         dash="dash" if algorithm in baselines else "solid")
            trace["visible"] = d == 0
            traces.append(trace)
            owner.append(d)
    if not traces:
        return
    buttons = [{"label": dataset, "method": "update",
                "args": [{"visible": [o == d for o in owner]}]}
               for d, dataset in enumerate(datasets)]
    page.chart(traces, {"title": {"text": f"{t.model}: in-distribution accuracy by layer", "font": {"size": 14},
                                  "x": 0.04, "xanchor": "left"},
                        "xaxis": {"title": {"text": "layer"}, "dtick": 1}, "yaxis": {"title": {"text": "accuracy"}},
                        "updatemenus": [{"buttons": buttons, "x": 1.0, "xanchor": "right", "y": 1.16,
                                         "yanchor": "top", "direction": "down"}]},
               height=400, caption="validation accuracy of probes trained on the dataset (menu: dataset); "
                                   "whiskers: 95% CI; dashed: baseline")


def _best_per_layer(t: Any) -> Any:
    probes = t.probes.dropna(subset=["hp_score"])
    if probes.empty:
        return probes
    return probes.loc[probes.groupby(["algorithm", "layer"]).hp_score.idxmax()].sort_values("layer")


def _layer_score(page: Page, t: Any, baselines: tuple[str, ...]) -> None:
    best = _best_per_layer(t)
    traces = []
    for i, (algorithm, runs) in enumerate(best.groupby("algorithm", sort=True)):
        hover = [f"{esc(algorithm)}, layer {int(r.layer)}: best probe trained on {esc(r.trained_on)}<br>"
                 f"generalisation score "
                 f"{ci_text(r.score, r.score_low, r.score_high)} (95% CI)<br>chance-corrected "
                 f"{ci_text(r.cc, r.cc_low, r.cc_high)}" + ("<br>not above chance" if r.at_chance else "")
                 for r in runs.itertuples()]
        traces.append(line(list(runs["layer"]), list(runs["score"]), algorithm, hover=hover,
                           low=list(runs["score_low"]), high=list(runs["score_high"]), color=colour(i),
                           dash="dash" if algorithm in baselines else "solid"))
    if traces:
        page.chart(traces, {"title": {"text": f"{t.model}: generalisation score by layer", "font": {"size": 14}},
                            "xaxis": {"title": {"text": "layer"}, "dtick": 1},
                            "yaxis": {"title": {"text": "mean recovered accuracy on other datasets"},
                                      "range": [0, 1.02]},
                            "shapes": [{"type": "line", "xref": "paper", "x0": 0, "x1": 1, "y0": THRESHOLD,
                                        "y1": THRESHOLD, "line": {"dash": "dot", "color": "grey", "width": 1}}]},
                   height=400, caption="per algorithm and layer, the probe chosen on the hparams split, scored on "
                                       "validation; whiskers: 95% CI; dotted: 80 %")


def _ecdf(page: Page, t: Any, baselines: tuple[str, ...]) -> None:
    real = t.probes[~t.probes["algorithm"].isin(baselines)]
    layers = sorted(real["layer"].unique())
    traces = []
    for i, layer in enumerate(layers):
        values = np.sort(real.loc[real["layer"] == layer, "score"].dropna().to_numpy(dtype=float))
        if not len(values):
            continue
        share = list(np.arange(1, len(values) + 1) / len(values))
        traces.append({"type": "scatter", "mode": "lines", "line": {"shape": "hv", "color": colour(i), "width": 1.5},
                       "x": list(values), "y": share, "name": f"L{layer}",
                       "hovertemplate": f"layer {layer}<br>score ≤ %{{x:.3f}}: %{{y:.0%}} of probes<extra></extra>"})
    if traces:
        above = float((real["score"] > THRESHOLD).mean()) if len(real) else float("nan")
        page.chart(traces, {"title": {"text": f"{t.model}: probes by layer; above 80 %: {number(100 * above, 0)} %",
                                      "font": {"size": 14}},
                            "xaxis": {"title": {"text": "generalisation score"}, "range": [0, 1.01]},
                            "yaxis": {"title": {"text": "share of probes ≤ x"}, "range": [0, 1.02]}},
                   height=400, caption="r0: the distribution of every probe's generalisation score, one line per layer "
                                       "(baselines left out)")


def _matrix(page: Page, t: Any, matrix: Any, picked: Any, chance: Any) -> None:
    if matrix is None or matrix.empty:
        return
    rec = t.recovered.set_index(["algorithm", "layer", "trained_on", "evaluated_on"])
    cells = {}
    for source in matrix.index:
        probe = picked.loc[source] if source in picked.index else None
        for target in matrix.columns:
            v = matrix.at[source, target]
            low = high = n = None
            if probe is not None:
                key = (probe["algorithm"], probe["layer"], source, target)
                if key in rec.index:
                    r = rec.loc[key]
                    r = r.iloc[0] if hasattr(r, "iloc") and getattr(r, "ndim", 1) > 1 else r
                    low, high, n = r["ci_low"], r["ci_high"], r["n"]
            at_chance = bool(chance.at[source, target]) if chance is not None and source in chance.index \
                and target in chance.columns else False
            who = f"{esc(probe['algorithm'])}, layer {int(probe['layer'])}" if probe is not None else "?"
            hover = (f"trained on <b>{esc(source)}</b><br>evaluated on <b>{esc(target)}</b><br>recovered accuracy "
                     f"{number(v)}<br>95% CI [{number(low)}, {number(high)}]<br>n = {number(n, 0)}<br>probe: {who}"
                     + ("<br>° not distinguishable from chance" if at_chance else ""))
            cells[str(source), str(target)] = HeatCell(v, "" if missing(v) else f"{v:.2f}{'°' if at_chance else ''}",
                                                       hover)
    data, layout = heatmap([str(s) for s in matrix.index], [str(c) for c in matrix.columns], cells,
                           title=f"{t.model}: recovered accuracy of each dataset's best probe", diverging=False,
                           zmin=0, zmax=1, colorscale=MAGMA, colorbar="recovered accuracy")
    layout["height"] = max(360, 34 * len(matrix.index) + 200)
    page.chart(data, layout, caption="rows: the probe trained on the dataset (chosen on hparams); ° = the "
                                     "chance-corrected 95% CI includes 0 (hatched in the PNG)")


def _probe_table(t: Any, baselines: tuple[str, ...]) -> str:
    rows = []
    for r in t.probes.sort_values("score", ascending=False).itertuples():
        name = f"{r.algorithm} (baseline)" if r.algorithm in baselines else r.algorithm
        rows.append([name, r.trained_on, int(r.layer), Cell(ci_text(r.score, r.score_low, r.score_high), r.score),
                     Cell(number(r.hp_score), r.hp_score), Cell(ci_text(r.cc, r.cc_low, r.cc_high), r.cc),
                     "yes" if r.at_chance else ""])
    return table(["algorithm", "trained on", "layer", "generalisation score [95% CI]", "hparams score",
                  "chance-corrected [95% CI]", "at chance"], rows, filterable=True,
                 caption="Every probe (algorithm, trained on, layer): its mean recovered accuracy on the other "
                         "datasets (validation), the hparams twin used for every choice, and the chance-corrected "
                         "score.")


def _headline(numbers: dict[str, Any]) -> list[tuple[str, str]]:
    out = [("probes above 80 %", f"{number(100 * numbers.get('share_above_80', float('nan')), 1)} % "
                                  f"of {numbers.get('probes', '?')}"),
           ("mean cross-dataset recovered accuracy", number(numbers.get("mean_recovered"))),
           ("cells below chance", str(numbers.get("below_chance_cells", "?")))]
    if best := numbers.get("best"):
        out.append(("best probe", f"{best['algorithm']} on {best['trained_on']}, layer {best['layer']}: "
                                  f"{ci_text(best['score'], best['score_low'], best['score_high'])}"))
    return out


def write_probe_page(out_dir: Path, t: Any, matrix: Any, picked: Any, chance: Any,
                     numbers: dict[str, Any] | None = None, *, title: str | None = None,
                     baselines: tuple[str, ...] = ("random",)) -> Path:
    """Write `report.html` (and `report.json`) into OUT_DIR from the probe report's tables.

    `t` is a `probes.tables.Tables`; `matrix, picked` come from `t.matrix()`, `chance` from
    `tables.at_chance` and `numbers` from `tables.headline`."""
    out_dir = Path(out_dir)
    title = title or f"Truth probes on {t.model}"
    page = Page(title, subtitle=f"probe run {out_dir.parent.name}")
    page.text("Recovered accuracy = accuracy on B of the probe trained on A over the accuracy of B's best probe "
              "(clipped to [0, 1]); a probe's generalisation score is its mean over the other datasets. Hover for "
              "CIs and n; tables sort on a header click.", note=True)
    page.heading("By layer")
    page.grid(True)
    _layer_accuracy(page, t, baselines)
    _layer_score(page, t, baselines)
    _ecdf(page, t, baselines)
    page.grid(False)
    page.heading("Train × eval matrix")
    _matrix(page, t, matrix, picked, chance)
    page.heading("Probes")
    page.raw(_probe_table(t, baselines))
    summary = out_dir / "summary.md"
    if summary.is_file():
        page.heading("Summary (summary.md)")
        page.raw(markdown_section(summary, summary="summary.md: the headline table, every figure and the notes",
                                  open_=True))
    path = write_page(page, out_dir / PAGE)
    write_summary(out_dir, "probes", title, _headline(numbers or {}), page=PAGE,
                  markdown="summary.md" if summary.is_file() else None)
    return path
