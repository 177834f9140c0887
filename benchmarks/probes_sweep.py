"""The full probe sweep vs a reference that fits one probe at a time and scores one dataset at a time.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/probes_sweep.py --store runs/probes-smollm2-135m
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/probes_sweep.py --algorithms dim,lda,lr,lr-g,pca,pca-g,lat,ccs,random

Both sides use identical activations (smollm2-135m, every layer, from the store: extracted
once if missing) and one thread. Ours: `protocol.fit_bank` + `protocol.score_bank` (the same `fit_or_skip` the study's
fit jobs call; closed
forms batched over layers, LDA by Woodbury in n x n, PCA from the n x n Gram matrix, LR by
batched dual Newton, every probe on every dataset as one matrix product). Reference: what a
user would write: for each (dataset, algorithm, layer) one scikit-learn fit
(LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto"), LogisticRegression(C=1,
tol=1e-8) on the raw activations, PCA(n_components=1)) or a numpy / torch one, then the
same sign and threshold rule (shared code: `_common.orient`), then each dataset scored on
its own with a Python loop over groups. Prints medians over repeats of both, the speed-up
(target >= 20x) and the largest accuracy difference per algorithm (target <= 1e-3 for the
deterministic ones).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from sklearn.decomposition import PCA
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.linear_model import LogisticRegression

from transferlab.models import load
from transferlab.probes import protocol
from transferlab.probes.activations import cached_activations
from transferlab.probes.algorithms import _common as C
from transferlab.probes.algorithms import make
from transferlab.probes.datasets import load_dataset
from transferlab.engine.store import Store

DETERMINISTIC = ("dim", "lda", "lr", "pca", "pca-g", "lr-g")


def group_center(X: np.ndarray, groups: np.ndarray) -> np.ndarray:
    out = X.copy()
    for g in np.unique(groups):
        rows = groups == g
        out[rows] -= X[rows].mean(axis=0)
    return out


def reference_direction(algorithm: str, X: np.ndarray, y: np.ndarray, groups: np.ndarray, params: dict):
    """One probe, fitted the way a user would with the usual libraries: (coef, intercept or None)."""
    if algorithm in ("lr-g", "pca-g", "ccs"):
        keep = np.array([len(set(y[groups == g])) == 2 for g in groups])
        X, y, groups = X[keep], y[keep], groups[keep]
        if not len(y):
            return None  # no group holds both labels: ours records the same skip
    if algorithm == "dim":
        return X[y == 1].mean(0) - X[y == 0].mean(0), None, X, y, groups
    if algorithm == "lda":
        m = LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto").fit(X, y)
        return m.coef_[0], m.intercept_[0], X, y, groups
    if algorithm in ("lr", "lr-g"):
        Z = group_center(X, groups) if algorithm == "lr-g" else X
        m = LogisticRegression(C=1.0, tol=1e-8, max_iter=10_000).fit(Z, y)
        return m.coef_[0], (m.intercept_[0] if algorithm == "lr" else None), X, y, groups
    if algorithm in ("pca", "pca-g"):
        Z = group_center(X, groups) if algorithm == "pca-g" else X
        return PCA(n_components=1).fit(Z).components_[0], None, X, y, groups
    if algorithm == "lat":
        order = torch.randperm(len(X), generator=torch.Generator().manual_seed(0)).numpy()
        half = len(X) // 2
        diffs = X[order[:half]] - X[order[half:2 * half]]
        return PCA(n_components=1).fit(diffs).components_[0], None, X, y, groups
    if algorithm in ("ccs", "random"):  # torch fits, one layer at a time
        probe = make(algorithm, **params)
        direction = probe._direction(torch.as_tensor(X[None]), torch.as_tensor(y),
                                     torch.as_tensor(np.unique(groups, return_inverse=True)[1].reshape(-1)), None)[0]
        return direction[0].numpy(), None, X, y, groups
    raise ValueError(algorithm)


def reference_accuracy(coef: np.ndarray, bias: float, X: np.ndarray, y: np.ndarray, groups: np.ndarray) -> float:
    scores = X @ coef + bias
    per_group: dict = {}
    for s, label, g in zip(scores, y, groups):
        per_group.setdefault(g, []).append((s, label))
    if all(sum(lab for _, lab in v) == 1 and len(v) >= 2 for v in per_group.values()):
        wins = 0
        for v in per_group.values():
            top = max(s for s, _ in v)
            at_top = [lab for s, lab in v if s == top]
            wins += len(at_top) == 1 and at_top[0] == 1
        return wins / len(per_group)
    return float(np.mean((scores > 0).astype(int) == y))


def run_reference(data: list, algorithms: dict, n_layers: int) -> dict:
    acc = {}
    for a in data:
        Xa, ya, ga, _ = a.part("train")
        Xa = np.asarray(Xa, dtype=np.float64)
        for algorithm, params in algorithms.items():
            for layer in range(n_layers):
                fitted = reference_direction(algorithm, Xa[layer], ya, ga, params)
                if fitted is None:
                    continue
                coef, intercept, X, y, g = fitted
                codes = torch.as_tensor(np.unique(g, return_inverse=True)[1].reshape(-1))
                c, b = C.orient(torch.as_tensor(X[None]), torch.as_tensor(y), codes, torch.as_tensor(coef[None]),
                                None if intercept is None else torch.as_tensor([float(intercept)], dtype=C.DTYPE))
                c, b = c[0].numpy(), float(b[0])
                for target in data:
                    Xb, yb, gb, _ = target.part("validation")
                    acc[(a.name, algorithm, layer, target.name)] = reference_accuracy(
                        c, b, np.asarray(Xb[layer], dtype=np.float64), yb, gb)
    return acc


def run_ours(data: list, algorithms: dict, layers: list[int]) -> dict:
    bank = protocol.fit_bank(data, algorithms, layers)
    acc = {}
    for scores in protocol.score_bank(bank, data, "validation"):
        values = scores.accuracy.numpy()
        for p in range(len(bank)):
            for layer in range(len(layers)):
                acc[(bank.trained_on[p], bank.algorithm[p], layer, scores.dataset)] = float(values[p, layer])
    return acc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--datasets", default="cities,neg_cities,larger_than")
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--store", default="runs/probes-smollm2-135m", help="Where activations are (or go).")
    parser.add_argument("--algorithms", default=",".join(DETERMINISTIC))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--reference-repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (and run under OMP_NUM_THREADS=1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    store = Store(args.store)
    m = load(args.model)
    data = []
    for name in args.datasets.split(","):
        ds = load_dataset(name, args.limit, max_chars=300)
        acts, layers, _ = cached_activations(store, m, ds, "all", "last")
        data.append(protocol.Data.of(ds, np.asarray(acts)))
    algorithms = {a: {} for a in args.algorithms.split(",")}
    rows = sum(len(d.labels) for d in data)
    print(f"{args.model}: {len(data)} datasets ({rows} rows), {len(layers)} layers, {len(algorithms)} algorithms "
          f"-> {len(data) * len(algorithms) * len(layers)} probes, each scored on {len(data)} datasets")
    ours_times, ref_times = [], []
    ours = ref = {}
    for _ in range(args.repeats):
        start = time.perf_counter()
        ours = run_ours(data, algorithms, layers)
        ours_times.append(time.perf_counter() - start)
    t_ours = statistics.median(ours_times)
    print(f"ours (batched)           : {t_ours:8.2f} s  (median of {args.repeats}: "
          f"{', '.join(f'{t:.2f}' for t in ours_times)})", flush=True)
    for _ in range(args.reference_repeats):
        start = time.perf_counter()
        ref = run_reference(data, algorithms, len(layers))
        ref_times.append(time.perf_counter() - start)
    t_ref = statistics.median(ref_times)
    print(f"reference (one at a time): {t_ref:8.2f} s  (median of {args.reference_repeats}: "
          f"{', '.join(f'{t:.2f}' for t in ref_times)})")
    print(f"speed-up                 : {t_ref / t_ours:8.1f}x (target >= 20x)")
    print("per algorithm (one run each side; accuracy over every (trained on, layer, scored on) cell):")
    for algorithm in algorithms:
        one = {algorithm: algorithms[algorithm]}
        start = time.perf_counter()
        run_ours(data, one, layers)
        mid = time.perf_counter()
        run_reference(data, one, len(layers))
        t_a, t_r = mid - start, time.perf_counter() - mid
        keys = [k for k in ref if k[1] == algorithm and k in ours]
        diff = max(abs(ours[k] - ref[k]) for k in keys) if keys else float("nan")
        mean_ours = np.mean([ours[k] for k in keys]) if keys else float("nan")
        tag = "checked" if algorithm in DETERMINISTIC else "seeded per batch: not checked"
        print(f"  {algorithm:7s} ours {t_a:6.2f} s  ref {t_r:6.2f} s  {t_r / t_a:5.1f}x   max |acc diff| {diff:.4f} "
              f"over {len(keys)} cells, mean acc {mean_ours:.3f} ({tag})", flush=True)
    checked = [k for k in ref if k[1] in DETERMINISTIC and k in ours]
    if checked:
        worst = max(abs(ours[k] - ref[k]) for k in checked)
        print(f"deterministic algorithms: max |acc diff| = {worst:.2e} ({'OK' if worst <= 1e-3 else 'ABOVE 1e-3'})")

if __name__ == "__main__":
    main()
