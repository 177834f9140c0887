"""`mean`: the average of the anchor Y adapters, whatever the query.

The baseline every learned translator must beat: it knows what Y adapters look like in
general, but nothing about the held-out task.
"""

from __future__ import annotations

import torch

from transferlab.translation.translators.base import Prediction, Translator


class MeanTranslator(Translator):
    name = "mean"
    min_anchors = 1

    def _fit(self) -> None:
        n = len(self.y_)
        self.weights_ = torch.full((n,), 1.0 / n, dtype=torch.float64)

    def _predict(self, query) -> Prediction:
        factors = {t: self.y_.combine(t, self.weights_) for t in self.y_.tensors}
        return Prediction(factors, self.y_.adapters[0], {"weights": dict(zip(self.y_.names, self.weights_.tolist()))})
