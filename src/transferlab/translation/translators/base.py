"""What every translator shares: checking anchors and queries, and the prediction it returns.

A translator maps model X's adapter of a task to a predicted adapter of model Y for the
same task. `fit(anchors_X, anchors_Y)` takes N adapter pairs (the i-th X and Y adapters
were trained on the same anchor task); `predict(adapter_X)` returns a `Prediction` that
`write` saves as a PEFT adapter for Y.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from transferlab.errors import TransferlabError
from transferlab.translation.features import (
    AdapterStack,
    LoraAdapter,
    TensorId,
    check_compatible,
    write_adapter,
)

Factors = dict[TensorId, tuple[torch.Tensor, torch.Tensor]]  # tensor -> (A, B), ΔW = B @ A


@dataclass
class Prediction:
    """A predicted Y adapter as factored updates, with what the translator decided on the way."""

    factors: Factors
    template: LoraAdapter  # a Y anchor: its PEFT layout, rank and alpha are the output's
    meta: dict[str, Any] = field(default_factory=dict)

    def write(self, directory: str | Path, rank: int | None = None) -> Path:
        return write_adapter(self.factors, self.template, self.template.base_model, directory, rank)


def as_stack(adapters: AdapterStack | Sequence[LoraAdapter], role: str) -> AdapterStack:
    return adapters if isinstance(adapters, AdapterStack) else AdapterStack.of(list(adapters), role=role)


class Translator:
    """Base class: validation in `fit`/`predict`, the method itself in `_fit`/`_predict`.

    Hyper-parameters are stored by the constructor and never changed; learned state
    ends in `_`.
    """

    name = "translator"
    min_anchors = 1

    def fit(self, anchors_X: AdapterStack | Sequence[LoraAdapter],
            anchors_Y: AdapterStack | Sequence[LoraAdapter]) -> Translator:
        x, y = as_stack(anchors_X, "anchor (model X)"), as_stack(anchors_Y, "anchor (model Y)")
        if len(x) != len(y):
            raise TransferlabError(f"{self.name}: {len(x)} X anchors but {len(y)} Y anchors: anchors come in "
                                   "pairs trained on the same task")
        need = self.needed_anchors()
        if len(x) < need:
            raise TransferlabError(f"{self.name} needs at least {need} anchor pairs, got {len(x)} "
                                   f"({', '.join(x.names)})")
        self.x_, self.y_ = x, y
        self._fit()
        return self

    def needed_anchors(self) -> int:
        return self.min_anchors

    def predict(self, adapter_X: LoraAdapter) -> Prediction:
        if not hasattr(self, "x_"):
            raise TransferlabError(f"{self.name}: call fit(anchors_X, anchors_Y) before predict")
        check_compatible([self.x_.adapters[0], adapter_X], self.x_.base_model, "query")
        return self._predict(AdapterStack([adapter_X]))

    def _fit(self) -> None:
        raise NotImplementedError

    def _predict(self, query: AdapterStack) -> Prediction:
        raise NotImplementedError

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.endswith("_"))
        return f"{type(self).__name__}({params})"
