"""The probe report's tidy tables (`report/tables/`) and its "compared with the seed" rows.

- `cells`: one row per (algorithm, trained_on, layer, evaluated_on) on the validation split:
  accuracy, recovered accuracy and chance-corrected recovered accuracy, each with its 95% CI
  and n: the numbers every headline and figure of the summary is computed from (Parquet when
  a large sweep would make the CSV pass 1 MB; `tidy.write_table`);
- `probes`: one row per probe: generalisation score (validation), its hparams twin, CIs and
  the not-above-chance flag;
- `matrix`: the cross-dataset matrix (figure r3b) in long form, with each row's chosen probe;
- `headline`: the headline numbers, with CIs that resample datasets (`tables.dataset_bootstrap`);
- `cross_model`: the Model x Trained on cells with CIs (`tables.cross_model_cells`), which
  `transferlab figure seed001` reads for seed 001's Probe panel;
- `seed_comparison`: seed 003's headline numbers and seed 001's Probe panel beside ours.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from transferlab.probes import conventions
from transferlab.probes.algorithms import BASELINES, DISPLAY
from transferlab.probes.tables import PROBE, Tables, cross_model_cells, dataset_bootstrap, headline
from transferlab.seed_numbers import SEED_003_MODELS, Ours, seed_001_rows


def cell_table(t: Tables) -> pd.DataFrame:
    keys = [*PROBE, "evaluated_on"]

    def part(frame: Any, name: str) -> pd.DataFrame:
        return frame[[*keys, "n", "value", "ci_low", "ci_high"]].rename(columns={
            "value": name, "ci_low": f"{name}_ci_low", "ci_high": f"{name}_ci_high", "n": f"{name}_n"})

    out = part(t.acc, "acc").merge(part(t.recovered, "recovered"), on=keys, how="left").merge(
        part(t.corrected, "corrected"), on=keys, how="left")
    out = out.rename(columns={"acc_n": "n"}).drop(columns=["recovered_n", "corrected_n"])
    return out.sort_values(keys).reset_index(drop=True)


def matrix_table(t: Tables) -> pd.DataFrame:
    matrix, picked = t.matrix()
    rec = t.recovered.merge(picked.reset_index()[PROBE], on=PROBE)
    rec = rec[rec.evaluated_on.isin(matrix.columns) & rec.trained_on.isin(matrix.index)]
    return rec[["trained_on", "evaluated_on", "algorithm", "layer", "value", "ci_low", "ci_high", "n"]].rename(
        columns={"value": "recovered"}).sort_values(["trained_on", "evaluated_on"]).reset_index(drop=True)


def headline_rows(t: Tables, resamples: int = 1000) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The headline dict and its tidy rows (quantity, value, ci_low, ci_high, how)."""
    h = headline(t)
    boot = dataset_bootstrap(t, resamples)
    how = "95% CI resampling datasets"
    rows = [{"quantity": q, "value": h[q], "ci_low": boot.get(q, (0, float("nan"), float("nan")))[1],
             "ci_high": boot.get(q, (0, float("nan"), float("nan")))[2], "how": how if q in boot else ""}
            for q in ("mean_cross_accuracy", "share_above_80")]
    rows += [{"quantity": q, "value": h[q], "ci_low": float("nan"), "ci_high": float("nan"), "how": ""}
             for q in ("mean_recovered", "cells_above_80", "mean_corrected", "random_mean_recovered",
                       "below_chance_cells", "probes", "cells")]
    if "best" in h:
        b = h["best"]
        rows.append({"quantity": "best_probe_score", "value": b["score"], "ci_low": b["score_low"],
                     "ci_high": b["score_high"], "how": f"{b['algorithm']} trained on {b['trained_on']}, layer "
                     f"{b['layer']}, chosen on hparams; CI from its datasets' CIs in quadrature"})
    return h, rows


def our_setup(t: Tables, run: dict[str, Any]) -> str:
    layers = run.get("layers") or sorted(set(t.acc.layer))
    algorithms = [DISPLAY.get(a, a) for a in DISPLAY if a in set(t.probes.algorithm) and a not in BASELINES]
    n = t.acc.groupby("evaluated_on").n.max()
    return (f"{t.model}, layers {layers[0]}-{layers[-1]} ({len(layers)}), {len(t.datasets)} offline datasets "
            f"({', '.join(t.datasets)}), validation n per dataset {int(n.min())}-{int(n.max())} rows, at most "
            f"{run.get('limit') or 'all'} groups per split; {len(algorithms)} algorithms ({', '.join(algorithms)}); "
            f"protocol {run.get('protocol', conventions.DEFAULT)}")


def seed_rows(t: Tables, run: dict[str, Any], boot_rows: list[dict[str, Any]], h: dict[str, Any],
              cross: pd.DataFrame | None) -> list[tuple[str, Ours]]:
    by = {r["quantity"]: r for r in boot_rows}
    rows: list[tuple[str, Ours]] = []
    for quantity, detail in (("mean_cross_accuracy", f"over {h['cells']} probe x other-dataset cells"),
                             ("share_above_80", f"of {h['probes']} probes (generalisation score > 0.8)")):
        r = by[quantity]
        for model_key in SEED_003_MODELS:
            rows.append((f"003.{quantity}.{model_key}", Ours(r["value"], r["ci_low"], r["ci_high"],
                                                             f"{t.model}, {detail}; {r['how']}")))
    if "best" in h:
        b = h["best"]
        for model_key in SEED_003_MODELS:
            rows.append((f"003.best_probe.{model_key}", Ours(
                b["score"], b["score_low"], b["score_high"],
                f"{DISPLAY.get(b['algorithm'], b['algorithm'])} trained on {b['trained_on']}, layer {b['layer']} "
                "(chosen on hparams); we have no ag_news")))
    if cross is not None:
        rows += seed_001_rows("probe", [(r.model, r.trained_on_model, Ours(
            r.value, r.ci_low, r.ci_high, f"mean validation acc over {r.datasets} datasets x {r.algorithms}"))
            for r in cross.itertuples()])
    return rows


def write_tables(t: Tables, run: dict[str, Any], cross_frame: pd.DataFrame, out: Path) -> tuple[list[str], list[Path]]:
    """Write out/tables/*; return the summary's "compared with the seed" and tables sections, and the files."""
    from transferlab.seed_numbers import comparison_markdown, comparison_table, write_comparison
    from transferlab.tidy import write_csv, write_table

    tables = out / "tables"
    h, boot_rows = headline_rows(t)
    cross = cross_model_cells(cross_frame)
    written = [write_table(cell_table(t), tables, "cells"), write_table(t.probes, tables, "probes"),
               write_table(matrix_table(t), tables, "matrix"),
               write_csv(pd.DataFrame(boot_rows), tables / "headline.csv")]
    if cross is not None:
        written.append(write_csv(cross, tables / "cross_model.csv"))
    else:
        (tables / "cross_model.csv").unlink(missing_ok=True)
    comparison = comparison_table(seed_rows(t, run, boot_rows, h, cross), our_setup(t, run))
    written.append(write_comparison(comparison, tables))
    lines = comparison_markdown(comparison)
    lines += ["## Tidy tables", "", "Regenerated by `transferlab probes report RUN`: "
              + ", ".join(f"[`tables/{p.name}`](tables/{p.name})" for p in written)
              + ". `cells`: one row per (algorithm, trained_on, layer, evaluated_on), validation split, with "
              "accuracy, recovered and chance-corrected recovered accuracy, each with its 95% CI; `probes`: "
              "generalisation scores; `matrix`: figure r3b's cells; `headline`: the headline numbers"
              + ("; `cross_model`: the Model × Trained on cells with CIs" if cross is not None else "") + ".", ""]
    return lines, written
