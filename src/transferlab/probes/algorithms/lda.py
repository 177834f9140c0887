"""LDA: the class-mean difference whitened by the shared within-class covariance."""

from __future__ import annotations

import math

import torch

from transferlab.errors import TransferlabError
from transferlab.probes.algorithms.base import Probe


def _low_rank_covariance(X: torch.Tensor, shrinkage: float | str | None) -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's shrunk covariance of each (n, d) problem as diag + V V^T, V of shape (d, n).

    'auto' is the Ledoit-Wolf shrinkage computed on standardised features and scaled back,
    a float is a fixed shrinkage towards the scaled identity, None is none. Everything is
    computed from the n x n Gram matrix, never from a d x d one.
    """
    n, d = X.shape[1], X.shape[2]
    Xc = X - X.mean(dim=1, keepdim=True)
    if shrinkage == "auto":
        variance = X.var(dim=1, correction=0)  # (B, d)
        scale = variance.sqrt()
        scale = torch.where(scale < 10 * torch.finfo(X.dtype).eps, torch.ones_like(scale), scale)
        Xs = Xc / scale[:, None, :]
        gram = Xs @ Xs.transpose(1, 2)  # ||Xs^T Xs||_F = ||Xs Xs^T||_F
        trace = variance / scale**2  # (B, d): the diagonal of the empirical covariance of Xs
        mu = trace.sum(dim=1) / d
        row_norms = gram.diagonal(dim1=1, dim2=2)  # ||Xs row||^2
        beta_ = row_norms.pow(2).sum(dim=1)  # sum of (X^2)^T X^2 over all entries
        delta_ = gram.pow(2).sum(dim=(1, 2)) / n**2
        beta = (beta_ / n - delta_) / (d * n)
        delta = (delta_ - 2 * mu * trace.sum(dim=1) + d * mu**2) / d
        beta = torch.minimum(beta, delta)
        amount = torch.where(beta == 0, torch.zeros_like(beta), beta / delta)
        # scale (1 - a) Xs^T Xs / n + a mu I) scale = a mu scale^2 + Xc^T Xc (1 - a) / n
        return (amount * mu)[:, None] * scale**2, Xc.transpose(1, 2) * ((1 - amount) / n).sqrt()[:, None, None]
    if shrinkage is None:
        return torch.zeros(X.shape[0], d, dtype=X.dtype), Xc.transpose(1, 2) / n**0.5
    mu = Xc.pow(2).sum(dim=(1, 2)) / (n * d)
    return (shrinkage * mu)[:, None].expand(-1, d), Xc.transpose(1, 2) * ((1 - shrinkage) / n) ** 0.5


def _solve_low_rank(diag: torch.Tensor, V: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    """(diag(D) + V V^T)^-1 rhs: by the Woodbury identity (one r x r Cholesky) when V has
    fewer columns r than rows d, else directly (one d x d Cholesky)."""
    if V.shape[2] >= V.shape[1]:
        sigma = V @ V.transpose(1, 2)
        sigma.diagonal(dim1=1, dim2=2).add_(diag)
        return torch.cholesky_solve(rhs, torch.linalg.cholesky(sigma))
    Dinv_V = V / diag[:, :, None]
    inner = V.transpose(1, 2) @ Dinv_V
    inner.diagonal(dim1=1, dim2=2).add_(1.0)
    Dinv_rhs = rhs / diag[:, :, None]
    return Dinv_rhs - Dinv_V @ torch.cholesky_solve(V.transpose(1, 2) @ Dinv_rhs, torch.linalg.cholesky(inner))


def _svd_direction(X: torch.Tensor, y: torch.Tensor, tol: float,
                   row_space: bool | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's SVD solver, binary case, batched: the class-centred rows scaled by their
    per-feature standard deviation, whitened through their SVD (singular values <= tol
    dropped, so a singular covariance is pseudo-inverted in the standardised space).

    With fewer rows than features (`row_space`, the default then) the SVD A = U S Vh of the
    scaled rows A (n x d) comes from the eigenvectors U and eigenvalues S^2 of the n x n
    Gram matrix A A^T, and every product is taken through A, never forming Vh: several times
    faster than the SVD of A, equal to it to rounding (the dropped values are the same, being
    far below or above tol; see tests/probes/test_batched_paths.py)."""
    n, d = X.shape[1], X.shape[2]
    rows = [X[:, y == label] for label in (0, 1)]
    means = [r.mean(dim=1) for r in rows]
    priors = [r.shape[1] / n for r in rows]
    Xc = torch.cat([r - mu[:, None, :] for r, mu in zip(rows, means)], dim=1)
    std = Xc.std(dim=1, correction=0)
    std = torch.where(std == 0, torch.ones_like(std), std)
    A = Xc / std[:, None, :] / n**0.5
    xbar = priors[0] * means[0] + priors[1] * means[1]
    if (n < d) if row_space is None else row_space:
        # scalings = Vh^T diag(1/S) / std = A^T U diag(1/S^2) / std, over the kept values only
        eigenvalues, U = torch.linalg.eigh(A @ A.transpose(1, 2))
        inverse = torch.where(eigenvalues.clamp_min(0).sqrt() > tol, 1 / eigenvalues, torch.zeros_like(eigenvalues))

        def project(v: torch.Tensor) -> torch.Tensor:  # v @ scalings: (B, d) -> (B, n)
            return torch.einsum("bnr,bn->br", U, torch.einsum("bnd,bd->bn", A, v / std)) * inverse

        centres = [project(mu - xbar) for mu in means]
        coef = torch.einsum("bnd,bn->bd", A, torch.einsum("bnr,br->bn", U, (centres[1] - centres[0]) * inverse)) / std
    else:
        _, S, Vh = torch.linalg.svd(A, full_matrices=False)
        scalings = Vh.transpose(1, 2) / std[:, :, None] * torch.where(S > tol, 1 / S, torch.zeros_like(S))[:, None, :]
        # two class centres span one direction, so the between-class step leaves them as they are
        centres = [torch.einsum("bd,bdr->br", mu - xbar, scalings) for mu in means]
        coef = torch.einsum("br,bdr->bd", centres[1] - centres[0], scalings)
    intercept = (-0.5 * (centres[1].pow(2).sum(dim=1) - centres[0].pow(2).sum(dim=1))
                 + math.log(priors[1] / priors[0]) - (xbar * coef).sum(dim=1))
    return coef, intercept


class LDA(Probe):
    """Linear discriminant analysis (the binary case of scikit-learn's `lsqr` or `svd` solver).

    Parameters
    ----------
    shrinkage : 'auto', float in [0, 1] or None, default='auto'
        Covariance shrinkage. With hundreds of features and a few hundred rows the raw
        covariance is singular, so Ledoit-Wolf shrinkage is the default; None solves by
        least squares (minimum-norm), which overfits.
    solver : {'lsqr', 'svd'}, default='lsqr'
        'svd' is scikit-learn's default solver (what `LinearDiscriminantAnalysis()` fits, as
        in the original probe study): no shrinkage, the pseudo-inverse taken on standardised
        features, so it differs from 'lsqr' with shrinkage=None when the covariance is singular.
    tol : float, default=1e-4
        'svd' only: singular values at or below it are dropped (scikit-learn's `tol`).
    """

    name = "lda"

    def __init__(self, *, shrinkage: float | str | None = "auto", solver: str = "lsqr", tol: float = 1e-4) -> None:
        self.shrinkage = shrinkage
        self.solver = solver
        self.tol = tol

    def _direction(self, X, y, codes, answer_types):
        if self.solver not in ("lsqr", "svd"):
            raise TransferlabError(f"LDA solver must be 'lsqr' or 'svd', got {self.solver!r}")
        if self.solver == "svd":
            if self.shrinkage is not None:
                raise TransferlabError("LDA's svd solver does not shrink: use shrinkage: null, or solver: lsqr")
            return _svd_direction(X, y, self.tol)
        if not (self.shrinkage in (None, "auto") or (isinstance(self.shrinkage, (int, float))
                                                     and 0 <= self.shrinkage <= 1)):
            raise TransferlabError(f"LDA shrinkage must be 'auto', a number in [0, 1] or None, got {self.shrinkage!r}")
        n = X.shape[1]
        means, diags, factors, log_priors = [], [], [], []
        for label in (0, 1):
            rows = X[:, y == label]
            prior = rows.shape[1] / n
            diag, V = _low_rank_covariance(rows, self.shrinkage)
            means.append(rows.mean(dim=1))
            diags.append(diag * prior)
            factors.append(V * prior**0.5)
            log_priors.append(math.log(prior))
        rhs = torch.stack(means, dim=2)  # (B, d, 2)
        diag = diags[0] + diags[1]
        if bool((diag > 0).all()):
            # the pooled covariance is diagonal + low rank (n columns): solve it in n x n
            solved = _solve_low_rank(diag, torch.cat(factors, dim=2), rhs)
        else:  # no shrinkage: singular, solved by least squares (minimum norm) like scikit-learn
            sigma = torch.diag_embed(diag) + sum(V @ V.transpose(1, 2) for V in factors)
            solved = torch.linalg.lstsq(sigma, rhs, driver="gelsd").solution
        coef = solved[:, :, 1] - solved[:, :, 0]
        intercepts = [-0.5 * (means[k] * solved[:, :, k]).sum(dim=1) + log_priors[k] for k in (0, 1)]
        return coef, intercepts[1] - intercepts[0]
