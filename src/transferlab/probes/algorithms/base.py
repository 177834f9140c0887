"""The probe estimator: hyper-parameters in `__init__`, learned state in attributes ending in `_`.

A probe is a direction and a bias: `decision_function(X) = X @ coef_ + intercept_`, positive
meaning "true". Subclasses implement only `_direction`; `fit` validates the input, applies
the sign convention and sets the threshold the same way for every algorithm.
"""

from __future__ import annotations

import inspect
from typing import Any, ClassVar

import numpy as np
import torch

from transferlab.errors import TransferlabError
from transferlab.probes.algorithms import _common as C


class Probe:
    """Base class of the linear probes (scikit-learn conventions, batched over a leading axis).

    `fit(X, y, groups=None, answer_types=None)` takes X of shape (n, d), or (B, n, d) to fit
    B independent problems (one per layer) in one call; `coef_` is then (B, d) and
    `intercept_` (B,).
    """

    name: ClassVar[str] = ""
    uses_groups: ClassVar[bool] = False  # True: trains only on groups that hold both labels
    deterministic: ClassVar[bool] = True

    def _direction(self, X: torch.Tensor, y: torch.Tensor, codes: torch.Tensor | None,
                   answer_types: np.ndarray | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(coef (B, d), intercept (B,) or None when the threshold should be fitted)."""
        raise NotImplementedError

    # ---- scikit-learn style API -----------------------------------------------------------
    def get_params(self, deep: bool = True) -> dict[str, Any]:
        names = [p for p in inspect.signature(type(self).__init__).parameters if p != "self"]
        return {p: getattr(self, p) for p in names}

    def set_params(self, **params: Any) -> Probe:
        for key, value in params.items():
            if key not in self.get_params():
                raise TransferlabError(f"{type(self).__name__} has no parameter {key!r}: "
                                       f"valid: {', '.join(self.get_params())}")
            setattr(self, key, value)
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    def fit(self, X: Any, y: Any, groups: Any = None, answer_types: Any = None) -> Probe:
        """Learn the direction and threshold from training rows; returns self."""
        Xt, single = C.check_X(X)
        labels = C.check_labels(y, Xt.shape[1])
        codes = C.group_index(groups, Xt.shape[1]) if groups is not None else None
        types = None if answer_types is None else np.asarray(answer_types)
        if types is not None and types.shape != (Xt.shape[1],):
            raise TransferlabError(f"answer_types must have one entry per row ({Xt.shape[1]}), got {types.shape}")
        C.check_not_constant(Xt)
        if self.uses_groups:
            mask, codes = C.require_contrast_groups(labels, groups, type(self).__name__)
            if not bool(mask.all()):  # (no copy when every group is usable: the rows stay shareable)
                Xt, labels, codes = Xt[:, mask], labels[mask], codes[mask]
                types = None if types is None else types[mask.numpy()]
        coef, intercept = self._direction(Xt, labels, codes, types)
        if not torch.isfinite(coef).all() or (intercept is not None and not torch.isfinite(intercept).all()):
            raise TransferlabError(f"{type(self).__name__} diverged (non-finite direction): check the activations")
        coef, intercept_ = C.orient(Xt, labels, codes, coef, intercept)
        self.coef_ = coef[0].numpy() if single else coef.numpy()
        self.intercept_ = float(intercept_[0]) if single else intercept_.numpy()
        self.n_features_in_ = Xt.shape[-1]
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "coef_"):
            raise TransferlabError(f"this {type(self).__name__} is not fitted yet: call fit(X, y) first")

    def decision_function(self, X: Any) -> np.ndarray:
        """Signed scores, positive = predicted true; (n,) or (B, n) like the fitted coef_."""
        self._check_fitted()
        Xt, single = C.check_X(X, self.n_features_in_)
        coef = torch.as_tensor(np.atleast_2d(self.coef_), dtype=C.DTYPE)
        bias = torch.as_tensor(np.atleast_1d(self.intercept_), dtype=C.DTYPE)
        if coef.shape[0] != Xt.shape[0] and coef.shape[0] != 1:
            raise TransferlabError(f"the probe holds {coef.shape[0]} problems but X stacks {Xt.shape[0]}")
        scores = torch.einsum("bnd,bd->bn", Xt, coef.expand(Xt.shape[0], -1)) + bias[:, None]
        return scores[0].numpy() if single and coef.shape[0] == 1 else scores.numpy()

    def predict(self, X: Any) -> np.ndarray:
        return (self.decision_function(X) > 0).astype(np.int64)

    def score(self, X: Any, y: Any, groups: Any = None) -> float | np.ndarray:
        """Question accuracy when `groups` make every group one-true, else row accuracy."""
        scores = torch.as_tensor(np.atleast_2d(self.decision_function(X)), dtype=C.DTYPE)
        labels = C.check_labels(y, scores.shape[1])
        codes = C.group_index(groups, scores.shape[1]) if groups is not None else None
        if codes is not None and C.is_grouped(labels, codes):
            acc = C.question_accuracy(scores, labels, codes)
        else:
            acc = C.row_accuracy(scores, labels)
        return float(acc[0]) if acc.shape[0] == 1 else acc.numpy()
