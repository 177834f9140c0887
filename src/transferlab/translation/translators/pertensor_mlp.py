"""`pertensor_mlp`: a small MLP per Y tensor, from X coordinates to Y coordinates.

With a few dozen anchors an MLP on raw updates (millions of inputs) would only memorise,
so each side is first reduced to its kernel-PCA coordinates over the anchors (at most
N-1 numbers per tensor, exact for the anchors). The MLP, z_Y = W₂ tanh(W₁ z_X + b₁) + b₂,
starts at zero output (the mean adapter), and weight decay pulls it back there; the
decay is chosen per tensor by leave-one-anchor-out. All tensors, folds and decays train
together as one batch of tiny networks.

The PCA bases are computed once on all fitted anchors; only the MLP fit leaves the
anchor out, so leave-one-out is slightly optimistic (it only chooses the decay).
"""

from __future__ import annotations

import torch

from transferlab.translation.features import AdapterStack, normalised_grams
from transferlab.translation.translators._kernel import center, center_query
from transferlab.translation.translators.base import Prediction, Translator
from transferlab.translation.translators.pertensor_ridge import matched_kernels


def _pca(Kc: torch.Tensor, rel_tol: float = 1e-9) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenvectors and eigenvalues (T, n, n), (T, n) of centred Grams; tiny ones zeroed."""
    vals, vecs = torch.linalg.eigh(Kc)
    keep = vals > rel_tol * vals.amax(-1, keepdim=True).clamp(min=1e-30)
    return vecs * keep[:, None, :], torch.where(keep, vals, torch.ones_like(vals))


class PerTensorMLPTranslator(Translator):
    name = "pertensor_mlp"
    min_anchors = 4

    def __init__(self, *, hidden: int = 16, steps: int = 300, learning_rate: float = 1e-2,
                 weight_decays: tuple[float, ...] = (1e-3, 1e-2, 1e-1, 1.0), seed: int = 0):
        self.hidden = hidden
        self.steps = steps
        self.learning_rate = learning_rate
        self.weight_decays = weight_decays
        self.seed = seed

    def _fit(self) -> None:
        n = len(self.x_)
        self.K_ = matched_kernels(self.x_, self.y_)  # T x n x n
        ys = normalised_grams(self.y_)
        G = center(torch.stack([ys[t] for t in self.y_.tensors]))
        self.vx_, self.lx_ = _pca(center(self.K_))
        self.vy_, self.ly_ = _pca(G)
        zx = self.vx_ * self.lx_.sqrt()[:, None, :]  # T x n x p: anchor coordinates
        zy = self.vy_ * self.ly_.sqrt()[:, None, :]
        self.sx_ = zx.pow(2).mean((1, 2)).sqrt().clamp(min=1e-30)[:, None, None]
        self.sy_ = zy.pow(2).mean((1, 2)).sqrt().clamp(min=1e-30)[:, None, None]
        zx, zy = (zx / self.sx_).float(), (zy / self.sy_).float()
        T, L = zx.shape[0], len(self.weight_decays)
        # batch = tensor x weight decay x fold; fold n trains on every anchor
        train = torch.ones(n + 1, n)
        train[torch.arange(n), torch.arange(n)] = 0
        decay = torch.tensor(self.weight_decays).repeat_interleave(n + 1).repeat(T)
        mask = train.repeat(T * L, 1)
        X = zx.repeat_interleave(L * (n + 1), 0)
        Y = zy.repeat_interleave(L * (n + 1), 0)
        params = self._train(X, Y, mask, decay)
        out = self._forward(params, X)  # batch x n x q
        held = (out - Y).pow(2).sum(-1)[:, :]  # batch x n
        held = held.view(T, L, n + 1, n)[:, :, torch.arange(n), torch.arange(n)].mean(-1)  # T x L
        best = held.argmin(-1)
        self.decay_ = torch.tensor(self.weight_decays)[best]
        chosen = torch.arange(T) * L * (n + 1) + best * (n + 1) + n  # the all-anchor fold
        self.params_ = [p[chosen] for p in params]
        spread = zy.pow(2).sum(-1).mean(-1)
        self.loo_error_ = held.gather(-1, best[:, None])[:, 0] / spread.clamp(min=1e-30)

    def _forward(self, params: list[torch.Tensor], X: torch.Tensor) -> torch.Tensor:
        w1, b1, w2, b2 = params
        return torch.tanh(X @ w1 + b1[:, None, :]) @ w2 + b2[:, None, :]

    def _train(self, X: torch.Tensor, Y: torch.Tensor, mask: torch.Tensor, decay: torch.Tensor) -> list[torch.Tensor]:
        generator = torch.Generator().manual_seed(self.seed)
        B, _, p = X.shape
        q = Y.shape[-1]
        w1 = (torch.randn(B, p, self.hidden, generator=generator) / p**0.5).requires_grad_()
        b1 = torch.zeros(B, self.hidden, requires_grad=True)
        w2 = torch.zeros(B, self.hidden, q, requires_grad=True)
        b2 = torch.zeros(B, q, requires_grad=True)
        params = [w1, b1, w2, b2]
        optimizer = torch.optim.Adam(params, lr=self.learning_rate)
        count = mask.sum(-1).clamp(min=1)
        with torch.enable_grad():
            for _ in range(self.steps):
                fit = ((self._forward(params, X) - Y).pow(2).sum(-1) * mask).sum(-1) / count
                penalty = decay * (w1.pow(2).sum((1, 2)) + w2.pow(2).sum((1, 2)))
                optimizer.zero_grad(set_to_none=True)
                (fit + penalty).sum().backward()
                optimizer.step()
        return [p.detach() for p in params]

    def _predict(self, query: AdapterStack) -> Prediction:
        n = len(self.x_)
        kc = center_query(self.K_, matched_kernels(self.x_, self.y_, query))[..., 0]  # T x n
        zq = (torch.einsum("tnp,tn->tp", self.vx_, kc) / self.lx_.sqrt())[:, None, :] / self.sx_
        zy = self._forward(self.params_, zq.float())[:, 0].double() * self.sy_[:, 0]  # T x q
        alpha = torch.einsum("tnq,tq->tn", self.vy_, zy / self.ly_.sqrt())
        w = alpha - alpha.mean(-1, keepdim=True) + 1.0 / n
        factors = {t: self.y_.combine(t, w[i]) for i, t in enumerate(self.y_.tensors)}
        return Prediction(factors, self.y_.adapters[0], {
            "weight_decay_median": float(self.decay_.median()), "loo_error": float(self.loo_error_.mean()),
            "weights": dict(zip(self.y_.names, w.mean(0).tolist()))})
