"""`pertensor_ridge`: one ridge per Y tensor (layer, module), from the X tensors of the
same module at the same relative depth.

Each Y tensor gets its own affine weights over the anchor Y adapters and its own λ
(leave-one-anchor-out on that tensor's Y features); all tensors are solved as one
batched N x N problem.
"""

from __future__ import annotations

import torch

from transferlab.translation.features import (
    AdapterStack,
    normalised_grams,
    source_tensors_for,
)
from transferlab.translation.translators._kernel import (
    DEFAULT_GRID,
    choose_lambda,
    ridge_weights,
)
from transferlab.translation.translators.base import Prediction, Translator


def matched_kernels(x: AdapterStack, y: AdapterStack, query: AdapterStack | None = None) -> torch.Tensor:
    """(T, N, M): for each Y tensor, the X kernel over its depth-matched X tensors."""
    grams = normalised_grams(x, query)
    sources = source_tensors_for(x, y.tensors, y.n_layers)
    return torch.stack([sum(w * grams[s] for s, w in sources[t]) for t in y.tensors])


class PerTensorRidgeTranslator(Translator):
    name = "pertensor_ridge"
    min_anchors = 3

    def __init__(self, *, grid: tuple[float, ...] = DEFAULT_GRID):
        self.grid = grid

    def _fit(self) -> None:
        self.K_ = matched_kernels(self.x_, self.y_)
        ys = normalised_grams(self.y_)
        G = torch.stack([ys[t] for t in self.y_.tensors])
        self.lambda_, self.loo_error_ = choose_lambda(self.K_, G, self.grid)

    def _predict(self, query: AdapterStack) -> Prediction:
        k = matched_kernels(self.x_, self.y_, query)
        w = ridge_weights(self.K_, k, self.lambda_)[..., 0]  # T x N
        factors = {t: self.y_.combine(t, w[i]) for i, t in enumerate(self.y_.tensors)}
        return Prediction(factors, self.y_.adapters[0], {
            "lambda_median": float(self.lambda_.median()), "loo_error": float(self.loo_error_.mean()),
            "weights": dict(zip(self.y_.names, w.mean(0).tolist()))})
