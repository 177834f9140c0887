"""The probe algorithms, one short module each, registered by name.

Every algorithm is a `Probe` (see `base`): `fit(X, y, groups=None, answer_types=None)`,
`decision_function`, `predict`, `score`; X may stack many problems (one per layer).
A new algorithm is one file with a `_direction` method and one line in `ALGORITHMS`.
"""

from __future__ import annotations

from typing import Any

from transferlab.errors import unknown_name
from transferlab.probes.algorithms.base import Probe
from transferlab.probes.algorithms.ccs import CCS
from transferlab.probes.algorithms.dim import DIM
from transferlab.probes.algorithms.lat import LAT
from transferlab.probes.algorithms.lda import LDA
from transferlab.probes.algorithms.lr import LR
from transferlab.probes.algorithms.lr_g import LRG
from transferlab.probes.algorithms.pca import PCA
from transferlab.probes.algorithms.pca_g import PCAG
from transferlab.probes.algorithms.random import RandomProbe

ALGORITHMS: dict[str, type[Probe]] = {
    cls.name: cls for cls in (DIM, LDA, LR, LRG, CCS, PCA, PCAG, LAT, RandomProbe)
}
# the eight algorithms of the study; `random` is the baseline drawn beside them
STUDY_ALGORITHMS = ("dim", "lda", "lr", "lr-g", "ccs", "pca", "pca-g", "lat")
# reference points, never candidates for "best probe" (a denominator, a matrix row, a headline)
BASELINES = ("random",)
DISPLAY = {"dim": "DIM", "lda": "LDA", "lr": "LR", "lr-g": "LR-G", "ccs": "CCS", "pca": "PCA", "pca-g": "PCA-G",
           "lat": "LAT", "random": "Random"}


def make(name: str, **params: Any) -> Probe:
    """A fresh, unfitted probe of the named algorithm (names as in ALGORITHMS, case-insensitive)."""
    key = name.lower()
    if key not in ALGORITHMS:
        raise unknown_name("probe algorithm", name, ALGORITHMS)
    return ALGORITHMS[key](**params)


__all__ = ["ALGORITHMS", "BASELINES", "CCS", "DIM", "DISPLAY", "LAT", "LDA", "LR", "LRG", "PCA", "PCAG", "Probe", "RandomProbe",
           "STUDY_ALGORITHMS", "make"]
