"""`topk_pertensor_ridge`: per-tensor ridge fitted, per query, on the k nearest anchors
(nearness as in `topk_global_ridge`)."""

from __future__ import annotations

from transferlab.translation.translators.pertensor_ridge import PerTensorRidgeTranslator
from transferlab.translation.translators.topk_global_ridge import (
    TopKGlobalRidgeTranslator,
)


class TopKPerTensorRidgeTranslator(TopKGlobalRidgeTranslator):
    name = "topk_pertensor_ridge"
    inner = PerTensorRidgeTranslator
