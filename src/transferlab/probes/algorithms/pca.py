"""PCA: the first principal component of the activations; unsupervised except for its sign."""

from __future__ import annotations

import numpy as np
import torch

from transferlab.errors import TransferlabError
from transferlab.probes.algorithms import _common as C
from transferlab.probes.algorithms.base import Probe


class PCA(Probe):
    """Direction = first principal component of the centred training rows.

    Parameters
    ----------
    center : {'global', 'answer_type'}, default='global'
        'answer_type' subtracts the mean of each answer type (e.g. rows ending in "yes"
        vs "no") first, so the component is not just the answer token.
    """

    name = "pca"

    def __init__(self, *, center: str = "global") -> None:
        self.center = center

    def _direction(self, X, y, codes, answer_types):
        if self.center == "global":
            return C.top_component(X), None
        if self.center == "answer_type":
            if answer_types is None:
                raise TransferlabError("PCA(center='answer_type') needs answer_types in fit")
            _, type_codes = np.unique(answer_types, return_inverse=True)
            return C.top_component(X, torch.as_tensor(type_codes.reshape(-1))), None
        raise TransferlabError(f"PCA center must be 'global' or 'answer_type', got {self.center!r}")
