"""`subspace_projection`: a training-free baseline in the spirit of LoRA-X / Cross-LoRA.

The X update is written in the singular bases of its frozen X weight, C = U_Xᵀ ΔW_X V_X
(top-k directions), and the same coordinates are laid on Y's weight, ΔW_Y = U_Y C V_Yᵀ,
with ΔW_Y's size relative to W_Y equal to ΔW_X's relative to W_X. Layers are matched by
relative depth; k = the smaller of the two weights' ranks, so any widths work. It uses
no anchors (they only give the PEFT layout), and it assumes the i-th singular direction
of X's weight plays the part of Y's i-th: nothing guarantees that across model families,
which is what the learned translators are measured against.
"""

from __future__ import annotations

import torch

from transferlab.translation.features import AdapterStack, TensorId, source_tensors_for
from transferlab.translation.translators.base import Prediction, Translator

_BASES: dict[int, tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor, float]]] = {}


def singular_basis(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, float]:
    """(U, V, ‖W‖) of a frozen base weight, computed once per weight tensor: every held-out
    task's fit needs the same bases, and they are most of this method's cost."""
    cached = _BASES.get(id(weight))
    if cached is not None and cached[0] is weight:
        return cached[1]
    w = weight.to(torch.float64)
    u, _, vt = torch.linalg.svd(w, full_matrices=False)
    _BASES[id(weight)] = (weight, (u, vt.T, float(w.norm())))
    return _BASES[id(weight)][1]


class SubspaceProjectionTranslator(Translator):
    name = "subspace_projection"
    min_anchors = 1  # a Y anchor supplies the output's PEFT layout

    def __init__(self, *, weights_X: dict[TensorId, torch.Tensor], weights_Y: dict[TensorId, torch.Tensor]):
        self.weights_X = weights_X
        self.weights_Y = weights_Y

    def _fit(self) -> None:
        self.sources_ = source_tensors_for(self.x_, self.y_.tensors, self.y_.n_layers)
        self.svd_: dict[TensorId, tuple[torch.Tensor, torch.Tensor, float]] = {}
        for t in {s for pairs in self.sources_.values() for s, _ in pairs}:
            self.svd_[("x", *t)] = self._svd(self.weights_X, t, "X")
        for t in self.y_.tensors:
            self.svd_[("y", *t)] = self._svd(self.weights_Y, t, "Y")

    @staticmethod
    def _svd(weights: dict[TensorId, torch.Tensor], t: TensorId, which: str) -> tuple[torch.Tensor, torch.Tensor, float]:
        from transferlab.errors import TransferlabError

        if t not in weights:
            raise TransferlabError(f"subspace_projection: no base weight of model {which} for layer {t[0]} {t[1]}")
        return singular_basis(weights[t])

    def _predict(self, query: AdapterStack) -> Prediction:
        adapter = query.adapters[0]
        factors = {}
        for t in self.y_.tensors:
            uy, vy, norm_y = self.svd_[("y", *t)]
            coords, relative = 0.0, 0.0
            for s, weight in self.sources_[t]:
                ux, vx, norm_x = self.svd_[("x", *s)]
                k = min(ux.shape[1], uy.shape[1], vx.shape[1], vy.shape[1])
                c = (ux[:, :k].T @ adapter.B[s]) @ (adapter.A[s] @ vx[:, :k])  # k x k
                coords = coords + weight * c
                size_x = float(((adapter.B[s].T @ adapter.B[s]) * (adapter.A[s] @ adapter.A[s].T)).sum().clamp(min=0).sqrt())
                relative += weight * size_x / max(norm_x, 1e-30)
            b = uy[:, : coords.shape[0]] @ coords
            a = vy[:, : coords.shape[1]].T
            size = float((b.T @ b * (a @ a.T)).sum().clamp(min=0).sqrt())  # ‖b a‖_F from the factors
            factors[t] = (a, b * (relative * norm_y / size if size > 0 else 0.0))
        return Prediction(factors, self.y_.adapters[0], {"training_free": True})
