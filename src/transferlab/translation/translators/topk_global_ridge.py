"""`topk_global_ridge`: global ridge fitted, per query, on the k anchors nearest to it.

Nearness is the cosine between the query's X update and each anchor's, over all X
tensors (each scaled to unit mean norm). The selected anchors are kept in the
prediction's `meta`, so reports can show which tasks a prediction was built from.
"""

from __future__ import annotations

import torch

from transferlab.translation.features import AdapterStack
from transferlab.translation.translators._kernel import DEFAULT_GRID
from transferlab.translation.translators.base import Prediction, Translator
from transferlab.translation.translators.global_ridge import (
    GlobalRidgeTranslator,
    global_kernel,
)


def nearest_anchors(x: AdapterStack, query: AdapterStack, k: int) -> list[int]:
    """Indices of the k anchors whose X updates have the highest cosine with the query's."""
    scales = {t: x.gram(t).diagonal().mean().clamp(min=1e-30) for t in x.tensors}
    self_q = sum(query.gram(t)[0, 0] / scales[t] for t in x.tensors)
    cos = global_kernel(x, query)[:, 0] / (global_kernel(x).diagonal() * self_q).clamp(min=1e-30).sqrt()
    return torch.argsort(cos, descending=True)[:k].tolist()


class TopKGlobalRidgeTranslator(Translator):
    name = "topk_global_ridge"
    inner = GlobalRidgeTranslator

    def __init__(self, *, k: int = 8, grid: tuple[float, ...] = DEFAULT_GRID):
        self.k = k
        self.grid = grid

    def needed_anchors(self) -> int:
        return max(self.k, self.inner.min_anchors)

    def _fit(self) -> None:
        pass  # the ridge depends on the query: it is fitted in predict, on the query's neighbours

    def _predict(self, query: AdapterStack) -> Prediction:
        chosen = nearest_anchors(self.x_, query, self.k)
        inner = self.inner(grid=self.grid).fit(self.x_.subset(chosen), self.y_.subset(chosen))
        prediction = inner._predict(query)
        prediction.meta["selected"] = [self.x_.names[i] for i in chosen]
        return prediction
