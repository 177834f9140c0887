"""LR: L2-regularised logistic regression, solved by batched Newton steps for all layers at once."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from transferlab.errors import TransferlabError
from transferlab.probes.algorithms.base import Probe


def _objective(Z: torch.Tensor, y: torch.Tensor, theta: torch.Tensor, C: float) -> torch.Tensor:
    s = torch.einsum("bnr,br->bn", Z, theta)
    loss = (F.softplus(s) - y * s).sum(dim=1)
    return C * loss + 0.5 * theta[:, :-1].pow(2).sum(dim=1)


def fit_logistic(X: torch.Tensor, y: torch.Tensor, C: float = 1.0, tol: float = 1e-10,
                 max_iter: int = 100) -> tuple[torch.Tensor, torch.Tensor]:
    """Minimise C * sum(log-loss) + ||w||^2 / 2 (intercept not penalised) for each (n, d) problem.

    The same objective as scikit-learn's LogisticRegression(C=C). When there are fewer
    rows than features the optimum lies in the span of the rows (the penalty kills any
    other component), so the problem is solved in that n-dimensional basis and mapped
    back: exact, and far cheaper. Newton steps with a batched backtracking line search.
    """
    B, n, d = X.shape
    basis = None
    if n < d:
        basis, _ = torch.linalg.qr(X.transpose(1, 2))  # (B, d, n), orthonormal columns
        X = X @ basis  # (B, n, n) coordinates of the rows in their own span
    Z = torch.cat([X, torch.ones(B, X.shape[1], 1, dtype=X.dtype)], dim=2)
    r = Z.shape[2]
    yf = y.to(X.dtype)
    penalty = torch.ones(r, dtype=X.dtype)
    penalty[-1] = 0.0
    theta = torch.zeros(B, r, dtype=X.dtype)
    value = _objective(Z, yf, theta, C)
    steps = 0.5 ** torch.arange(30, dtype=X.dtype)
    for _ in range(max_iter):
        p = torch.sigmoid(torch.einsum("bnr,br->bn", Z, theta))
        grad = C * torch.einsum("bnr,bn->br", Z, p - yf) + penalty * theta
        if float(grad.abs().amax()) <= tol * max(1.0, float(value.abs().amax())):
            break
        weights = C * p * (1 - p)
        hessian = torch.einsum("bnr,bn,bns->brs", Z, weights, Z) + torch.diag(penalty + 1e-12)
        direction = torch.linalg.solve(hessian, grad)
        # batched backtracking: the largest step of 1, 1/2, 1/4, ... that does not increase the objective
        trial = theta[:, None, :] - steps[None, :, None] * direction[:, None, :]
        trial_values = torch.stack([_objective(Z, yf, trial[:, k], C) for k in range(len(steps))], dim=1)
        ok = trial_values <= value[:, None]
        first = torch.where(ok.any(dim=1), ok.to(torch.int8).argmax(dim=1), torch.full((B,), -1))
        moved = first >= 0
        if not bool(moved.any()):
            break
        pick = first.clamp(min=0)
        new_theta = trial[torch.arange(B), pick]
        new_value = trial_values[torch.arange(B), pick]
        theta = torch.where(moved[:, None], new_theta, theta)
        change = (value - torch.where(moved, new_value, value)).abs()
        value = torch.where(moved, new_value, value)
        if float(change.amax()) <= tol * max(1.0, float(value.abs().amax())) * 1e-3:
            break
    w, b = theta[:, :-1], theta[:, -1]
    if basis is not None:
        w = torch.einsum("bdn,bn->bd", basis, w)
    return w, b


class LR(Probe):
    """Logistic regression with an L2 penalty and an (unpenalised) intercept.

    Parameters
    ----------
    C : float, default=1.0
        Inverse regularisation strength, as in scikit-learn.
    max_iter : int, default=100
        Newton iterations at most (they usually converge in under 15).
    tol : float, default=1e-10
        Stop when the largest gradient entry is below tol times the objective.
    """

    name = "lr"

    def __init__(self, *, C: float = 1.0, max_iter: int = 100, tol: float = 1e-10) -> None:
        self.C = C
        self.max_iter = max_iter
        self.tol = tol

    def _direction(self, X, y, codes, answer_types):
        if not self.C > 0:
            raise TransferlabError(f"LR needs C > 0, got {self.C}")
        return fit_logistic(X, y, self.C, self.tol, self.max_iter)
