"""LDA: the class-mean difference whitened by the shared within-class covariance."""

from __future__ import annotations

import math

import torch

from transferlab.errors import TransferlabError
from transferlab.probes.algorithms.base import Probe


def _covariance(X: torch.Tensor, shrinkage: float | str | None) -> torch.Tensor:
    """Biased covariance of each (n, d) problem, shrunk like scikit-learn's `_cov`.

    'auto' is the Ledoit-Wolf shrinkage computed on standardised features and scaled
    back, a float is a fixed shrinkage towards the scaled identity, None is none.
    """
    n, d = X.shape[1], X.shape[2]
    Xc = X - X.mean(dim=1, keepdim=True)
    if shrinkage == "auto":
        scale = Xc.pow(2).mean(dim=1).sqrt()
        scale = torch.where(scale < 10 * torch.finfo(X.dtype).eps, torch.ones_like(scale), scale)
        Xs = Xc / scale[:, None, :]
        emp = Xs.transpose(1, 2) @ Xs / n
        trace = Xs.pow(2).sum(dim=1) / n  # (B, d)
        mu = trace.sum(dim=1) / d
        beta_ = Xs.pow(2).sum(dim=2).pow(2).sum(dim=1)  # sum of (X^2)^T X^2 over all entries
        delta_ = (emp * n).pow(2).sum(dim=(1, 2)) / n**2
        beta = (beta_ / n - delta_) / (d * n)
        delta = (delta_ - 2 * mu * trace.sum(dim=1) + d * mu**2) / d
        beta = torch.minimum(beta, delta)
        amount = torch.where(beta == 0, torch.zeros_like(beta), beta / delta)
        eye = torch.eye(d, dtype=X.dtype)
        shrunk = (1 - amount)[:, None, None] * emp + (amount * mu)[:, None, None] * eye
        return scale[:, :, None] * shrunk * scale[:, None, :]
    emp = Xc.transpose(1, 2) @ Xc / n
    if shrinkage is None:
        return emp
    mu = torch.diagonal(emp, dim1=1, dim2=2).sum(dim=1) / d
    eye = torch.eye(d, dtype=X.dtype)
    return (1 - shrinkage) * emp + shrinkage * mu[:, None, None] * eye


class LDA(Probe):
    """Linear discriminant analysis (the binary case of scikit-learn's `lsqr` solver).

    Parameters
    ----------
    shrinkage : 'auto', float in [0, 1] or None, default='auto'
        Covariance shrinkage. With hundreds of features and a few hundred rows the raw
        covariance is singular, so Ledoit-Wolf shrinkage is the default; None solves by
        least squares (minimum-norm), which overfits.
    """

    name = "lda"

    def __init__(self, *, shrinkage: float | str | None = "auto") -> None:
        self.shrinkage = shrinkage

    def _direction(self, X, y, codes, answer_types):
        if not (self.shrinkage in (None, "auto") or (isinstance(self.shrinkage, (int, float))
                                                     and 0 <= self.shrinkage <= 1)):
            raise TransferlabError(f"LDA shrinkage must be 'auto', a number in [0, 1] or None, got {self.shrinkage!r}")
        n = X.shape[1]
        means, covs, log_priors = [], [], []
        for label in (0, 1):
            rows = X[:, y == label]
            means.append(rows.mean(dim=1))
            covs.append(_covariance(rows, self.shrinkage) * (rows.shape[1] / n))
            log_priors.append(math.log(rows.shape[1] / n))
        sigma = covs[0] + covs[1]
        rhs = torch.stack(means, dim=2)  # (B, d, 2)
        if self.shrinkage is None:
            solved = torch.linalg.lstsq(sigma, rhs, driver="gelsd").solution
        else:
            solved = torch.linalg.solve(sigma, rhs)
        coef = solved[:, :, 1] - solved[:, :, 0]
        intercepts = [-0.5 * (means[k] * solved[:, :, k]).sum(dim=1) + log_priors[k] for k in (0, 1)]
        return coef, intercepts[1] - intercepts[0]
