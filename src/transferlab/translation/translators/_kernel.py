"""Kernel ridge with an unpenalised intercept, solved in the anchor span (N x N), and its
leave-one-anchor-out error, batched over tensors and regularisation strengths.

Every ridge from X features to Y features predicts an affine combination of the anchor
Y updates, Ŷ = Σᵢ wᵢ Yᵢ with Σᵢ wᵢ = 1, so only weights w are ever solved for: the cost
depends on the number of anchors, not on the size of the models. As λ grows the weights
tend to 1/N (the mean adapter), so a ridge chosen by leave-one-out never strays far from
the mean unless the anchors say it should.
"""

from __future__ import annotations

import torch

# Regularisation strengths, relative to the mean eigenvalue of the centred Gram.
DEFAULT_GRID = tuple(float(x) for x in torch.logspace(-3, 3, 13))


def center_query(K: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Cross-kernel (.., n, m) of m queries, centred on the anchors' mean feature."""
    return k - k.mean(-2, keepdim=True) - K.mean(-1, keepdim=True) + K.mean((-1, -2), keepdim=True)


def center(K: torch.Tensor) -> torch.Tensor:
    return center_query(K, K)


def ridge_weights(K: torch.Tensor, k: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    """Affine weights (.., n, m) over the anchors for queries with cross-kernel k (.., n, m).

    `lam` (..,) is relative: the penalty is lam · trace(Kc)/n.
    """
    n = K.shape[-1]
    Kc, kc = center(K), center_query(K, k)
    scale = (Kc.diagonal(dim1=-2, dim2=-1).sum(-1) / n).clamp(min=1e-12)
    eye = torch.eye(n, dtype=K.dtype)
    x = torch.linalg.solve(Kc + (lam * scale)[..., None, None] * eye, kc)
    return x - x.mean(-2, keepdim=True) + 1.0 / n


def loo_errors(K: torch.Tensor, G: torch.Tensor, grid: tuple[float, ...] = DEFAULT_GRID) -> torch.Tensor:
    """Mean leave-one-anchor-out error ‖Ŷ₋ᵢ − Yᵢ‖² (.., L) for each relative λ in `grid`.

    K (.., n, n) is the X Gram, G (.., n, n) the Y Gram; each fold refits on n−1 anchors
    (exactly, centring included), and the error is measured in Y's feature space, cᵀGc.
    """
    n = K.shape[-1]
    idx = torch.tensor([[j for j in range(n) if j != i] for i in range(n)])  # fold x (n-1)
    K_o = K[..., idx[:, :, None], idx[:, None, :]]  # .., fold, n-1, n-1
    k_o = K[..., idx, torch.arange(n)[:, None]][..., None]  # .., fold, n-1, 1
    lams = torch.tensor(grid, dtype=K.dtype)
    L = len(grid)
    K_o = K_o.unsqueeze(-4).expand(*K_o.shape[:-3], L, *K_o.shape[-3:])
    k_o = k_o.unsqueeze(-4).expand(*k_o.shape[:-3], L, *k_o.shape[-3:])
    lam = lams.view(L, 1).expand(L, n).expand(*K_o.shape[:-2])
    w = ridge_weights(K_o, k_o, lam)[..., 0]  # .., L, fold, n-1
    c = -torch.eye(n, dtype=K.dtype).expand(*w.shape[:-1], n).clone()
    c.scatter_add_(-1, idx.expand(*w.shape[:-1], n - 1), w)
    err = torch.einsum("...fa,...ab,...fb->...f", c, G.unsqueeze(-3), c)
    return err.mean(-1)


def choose_lambda(K: torch.Tensor, G: torch.Tensor, grid: tuple[float, ...] = DEFAULT_GRID) -> tuple[torch.Tensor, torch.Tensor]:
    """(relative λ with the smallest leave-one-out error, that error / mean ‖Yᵢ − Ȳ‖²), per batch item."""
    errors = loo_errors(K, G, grid)
    best = errors.argmin(-1)
    spread = center(G).diagonal(dim1=-2, dim2=-1).mean(-1).clamp(min=1e-30)
    return torch.tensor(grid, dtype=K.dtype)[best], errors.gather(-1, best[..., None])[..., 0] / spread
