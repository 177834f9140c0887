"""The probe report: seed 003's figures, the 80 % table, tidy tables and a Markdown summary, from the table alone.

    transferlab probes report RUN_DIR

Reads `probe_results`, `probe_skips` and probes_run.json; loads no model. This module
decides which figures a run gets and writes summary.md; the numbers (and what a probe, its
generalisation score and a "best" probe are) live in `tables`, the drawing in `figures`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from transferlab.errors import TransferlabError
from transferlab.probes.algorithms import DISPLAY
from transferlab.probes import conventions
from transferlab.probes.figures import (fig_algorithms, fig_best_by, fig_clustering, fig_cross_model, fig_datasets,
                                        fig_ecdf_by_layer, fig_from_to, fig_layer_curves, fig_lda, fig_matrix)
from transferlab.probes.results import ProbeResults
from transferlab.probes.truthfulqa import (fig_truthful_qa, format_r, truthful_qa_name, truthful_qa_numbers,
                                           truthful_qa_table)
from transferlab.probes.tables import (THRESHOLD, Tables, at_chance, below_chance, cross_model_cells,
                                       cross_model_tables, from_and_to, headline)


def _pct(v: float) -> str:
    return "NA" if v != v else f"{100 * v:.1f} %"


def _md_table(frame: Any, fmt: str = "{:.2f}") -> str:
    cols = [str(c) for c in frame.columns]
    lines = ["| " + " | ".join([frame.index.name or "", *cols]) + " |", "|" + "---|" * (len(cols) + 1)]
    for idx, row in frame.iterrows():
        cells = [fmt.format(v) if isinstance(v, (float, np.floating)) and v == v else ("" if v != v else str(v))
                 for v in row.to_numpy()]
        lines.append("| " + " | ".join([str(idx), *cells]) + " |")
    return "\n".join(lines)


def write_report(root: Path, console: Any = None) -> list[Path]:
    """Draw every figure and write summary.md into ROOT/report/; returns the files written."""
    root = Path(root)
    results = ProbeResults.existing(root)
    frame = results.frame()
    if frame.empty:
        raise TransferlabError(f"{root} holds no probe results: run `transferlab probes run --out {root}` first")
    run = results.read_run()
    model = run.get("model") or frame[frame.model == frame.source_model].model.iloc[0]
    t = Tables(frame, model)
    out = root / "report"
    out.mkdir(exist_ok=True)
    written: list[Path | None] = []
    written.append(fig_ecdf_by_layer(t, out / "r0_acc_by_layer.png"))
    written.append(fig_best_by(t, "algorithm", out / "r1a_by_algorithms.png"))
    written.append(fig_best_by(t, "trained_on", out / "r1b_by_train.png"))
    written.append(fig_best_by(t, "layer", out / "r1c_by_layer.png"))
    written.append(fig_algorithms(t, out / "r2_probes.png"))
    written.append(fig_datasets(t, out / "r3a_datasets.png"))
    matrix, picked = t.matrix()
    written.append(fig_matrix(matrix, f"{model}: recovered accuracy of each dataset's best probe",
                              out / "r3b_matrix.png", at_chance(t, matrix, picked)))
    written.append(fig_from_to(matrix, model, out / "r3c_to_and_from.png"))
    written.append(fig_clustering(matrix, model, out / "r3d_clustering.png"))
    tqa = truthful_qa_name(t.datasets)
    written.append(fig_truthful_qa(t, out / "r4_truthful_qa.png", _chance(run, tqa)))
    grouped = [d for d, info in run.get("datasets", {}).items() if info.get("grouped")] or t.datasets[:1]
    first = "arc_easy" if "arc_easy" in t.datasets else grouped[0]
    written.append(fig_layer_curves(t, [first], [a for a in DISPLAY if a in set(t.probes.algorithm)],
                                    f"{model}: {first}, trained and tested in distribution", out / "v1_in_distribution.png"))
    got = [d for d in t.datasets if run.get("datasets", {}).get(d, {}).get("family") == "got"]
    if len(got) >= 2:
        got_matrix, got_picked = t.matrix(got)
        written.append(fig_matrix(got_matrix, f"{model}: Geometry-of-Truth sets", out / "v2_got.png",
                                  at_chance(t, got_matrix, got_picked)))
    repe = [d for d in t.datasets if run.get("datasets", {}).get(d, {}).get("family") in ("repe", "mmlu")]
    if repe and "lat" in set(t.probes.algorithm):
        written.append(fig_layer_curves(t, repe, ["lat"], f"{model}: LAT (RepE) by layer", out / "v3_repe.png"))
    written.append(fig_lda(t, out / "v4_lda.png"))
    cross_frame = results.frame("probe_cross_model")
    cross = cross_model_tables(cross_frame)
    if cross is not None:
        written.append(fig_cross_model(cross[0], out / "x1_cross_model.png"))
    files = [p for p in written if p is not None]
    from transferlab.probes.export import write_tables  # tables/*.csv and the seed comparison

    table_lines, tables = write_tables(t, run, cross_frame, out)
    summary = out / "summary.md"
    summary.write_text(_summary(t, run, matrix, picked, cross, results.skips(), files, table_lines,
                                cross_model_cells(cross_frame)))
    files += [summary, *tables]
    from transferlab.html.probes import write_probe_page
    files.append(write_probe_page(out, t, matrix, picked, at_chance(t, matrix, picked), headline(t)))
    if console is not None:
        console.print(f"report: {len(files)} files in {out}", highlight=False)
    return files


def _chance(run: dict[str, Any], name: str | None) -> float | None:
    """A dataset's chance accuracy as the score job recorded it (None for older stores and imports)."""
    value = run.get("chance", {}).get(name) if name else None
    return float(value) if value is not None else None


def _protocol_lines(run: dict[str, Any]) -> list[str]:
    name = run.get("protocol", conventions.DEFAULT)
    line = f"Protocol `{name}`: {conventions.PROTOCOLS.get(name, 'unknown')}."
    if name == "repeng":
        line += (" Choosing the sign and threshold on the evaluation data leans optimistic (a direction reversed on "
                 "a dataset is scored as if it were not): use these numbers to compare with the published study, "
                 "the default protocol's to judge a probe.")
    return [line, ""]


def _truthful_qa_lines(t: Tables, run: dict[str, Any]) -> list[str]:
    name = truthful_qa_name(t.datasets)
    if name is None:
        return []
    table = truthful_qa_table(t, name)
    if table.empty:
        return []
    n = truthful_qa_numbers(table, _chance(run, name))
    lines = ["## TruthfulQA (figure r4)", "",
             f"Probes trained on the other datasets ({n['probes']}), each placed by its generalisation score over the "
             f"other datasets ({name} left out) against its accuracy on {name}: Pearson r = {format_r(n['r'])}, mean "
             f"accuracy {_pct(n['mean_accuracy'])}."]
    if n["chance"] is not None:
        lines[-1] += (f" Chance is {_pct(n['chance'])}; {n['above_chance']} of {n['probes']} probes are above it "
                      f"beyond noise (95 % CI), and {n['above_80_and_above_chance']} of the {n['above_80']} probes "
                      "above 80 % generalisation.")
    else:
        lines[-1] += f" {n['above_80']} probes are above 80 % generalisation (chance not recorded in this store)."
    return [*lines, ""]


def _summary(t: Tables, run: dict[str, Any], matrix: Any, picked: Any, cross: Any, skips: Any,
             files: list[Path], table_lines: list[str] = (), cross_cells: Any = None) -> str:
    import pandas as pd

    h = headline(t)
    lines = [f"# Probe generalisation: {t.model}", ""]
    if run.get("command"):
        lines += ["```bash", run["command"], "```", ""]
    if run.get("wall_seconds"):
        lines += [f"Wall time {run['wall_seconds']:.0f} s. Layers {run['layers'][0]}-{run['layers'][-1]} "
                  f"({len(run['layers'])}), position `{run.get('position')}`, at most {run.get('limit')} groups "
                  "per train/validation split.", ""]
    lines += _protocol_lines(run)
    lines += ["## Headline", "",
              "| measure | value |", "|---|---|",
              f"| mean cross-dataset recovered accuracy (all {h['cells']} probe x other-dataset cells) | "
              f"{_pct(h['mean_recovered'])} |",
              f"| share of probes above 80 % recovered (generalisation score, {h['probes']} probes) | "
              f"{_pct(h['share_above_80'])} |",
              f"| share of cells above 80 % recovered | {_pct(h['cells_above_80'])} |",
              f"| mean cross-dataset chance-corrected recovered accuracy | {_pct(h['mean_corrected'])} |",
              f"| mean cross-dataset accuracy (the seed's headline measure) | {_pct(h['mean_cross_accuracy'])} |",
              f"| cells below chance beyond noise (a reversed direction) | {h['below_chance_cells']} |",
              f"| random-direction baseline, mean generalisation score | {_pct(h['random_mean_recovered'])} |"]
    if "best" in h:
        b = h["best"]
        lines.append(f"| best probe (chosen on hparams) | {DISPLAY.get(b['algorithm'], b['algorithm'])} trained on "
                     f"{b['trained_on']}, layer {b['layer']}: {_pct(b['score'])} "
                     f"[{_pct(b['score_low'])}, {_pct(b['score_high'])}] |")
    lines += ["", "A probe is (algorithm, trained on, layer); its generalisation score is its mean recovered accuracy "
              "on the other datasets (validation). Recovered accuracy = clip(acc(A→B) / acc(best probe for B), 0, 1), "
              "the best probe for B chosen on B's hparams split; the random baseline is never that best probe. "
              "Chance-corrected recovered accuracy = (acc(A→B) − chance(B)) / (acc(best for B) − chance(B)), not "
              "clipped: 0 is chance, 1 the best probe, below 0 a direction that points the wrong way on B. A score's "
              "95 % CI combines its datasets' CIs in quadrature (independent samples); figures r0-r3 draw these CIs "
              "and hatch (or draw hollow) what is not above chance.", ""]
    flipped = below_chance(t)
    if len(flipped):
        lines += ["### Below chance beyond noise", "",
                  "| probe | evaluated on | chance-corrected | 95 % CI |", "|---|---|---|---|"]
        for r in flipped.itertuples():
            lines.append(f"| {DISPLAY.get(r.algorithm, r.algorithm)} trained on {r.trained_on}, L{int(r.layer)} | "
                         f"{r.evaluated_on} | {r.value:+.2f} | [{r.ci_low:+.2f}, {r.ci_high:+.2f}] |")
        lines.append("")
    lines += _truthful_qa_lines(t, run)
    # per algorithm
    rows = []
    for a in [a for a in DISPLAY if a in set(t.probes.algorithm)]:
        p = t.probes[t.probes.algorithm == a]
        best = t.best(frame=p)
        rows.append({"algorithm": DISPLAY[a], "probes": len(p), "mean score": p.score.mean(),
                     "share > 80 %": (p.score > THRESHOLD).mean(),
                     "not above chance": f"{int(p.at_chance.sum())} of {len(p)}",
                     "best (hparams-chosen)": f"{best.iloc[0].trained_on} L{int(best.iloc[0].layer)}: "
                                              f"{best.iloc[0].score:.2f}" if len(best) else "NA"})
    lines += ["## Algorithms", "", _md_table(pd.DataFrame(rows).set_index("algorithm")), ""]
    # datasets
    ds_rows = []
    ind = t.in_distribution()
    for d in t.datasets:
        info = run.get("datasets", {}).get(d, {})
        best = run.get("best_probe_for", {}).get(d)
        acc = ci = ""
        if best:
            hit = ind[(ind.evaluated_on == d) & (ind.algorithm == best["algorithm"]) & (ind.layer == best["layer"])]
            if len(hit):
                r = hit.iloc[0]
                acc, ci = f"{r.value:.3f}", f"[{r.ci_low:.3f}, {r.ci_high:.3f}]"
        ds_rows.append({"dataset": d, "family": info.get("family", ""),
                        "metric": "question acc" if info.get("grouped") else "row acc",
                        "rows train/hparams/val": f"{info.get('train', '')}/{info.get('hparams', '')}/"
                                                  f"{info.get('validation', '')}",
                        "best probe for it": f"{DISPLAY.get(best['algorithm'], best['algorithm'])} L{best['layer']}"
                        if best else "NA", "its accuracy": acc, "95 % CI": ci})
    lines += ["## Datasets", "", _md_table(pd.DataFrame(ds_rows).set_index("dataset")), ""]
    matrix_md = matrix.copy()
    matrix_md.index.name = "trained on \\ evaluated on"
    chosen = ", ".join(f"{d}: {DISPLAY.get(r.algorithm, r.algorithm)} L{int(r.layer)}" for d, r in picked.iterrows())
    lines += ["## Cross-dataset matrix (recovered accuracy)", "", f"Probe per row (chosen on hparams): {chosen}.", "",
              _md_table(matrix_md), ""]
    ft = from_and_to(matrix)
    ft.index.name = "dataset"
    lines += ["Generalises from (row mean) and to (column mean), diagonal excluded:", "", _md_table(ft), ""]
    if cross is not None:
        m = cross[0].copy()
        m.index.name = "Model \\ Trained on"
        lines += ["## Cross-model probes (Model × Trained on)", "",
                  "A probe trained on one model's activations is applied to another through a linear (ridge) map "
                  "between their residual streams at matched relative depth, fitted on neutral texts that are in "
                  "no probe dataset. Cells: mean validation accuracy over datasets and algorithms, each layer "
                  "chosen on hparams.", "", _md_table(m, "{:.3f}"), ""]
        if cross_cells is not None:
            lines += ["95 % CIs (the algorithms of a dataset share its examples, so their half-widths add; datasets "
                      "combine in quadrature): " + "; ".join(
                          f"{r.model} ← {r.trained_on_model}: {r.value:.3f} [{r.ci_low:.3f}, {r.ci_high:.3f}]"
                          for r in cross_cells.itertuples()) + ".", ""]
        detail = cross[1].copy()
        detail.columns = [f"{a} ← {b}" for a, b in detail.columns]
        detail.index = [f"{d} / {DISPLAY.get(a, a)}" for d, a in detail.index]
        detail.index.name = "dataset / algorithm"
        lines += [_md_table(detail, "{:.3f}"), ""]
    if len(skips):
        counts = skips.groupby(["model", "algorithm", "reason"]).size().rename("count").reset_index()
        lines += ["## Skips (no number, and why)", ""]
        lines += [f"- {r.model} / {r.algorithm}: {r.reason} ({r.count}×)" for r in counts.itertuples()]
        lines.append("")
    if run.get("audit"):
        lines += ["## Datasets that could not be loaded", ""] + [f"- {a['dataset']}: {a['error']}" for a in run["audit"]]
        lines.append("")
    lines += [*table_lines, "## Figures", ""] + [f"- [{p.name}]({p.name})" for p in files]
    return "\n".join(lines) + "\n"
