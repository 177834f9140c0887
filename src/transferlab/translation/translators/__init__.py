"""Translators from model X's adapters to model Y's, registered by name.

Each is a small class with `fit(anchors_X, anchors_Y)` and `predict(adapter_X)`; a new
method is one short file plus a line here.
"""

from __future__ import annotations

from typing import Any

from transferlab.errors import unknown_name
from transferlab.translation.translators.base import Prediction, Translator
from transferlab.translation.translators.global_ridge import GlobalRidgeTranslator
from transferlab.translation.translators.mean import MeanTranslator
from transferlab.translation.translators.pertensor_mlp import PerTensorMLPTranslator
from transferlab.translation.translators.pertensor_ridge import PerTensorRidgeTranslator
from transferlab.translation.translators.subspace_projection import (
    SubspaceProjectionTranslator,
)
from transferlab.translation.translators.topk_global_ridge import (
    TopKGlobalRidgeTranslator,
)
from transferlab.translation.translators.topk_pertensor_ridge import (
    TopKPerTensorRidgeTranslator,
)

TRANSLATORS: dict[str, type[Translator]] = {
    cls.name: cls
    for cls in (MeanTranslator, GlobalRidgeTranslator, PerTensorRidgeTranslator, TopKGlobalRidgeTranslator,
                TopKPerTensorRidgeTranslator, PerTensorMLPTranslator, SubspaceProjectionTranslator)
}
LEARNED = ("global_ridge", "pertensor_ridge", "topk_global_ridge", "topk_pertensor_ridge", "pertensor_mlp")


def make(name: str, **params: Any) -> Translator:
    """A translator by registry name, with its hyper-parameters."""
    if name not in TRANSLATORS:
        raise unknown_name("translation method", name, TRANSLATORS)
    return TRANSLATORS[name](**params)


__all__ = ["LEARNED", "TRANSLATORS", "Prediction", "Translator", "make"]
