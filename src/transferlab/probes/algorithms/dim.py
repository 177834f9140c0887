"""DIM: difference in means; the simplest direction, and often the one that generalises best."""

from __future__ import annotations

from transferlab.probes.algorithms.base import Probe


class DIM(Probe):
    """Direction = mean(true rows) - mean(false rows); threshold fitted on the training rows.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[0.0, 1.0], [0.0, 2.0], [1.0, 0.0], [2.0, 0.0]])
    >>> DIM().fit(X, [1, 1, 0, 0]).predict(X).tolist()
    [1, 1, 0, 0]
    """

    name = "dim"

    def __init__(self) -> None:
        pass

    def _direction(self, X, y, codes, answer_types):
        return X[:, y == 1].mean(dim=1) - X[:, y == 0].mean(dim=1), None

