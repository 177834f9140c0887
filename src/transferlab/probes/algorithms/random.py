"""Random: a seeded random direction, the floor every real probe must beat."""

from __future__ import annotations

import torch

from transferlab.probes.algorithms.base import Probe


class RandomProbe(Probe):
    """Direction drawn from an isotropic Gaussian (one per problem); threshold and sign fitted.

    The sign convention lets it pick the better of +w and -w on the training rows, so it
    sits slightly above chance, as any probe would with no signal.
    """

    name = "random"
    deterministic = True  # deterministic given the seed

    def __init__(self, *, seed: int = 0) -> None:
        self.seed = seed

    def _direction(self, X, y, codes, answer_types):
        generator = torch.Generator().manual_seed(self.seed)
        coef = torch.randn(X.shape[0], X.shape[2], generator=generator, dtype=X.dtype)
        return coef / coef.norm(dim=1, keepdim=True), None
