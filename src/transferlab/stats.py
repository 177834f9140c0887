"""Metrics with uncertainty: bootstrap CIs over examples, paired against the baseline.

Paired means the same resampled examples are used for both sides of a difference, so
the interval reflects the noise in the difference, not in each score separately.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Estimate:
    value: float
    n: int
    ci_low: float
    ci_high: float
    p: float = float("nan")  # two-sided bootstrap p-value of "the mean is 0" (meaningful for differences)

    @property
    def significant(self) -> bool:
        """True when the interval excludes zero (for differences)."""
        return self.ci_low > 0 or self.ci_high < 0


def _resample_indices(n: int, resamples: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def bootstrap_mean(values: Sequence[float], resamples: int = 1000, seed: int = 0, level: float = 0.95,
                   weights: Sequence[float] | None = None) -> Estimate:
    """(Weighted) mean with a percentile bootstrap interval over examples."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return Estimate(float("nan"), 0, float("nan"), float("nan"))
    w = np.ones_like(x) if weights is None else np.asarray(weights, dtype=float)
    idx = _resample_indices(x.size, resamples, seed)
    means = (x[idx] * w[idx]).sum(axis=1) / w[idx].sum(axis=1)
    tail = (1 - level) / 2 * 100
    value = float((x * w).sum() / w.sum())
    return Estimate(value, int(x.size), float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail)),
                    bootstrap_p(means))


def _replicates(x: np.ndarray, w: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    idx = _resample_indices(x.size, resamples, seed)
    return (x[idx] * w[idx]).sum(axis=1) / w[idx].sum(axis=1)


def hierarchical_mean(groups: Sequence[Sequence[float]], resamples: int = 1000, seed: int = 0, level: float = 0.95,
                      weights: Sequence[Sequence[float] | None] | None = None) -> Estimate:
    """The mean over groups (seeds) of each group's mean, with a two-level bootstrap: each
    replicate draws the seeds with replacement, then the examples within each drawn seed.

    This is how seeds pool: the interval holds both the noise of the examples and the spread
    between seeds (so two seeds that disagree give a wider interval than either), which
    averaging the seeds' own bounds never does.
    """
    arrays = [np.asarray(g, dtype=float) for g in groups]
    arrays_w = [np.ones_like(a) if weights is None or weights[i] is None else np.asarray(weights[i], dtype=float)
                for i, a in enumerate(arrays)]
    kept = [(a, w) for a, w in zip(arrays, arrays_w) if a.size]
    if not kept:
        return Estimate(float("nan"), 0, float("nan"), float("nan"))
    per_group = np.stack([_replicates(a, w, resamples, seed + i) for i, (a, w) in enumerate(kept)])  # (S, B)
    drawn = np.random.default_rng(seed).integers(0, len(kept), size=(resamples, len(kept)))
    pooled = per_group[drawn, np.arange(resamples)[:, None]].mean(axis=1)
    tail = (1 - level) / 2 * 100
    value = float(np.mean([(a * w).sum() / w.sum() for a, w in kept]))
    return Estimate(value, int(sum(a.size for a, _ in kept)), float(np.percentile(pooled, tail)),
                    float(np.percentile(pooled, 100 - tail)), bootstrap_p(pooled))


def hierarchical_ratio(numerators: Sequence[Sequence[float]], denominators: Sequence[Sequence[float]],
                       resamples: int = 1000, seed: int = 0, level: float = 0.95,
                       weights: Sequence[Sequence[float] | None] | None = None) -> Estimate:
    """mean(numerator) / mean(denominator) pooled over groups (seeds) by the same two-level
    bootstrap as `hierarchical_mean`; each group's numerator and denominator are resampled
    together (paired over its examples). Callers decide first that no group's denominator is noise."""
    parts = []
    for i, (a, b) in enumerate(zip(numerators, denominators)):
        a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
        w = np.ones_like(a) if weights is None or weights[i] is None else np.asarray(weights[i], dtype=float)
        if a.size:
            idx = _resample_indices(a.size, resamples, seed + i)
            parts.append(((a[idx] * w[idx]).sum(axis=1) / w[idx].sum(axis=1),
                          (b[idx] * w[idx]).sum(axis=1) / w[idx].sum(axis=1),
                          (a * w).sum() / w.sum(), (b * w).sum() / w.sum(), a.size))
    if not parts:
        return Estimate(float("nan"), 0, float("nan"), float("nan"))
    num = np.stack([p[0] for p in parts])
    den = np.stack([p[1] for p in parts])
    drawn = np.random.default_rng(seed).integers(0, len(parts), size=(resamples, len(parts)))
    rows = np.arange(resamples)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = num[drawn, rows].mean(axis=1) / den[drawn, rows].mean(axis=1)
    ratios = ratios[np.isfinite(ratios)]
    denominator = float(np.mean([p[3] for p in parts]))
    value = float(np.mean([p[2] for p in parts]) / denominator) if denominator else float("nan")
    n = int(sum(p[4] for p in parts))
    if ratios.size == 0:
        return Estimate(value, n, float("nan"), float("nan"))
    tail = (1 - level) / 2 * 100
    return Estimate(value, n, float(np.percentile(ratios, tail)), float(np.percentile(ratios, 100 - tail)))


def bootstrap_p(means: np.ndarray) -> float:
    """Two-sided p-value of "the mean is 0" from its bootstrap distribution, the inverse of the
    percentile interval: p < 0.05 exactly when the 95% interval (nearly) excludes 0. The +1s
    keep it above 0, since B resamples cannot show a probability below 1 / (B + 1)."""
    draws = means.size
    below = (np.count_nonzero(means <= 0) + 1) / (draws + 1)
    above = (np.count_nonzero(means >= 0) + 1) / (draws + 1)
    return float(min(1.0, 2 * min(below, above)))


def bh_qvalues(pvalues: Sequence[float]) -> np.ndarray:
    """Benjamini-Hochberg q-values (false-discovery-rate adjusted p-values) of a family of
    tests, e.g. every gain cell of a matrix; NaN p-values stay NaN and do not count in the family.

    q_(i) = min over j >= i of p_(j) * m / j, for p sorted ascending, capped at 1.
    """
    p = np.asarray(pvalues, dtype=float)
    q = np.full(p.shape, np.nan)
    tested = np.flatnonzero(~np.isnan(p))
    if tested.size == 0:
        return q
    order = tested[np.argsort(p[tested], kind="stable")]
    ranked = p[order] * tested.size / np.arange(1, tested.size + 1)
    q[order] = np.minimum(1.0, np.minimum.accumulate(ranked[::-1])[::-1])
    return q


def paired_difference(treated: Sequence[float], control: Sequence[float], resamples: int = 1000, seed: int = 0,
                      level: float = 0.95, weights: Sequence[float] | None = None) -> Estimate:
    """mean(treated - control) over the same examples, with a paired bootstrap interval."""
    a, b = np.asarray(treated, dtype=float), np.asarray(control, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired scores differ in length: {a.size} vs {b.size}")
    return bootstrap_mean(a - b, resamples, seed, level, weights)


def paired_ratio(numerator: Sequence[float], denominator: Sequence[float], resamples: int = 1000, seed: int = 0,
                 level: float = 0.95, weights: Sequence[float] | None = None) -> Estimate:
    """mean(numerator) / mean(denominator) over the same examples, resampled together.

    Callers decide first whether the denominator is distinguishable from zero: a ratio
    over noise is reported as NA, never as a huge number.
    """
    a, b = np.asarray(numerator, dtype=float), np.asarray(denominator, dtype=float)
    w = np.ones_like(a) if weights is None else np.asarray(weights, dtype=float)
    if a.size == 0 or (b * w).sum() == 0:
        return Estimate(float("nan"), int(a.size), float("nan"), float("nan"))
    idx = _resample_indices(a.size, resamples, seed)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = (a[idx] * w[idx]).sum(axis=1) / (b[idx] * w[idx]).sum(axis=1)
    ratios = ratios[np.isfinite(ratios)]
    tail = (1 - level) / 2 * 100
    value = float((a * w).sum() / (b * w).sum())
    if ratios.size == 0:
        return Estimate(value, int(a.size), float("nan"), float("nan"))
    return Estimate(value, int(a.size), float(np.percentile(ratios, tail)), float(np.percentile(ratios, 100 - tail)))


def align(uids_a: Sequence[str], scores_a: Sequence[float], uids_b: Sequence[str],
          scores_b: Sequence[float]) -> tuple[list[int], list[float], list[float]]:
    """Positions in A and scores of the examples both evaluations share, in A's order (for pairing)."""
    index_b = {u: i for i, u in enumerate(uids_b)}
    shared = [i for i, u in enumerate(uids_a) if u in index_b]
    return shared, [scores_a[i] for i in shared], [scores_b[index_b[uids_a[i]]] for i in shared]
