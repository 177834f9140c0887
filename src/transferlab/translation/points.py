"""Which rows experiment 2's curves and experiment 3's cells average over.

Shared by `figures` and the Markdown tables in `report`, so a figure and its table show
the same points: experiment 1's rows join a curve or heatmap as its "all anchors" point,
with model-Y scores kept only for the tasks the other experiment evaluated.
"""

from __future__ import annotations

import math

import pandas as pd

EVALUATED = ("score", "score_lo", "score_hi", "gain", "gain_lo", "gain_hi", "gap", "gap_lo", "gap_hi")


def same_evaluated_tasks(main: pd.DataFrame, experiment: pd.DataFrame) -> pd.DataFrame:
    """Experiment 1's rows with model-Y scores kept only for the tasks the other experiment
    evaluated, so every point of a curve or heatmap averages over the same tasks."""
    evaluated = set(experiment[experiment.evaluated.astype(str) == "True"].held_out)
    main = main.copy()
    for col in EVALUATED:
        if col in main:
            main.loc[~main.held_out.isin(evaluated), col] = math.nan
    return main


def scaling_points(trans: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    scaling = trans[trans.experiment == "scaling"]
    main = same_evaluated_tasks(trans[trans.experiment == "main"], scaling)
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


def domain_cells(cross: pd.DataFrame, main: pd.DataFrame) -> pd.DataFrame:
    method = cross.method.iloc[0]
    everything = same_evaluated_tasks(main[main.method == method], cross).assign(pool="all")
    frame = pd.concat([cross[cross.method == method], everything[everything.held_out.isin(set(cross.held_out))]])
    return frame
