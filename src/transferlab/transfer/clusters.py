"""Task clusters (seed 002): hierarchical clustering of tasks by their transfer profiles.

Tasks that help (or hurt) the same targets land together; only tasks that are both a
source and a target have a full profile. A pure function of the tidy results table.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from transferlab.errors import missing_package
from transferlab.transfer.analysis import metric_units, primary_rows, transfer_profiles

_LINKAGES = ("single", "complete", "average", "weighted")


@dataclass(frozen=True)
class TaskClusters:
    """Hierarchical clustering of tasks by their transfer profiles.

    Attributes
    ----------
    tasks : list of str
        The clustered tasks, in the order of the linkage's observations.
    linkage : ndarray
        The scipy linkage matrix.
    order : list of str
        The tasks in dendrogram leaf order (similar tasks adjacent).
    assignment : dict
        Task → flat cluster id (1-based, as scipy's `fcluster`).
    distances : DataFrame
        The task × task distance matrix that was clustered.
    features : DataFrame
        Each task's profile: `out:<t>` = its gain as a source on t, `in:<t>` = its gain as
        a target from t.
    """

    tasks: list[str]
    linkage: np.ndarray
    order: list[str]
    assignment: dict[str, int]
    distances: pd.DataFrame
    features: pd.DataFrame


def cluster_tasks(results: pd.DataFrame, method: str = "average", *, n_clusters: int | None = None,
                  model: str | None = None, learner: str | None = None) -> TaskClusters:
    """Cluster tasks by how they transfer, as sources and as targets.

    A task's profile is its row of the transfer matrix (what training on it does to every
    other task) followed by its column (what training on every other task does to it);
    the diagonal (direct training) is left out, so a task is not similar to another just
    by being easy to learn.

    NaN handling: cells never run are missing, not zero. The distance between two tasks
    is the Euclidean distance over the features both have, scaled up by
    sqrt(all features / shared features) (as scikit-learn's `nan_euclidean_distances`);
    two tasks with no feature in common are an error, never a guess.

    Parameters
    ----------
    results : DataFrame
        The tidy results table.
    method : {'average', 'single', 'complete', 'weighted'}
        The scipy linkage (methods that need raw Euclidean observations are refused).
    n_clusters : int, optional
        Cut the tree into this many clusters; by default it is cut at 0.7 × the highest
        merge, the threshold scipy's dendrogram colours by.
    model, learner : str, optional
        Which matrix to cluster when the table holds several.

    Returns
    -------
    TaskClusters
    """
    if method not in _LINKAGES:
        raise ValueError(f"linkage method {method!r} is not supported on a distance matrix with gaps: "
                         f"use one of {', '.join(_LINKAGES)}")
    try:
        from scipy.cluster.hierarchy import fcluster, leaves_list, linkage
        from scipy.spatial.distance import squareform
    except ImportError:
        raise missing_package("scipy", "clustering tasks") from None
    matrix = transfer_profiles(results, model, learner)
    tasks = sorted(set(matrix.index) | set(matrix.columns))
    if len(tasks) < 3:
        raise ValueError(f"clustering needs at least 3 tasks, the transfer matrix has {len(tasks)} "
                         f"({', '.join(tasks)}): add sources or targets")
    _check_one_unit(results, matrix.columns)
    values = matrix.reindex(index=tasks, columns=tasks).to_numpy(dtype=float, copy=True)
    np.fill_diagonal(values, np.nan)  # direct training says nothing about how tasks relate
    square = pd.DataFrame(values, index=tasks, columns=tasks)
    features = pd.concat([square.add_prefix("out:"), square.T.add_prefix("in:")], axis=1)
    x = features.to_numpy(dtype=float)
    empty = [t for t, row in zip(tasks, x) if np.isnan(row).all()]
    if empty:
        raise ValueError(f"no off-diagonal transfer cell involves {', '.join(empty)}: it cannot be placed")
    distances = np.zeros((len(tasks), len(tasks)))
    for i in range(len(tasks)):
        for j in range(i + 1, len(tasks)):
            shared = ~np.isnan(x[i]) & ~np.isnan(x[j])
            if not shared.any():
                raise ValueError(f"tasks {tasks[i]} and {tasks[j]} share no transfer cell, so their distance is "
                                 "unknown: run more pairs or leave one of them out")
            gap = float(np.sum((x[i, shared] - x[j, shared]) ** 2))
            distances[i, j] = distances[j, i] = math.sqrt(gap * x.shape[1] / shared.sum())
    tree = linkage(squareform(distances, checks=False), method=method)
    if n_clusters is not None:
        labels = fcluster(tree, t=n_clusters, criterion="maxclust")
    else:
        labels = fcluster(tree, t=0.7 * float(tree[:, 2].max()), criterion="distance")
    return TaskClusters(tasks=tasks, linkage=tree, order=[tasks[i] for i in leaves_list(tree)],
                        assignment={t: int(c) for t, c in zip(tasks, labels)},
                        distances=pd.DataFrame(distances, index=tasks, columns=tasks), features=features)


def _check_one_unit(results: pd.DataFrame, targets: Iterable[str]) -> None:
    """Refuse profiles whose targets' gains are in different units."""
    rows = primary_rows(results, "gain", ("transfer", "direct"))
    units = {t: metric_units(m) for t, m in zip(rows["evaluated_on"], rows["metric"]) if t in set(targets)}
    if len(set(units.values())) > 1:
        shown = ", ".join(f"{t}: {u}" for t, u in sorted(units.items()))
        raise ValueError(f"the targets' primary metrics are in different units ({shown}): distances would mix "
                         "them; cluster targets of one unit at a time")
