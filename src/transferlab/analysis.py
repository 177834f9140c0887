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

    @property
    def significant(self) -> bool:
        """True when the interval excludes zero (for differences)."""
        return self.ci_low > 0 or self.ci_high < 0


def _resample_indices(n: int, resamples: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def bootstrap_mean(values: Sequence[float], resamples: int = 1000, seed: int = 0, level: float = 0.95) -> Estimate:
    """Mean with a percentile bootstrap interval over examples."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return Estimate(float("nan"), 0, float("nan"), float("nan"))
    means = x[_resample_indices(x.size, resamples, seed)].mean(axis=1)
    tail = (1 - level) / 2 * 100
    return Estimate(float(x.mean()), int(x.size), float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail)))


def paired_difference(treated: Sequence[float], control: Sequence[float], resamples: int = 1000, seed: int = 0,
                      level: float = 0.95) -> Estimate:
    """mean(treated - control) over the same examples, with a paired bootstrap interval."""
    a, b = np.asarray(treated, dtype=float), np.asarray(control, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired scores differ in length: {a.size} vs {b.size}")
    return bootstrap_mean(a - b, resamples, seed, level)


def align(uids_a: Sequence[str], scores_a: Sequence[float], uids_b: Sequence[str],
          scores_b: Sequence[float]) -> tuple[list[float], list[float]]:
    """Scores of the examples both evaluations share, in the same order (for pairing)."""
    index_b = {u: i for i, u in enumerate(uids_b)}
    pairs = [(scores_a[i], scores_b[index_b[u]]) for i, u in enumerate(uids_a) if u in index_b]
    return [p[0] for p in pairs], [p[1] for p in pairs]
