"""The probe sweep the way mishajw/repeng runs it: one probe at a time, one dataset at a time.

A re-implementation of its method for the benchmark's baseline (`probes_sweep.py`), with the
same libraries and settings as its code (repo mishajw/repeng, read at commit cbfd137):
- `repeng/probes/collections.py` `train_probe`: one (dataset, algorithm, layer) per call, on
  that layer's float32 train rows; the grouped algorithms (ccs, lr-g, pca-g) return None when
  the dataset has no groups (`probe_preparations.py` sets groups to None when every group
  holds one row);
- dim: mean of true rows minus mean of false rows (`difference_in_means.py`);
- lda: scikit-learn `LinearDiscriminantAnalysis()` (`linear_discriminant_analysis.py`);
- lr: `LogisticRegression(fit_intercept=True, solver="newton-cg", C=1.0, max_iter=10_000)`;
  lr-g: the same on group-centred rows, scored on raw rows (`logistic_regression.py`);
- pca: rows centred, scikit-learn `PCA(n_components=1)`, unit component; pca-g: each group's
  mean subtracted first (`principal_component_analysis.py`, `normalization.py`);
- lat: rows shuffled into pairs, differences centred, `PCA(n_components=1)`, scored on rows
  minus the differences' mean (`linear_artificial_tomography.py`);
- ccs: the first true and first false row of each group, `Linear(d, 1)` + sigmoid in float32,
  `LBFGS(lr=0.1, max_iter=100)` on consistency + confidence + 0.01 * L2, retried up to twice
  when the loss stays above 0.2 (`contrast_consistent_search.py`);
- evaluation (`repeng/evals/probes.py`, `logits.py`): each probe on each dataset's split on
  its own; grouped data by a Python loop over groups (the top row, ties drawn at random),
  rows by `roc_curve` (threshold nearest (0, 1)) with F1, precision, recall, accuracy and
  ROC AUC; both for the logits and their negation, the better one kept.
What it leaves out or does faster, so the baseline is not slowed by it: the pandas frame
`dataset.get` builds per call (the arrays are sliced once per dataset, split and layer here),
LR-G's pandas groupby (a numpy loop over groups here), the answer-type centring (every row
has one answer type here, so it only subtracts the mean) and mppr's pickled caching of every
probe and result. A CCS fit that does not converge raises in repeng; here it records no probe.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
from sklearn import metrics
from sklearn.decomposition import PCA
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.linear_model import LogisticRegression


@dataclass
class Arrays:
    """One layer of one dataset's split, as repeng's `ActivationArrays`."""

    activations: np.ndarray  # (n, d) float32
    labels: np.ndarray  # bool
    groups: np.ndarray | None  # int codes, None when the data has no groups


def arrays_of(data: Any, split: str, layer: int) -> Arrays:
    """A protocol.Data split as repeng's arrays: float32, groups None when every group is one row."""
    X, y, groups, _ = data.part(split)
    _, codes, counts = np.unique(groups, return_inverse=True, return_counts=True)
    codes = codes.reshape(-1)
    return Arrays(np.asarray(X[layer], dtype=np.float32), y.astype(bool),
                  None if (counts <= 1).all() else codes.astype(np.int64))


def normalize_by_group(activations: np.ndarray, group: np.ndarray) -> np.ndarray:
    result = activations.copy()
    for g in np.unique(group):
        result[group == g] -= result[group == g].mean(axis=0)
    return result


class Linear:
    """A probe that scores rows by `(x - center) @ probe` (dot-product probes) or a model's own scores."""

    def __init__(self, score: Callable[[np.ndarray], np.ndarray]) -> None:
        self.score = score


def dot(probe: np.ndarray, center: np.ndarray | None = None) -> Linear:
    return Linear(lambda x: (x if center is None else x - center) @ probe)


def _pca_direction(activations: np.ndarray) -> np.ndarray:
    pca = PCA(n_components=1)
    pca.fit_transform(activations)
    probe = pca.components_.squeeze(0)
    return probe / np.linalg.norm(probe)


def _lr(activations: np.ndarray, labels: np.ndarray) -> LogisticRegression:
    return LogisticRegression(fit_intercept=True, solver="newton-cg", C=1.0, max_iter=10_000).fit(activations, labels)


class _CcsProbe(torch.nn.Module):
    def __init__(self, hidden_dim: int) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(hidden_dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.linear(x)).squeeze(-1)


def _ccs(a: Arrays, attempts: int = 2) -> Linear:
    first, second = [], []
    for g in np.unique(a.groups):
        rows, labels = a.activations[a.groups == g], a.labels[a.groups == g].tolist()
        if True not in labels or False not in labels:
            continue
        i, j = sorted([labels.index(True), labels.index(False)])
        first.append(rows[i])
        second.append(rows[j])
    x1 = torch.tensor(np.array(first)).to(torch.float32)
    x2 = torch.tensor(np.array(second)).to(torch.float32)
    probe = _CcsProbe(x1.shape[1])
    optimizer = torch.optim.LBFGS(probe.parameters(), lr=0.1, max_iter=100)

    def get_loss() -> float:
        optimizer.zero_grad()
        p1, p2 = probe(x1), probe(x2)
        loss = ((p1 - (1 - p2)).pow(2).mean() + torch.min(p1, p2).pow(2).mean()
                + sum(p.norm() ** 2 for p in probe.parameters()) * 0.01)
        loss.backward()
        return loss.item()

    optimizer.step(closure=get_loss)
    if get_loss() > 0.2:
        if attempts > 0:
            return _ccs(a, attempts - 1)
        raise ValueError("CCS probe did not converge")
    probe.eval()

    def score(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return probe(torch.tensor(x, dtype=torch.float32)).numpy()

    return Linear(score)


def train_probe(method: str, a: Arrays, rng: random.Random) -> Linear | None:
    """One probe on one layer of one dataset's train rows, as repeng's `train_probe`."""
    X, y, g = a.activations, a.labels, a.groups
    if method in ("ccs", "lr-g", "pca-g") and g is None:
        return None
    if method == "dim":
        return dot(X[y].mean(axis=0) - X[~y].mean(axis=0))
    if method == "lda":
        return Linear(LinearDiscriminantAnalysis().fit(X, y).decision_function)
    if method == "lr":
        return Linear(_lr(X, y).decision_function)
    if method == "lr-g":
        return Linear(_lr(normalize_by_group(X, g), y).decision_function)
    if method == "pca":
        return dot(_pca_direction(X - X.mean(axis=0)))
    if method == "pca-g":
        centred = normalize_by_group(X, g)
        return dot(_pca_direction(centred - centred.mean(axis=0)))
    if method == "lat":
        indices = list(range(len(X)))
        rng.shuffle(indices)
        first, second = np.array(indices)[: len(indices) // 2 * 2].reshape(2, -1)
        diffs = X[first] - X[second]
        center = diffs.mean(axis=0)
        return dot(_pca_direction(diffs - center), center)
    if method == "ccs":
        try:
            return _ccs(a)
        except ValueError:  # no start reached a loss of 0.2: repeng raises; the sweep records no probe
            return None
    raise ValueError(method)


def _by_question(logits: np.ndarray, labels: np.ndarray, groups: np.ndarray) -> float:
    correct = []
    for g in np.unique(groups):
        group_labels, group_logits = labels[groups == g].copy(), logits[groups == g].copy()
        top = np.max(group_logits)
        correct.append(group_labels[np.random.choice(np.where(group_logits == top)[0])])
    return sum(correct) / len(correct)


def _by_row(logits: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    fpr, tpr, thresholds = metrics.roc_curve(labels, logits)
    threshold = thresholds[np.argmin(np.sqrt((1 - tpr) ** 2 + fpr**2))]
    predicted = logits > threshold
    metrics.f1_score(labels, predicted, zero_division=0)
    metrics.precision_score(labels, predicted, zero_division=0)
    metrics.recall_score(labels, predicted, zero_division=0)
    accuracy = metrics.accuracy_score(labels, predicted)
    return float(accuracy), float(metrics.roc_auc_score(labels, logits))


def eval_probe(probe: Linear, a: Arrays) -> float:
    """Accuracy of one probe on one split, sign chosen on it (repeng's eval_probe_by_question/by_row)."""
    logits = probe.score(a.activations)
    if a.groups is not None:
        return max(_by_question(logits, a.labels, a.groups), _by_question(-logits, a.labels, a.groups))
    (acc, auc), (flipped_acc, flipped_auc) = _by_row(logits, a.labels), _by_row(-logits, a.labels)
    return flipped_acc if auc < flipped_auc else acc


def sweep(data: list, methods: list[str], layers: list[int], splits: tuple[str, ...], seed: int = 0,
          progress: Callable[[int], None] | None = None) -> dict[tuple[str, str, int, str, str], float]:
    """Every probe on every dataset: accuracy per (trained on, method, layer, evaluated on, split);
    `progress(k)` after the probes of the k-th training dataset."""
    np.random.seed(seed)
    torch.manual_seed(seed)
    rng = random.Random(seed)
    arrays = {(d.name, s, layer): arrays_of(d, s, layer) for d in data for s in ("train", *splits) for layer in layers}
    out = {}
    for k, source in enumerate(data, 1):
        for method in methods:
            for layer in layers:
                probe = train_probe(method, arrays[source.name, "train", layer], rng)
                if probe is None:
                    continue
                for target in data:
                    for split in splits:
                        out[source.name, method, layer, target.name, split] = eval_probe(
                            probe, arrays[target.name, split, layer])
        if progress:
            progress(k)
    return out
