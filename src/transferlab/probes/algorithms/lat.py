"""LAT: linear artificial tomography (RepE): first component of differences of random row pairs."""

from __future__ import annotations

import torch

from transferlab.errors import TransferlabError
from transferlab.probes.algorithms import _common as C
from transferlab.probes.algorithms.base import Probe


class LAT(Probe):
    """Direction = first principal component of x_i - x_j over random pairs (i, j) of rows.

    Parameters
    ----------
    seed : int, default=0
        Seeds the pairing; the same pairs are used for every problem of a batch.
    """

    name = "lat"

    def __init__(self, *, seed: int = 0) -> None:
        self.seed = seed

    def _direction(self, X, y, codes, answer_types):
        n = X.shape[1]
        if n < 2:
            raise TransferlabError("LAT needs at least two rows to pair")
        order = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed))
        half = n // 2
        diffs = X[:, order[:half]] - X[:, order[half:2 * half]]
        return C.top_component(diffs), None
