"""`global_ridge`: one ridge regression from all of X's update features to all of Y's.

Solved in kernel form: the X Gram (N x N, Frobenius inner products of updates computed
from the factors) gives one set of affine weights over the anchor Y adapters, shared by
every Y tensor. Each X tensor is scaled to unit mean norm over the anchors first, so
every layer and module weighs the same. λ is chosen by leave-one-anchor-out.
"""

from __future__ import annotations

import torch

from transferlab.translation.features import AdapterStack, normalised_grams
from transferlab.translation.translators._kernel import (
    DEFAULT_GRID,
    choose_lambda,
    ridge_weights,
)
from transferlab.translation.translators.base import Prediction, Translator


def global_kernel(x: AdapterStack, query: AdapterStack | None = None) -> torch.Tensor:
    """Σ over X tensors of the normalised Grams: anchors x anchors, or anchors x queries."""
    return sum(normalised_grams(x, query).values())


class GlobalRidgeTranslator(Translator):
    name = "global_ridge"
    min_anchors = 3

    def __init__(self, *, grid: tuple[float, ...] = DEFAULT_GRID):
        self.grid = grid

    def _fit(self) -> None:
        self.K_ = global_kernel(self.x_)
        G = sum(normalised_grams(self.y_).values())
        lam, err = choose_lambda(self.K_, G, self.grid)
        self.lambda_, self.loo_error_ = float(lam), float(err)

    def _predict(self, query: AdapterStack) -> Prediction:
        k = global_kernel(self.x_, query)
        w = ridge_weights(self.K_, k, torch.tensor(self.lambda_, dtype=self.K_.dtype))[:, 0]
        factors = {t: self.y_.combine(t, w) for t in self.y_.tensors}
        return Prediction(factors, self.y_.adapters[0], {
            "lambda": self.lambda_, "loo_error": self.loo_error_, "weights": dict(zip(self.y_.names, w.tolist()))})
