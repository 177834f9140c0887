"""LR: L2-regularised logistic regression, solved by batched Newton steps for all layers at once."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from transferlab.errors import TransferlabError
from transferlab.probes.algorithms.base import Probe

_STEPS = 0.5 ** torch.arange(40, dtype=torch.float64)  # line search: step sizes 1, 1/2, 1/4, ...


def fit_logistic(X: torch.Tensor, y: torch.Tensor, C: float = 1.0, tol: float = 1e-12,
                 max_iter: int = 100) -> tuple[torch.Tensor, torch.Tensor]:
    """Minimise C * sum(log-loss) + ||w||^2 / 2 (intercept not penalised) for each (n, d) problem.

    The objective of scikit-learn's LogisticRegression(C=C). Newton's method, batched over
    the leading axis, with a line search along the step (evaluated for many step sizes at
    once: along a step only the scores move, so no matrix product is needed). Each step
    solves the smaller of two equivalent systems:

    - fewer rows than features (the usual case for a probe): the dual one. The optimum
      lies in the span of the rows, w = X^T a, so everything is written with the Gram
      matrix K = X X^T (n x n, computed once) and each step is one Cholesky of
      I + W^(1/2) K W^(1/2), which is well conditioned even when K is singular (LR-G's
      group-centred rows);
    - otherwise the primal one: the (d + 1) x (d + 1) Hessian of (w, b).

    Stops when the Newton decrement (the predicted decrease) falls below tol * max(1, |f|),
    after taking that last step, so the result is converged to rounding.
    """
    B, n, d = X.shape
    yf = y.to(X.dtype)
    ones = torch.ones(B, n, 1, dtype=X.dtype)
    dual = n < d
    if dual:
        K = X @ X.transpose(1, 2)
        params = torch.zeros(B, n, dtype=X.dtype)  # a, with w = X^T a
    else:
        Z = torch.cat([X, ones], dim=2)
        params = torch.zeros(B, d, dtype=X.dtype)  # w
        pen = torch.ones(d + 1, dtype=X.dtype)
        pen[-1] = 1e-12  # the intercept is not penalised (a whisker keeps the Hessian definite)
    b = torch.zeros(B, dtype=X.dtype)
    s = torch.zeros(B, n, dtype=X.dtype)  # scores X w + b
    half_norm = torch.zeros(B, dtype=X.dtype)  # ||w||^2 / 2
    steps = _STEPS.to(X.dtype)
    for _ in range(max_iter):
        p = torch.sigmoid(s)
        e = C * (p - yf)
        weights = (C * p * (1 - p)).clamp_min(1e-300)
        if dual:
            # Newton equations in (a, b), with v = K da + 1 db the change of the scores:
            #   (I + K W) v = K (e + a) + 1 db,   1^T W v = 1^T e,   da = e + a - W v.
            # (I + K W)^-1 x = x - K S M^-1 S x with S = W^(1/2), M = I + S K S (SPD, eigenvalues >= 1).
            r = e + params
            root = weights.sqrt()
            M = K * root[:, :, None] * root[:, None, :]
            M.diagonal(dim1=1, dim2=2).add_(1.0)
            chol, info = torch.linalg.cholesky_ex(M)
            if bool(info.any()):
                raise TransferlabError("logistic regression: the Newton system is not positive definite (NaN?)")
            rhs = torch.stack([(K @ r[:, :, None])[:, :, 0], torch.ones_like(r)], dim=2)  # (B, n, 2)
            inv = rhs - K @ (root[:, :, None] * torch.cholesky_solve(root[:, :, None] * rhs, chol))
            Wv = weights[:, :, None] * inv
            db = (e.sum(dim=1) - Wv[:, :, 0].sum(dim=1)) / Wv[:, :, 1].sum(dim=1)
            v = inv[:, :, 0] + inv[:, :, 1] * db[:, None]
            step = r - weights * v
            K_step = v - db[:, None]  # K da
            grad_dot_step = (r * K_step).sum(dim=1) + e.sum(dim=1) * db
            w_dot_step = (params * K_step).sum(dim=1)  # w . dw = a^T K da
            step_norm2 = (step * K_step).sum(dim=1)  # ||dw||^2
        else:
            grad = torch.einsum("bnr,bn->br", Z, e)
            grad[:, :d] += params
            hessian = (Z * weights[:, :, None]).transpose(1, 2) @ Z + torch.diag(pen)
            chol, info = torch.linalg.cholesky_ex(hessian)
            if bool(info.any()):
                raise TransferlabError("logistic regression: the Newton system is not positive definite (NaN?)")
            full = torch.cholesky_solve(grad[:, :, None], chol)[:, :, 0]
            step, db = full[:, :d], full[:, d]
            v = (Z @ full[:, :, None])[:, :, 0]
            grad_dot_step = (grad * full).sum(dim=1)
            w_dot_step = (params * step).sum(dim=1)
            step_norm2 = step.pow(2).sum(dim=1)
        # objective at params - t * step for every t at once: scores s - t v, penalty a quadratic in t
        value = C * (F.softplus(s) - yf * s).sum(dim=1) + half_norm
        trial_s = s[:, None, :] - steps[None, :, None] * v[:, None, :]
        trial_pen = half_norm[:, None] - steps * w_dot_step[:, None] + 0.5 * steps**2 * step_norm2[:, None]
        trial = C * (F.softplus(trial_s) - yf * trial_s).sum(dim=2) + trial_pen
        ok = trial <= value[:, None]
        t = torch.where(ok.any(dim=1), steps[ok.to(torch.int8).argmax(dim=1)], torch.zeros((), dtype=X.dtype))
        params = params - t[:, None] * step
        b = b - t * db
        s = s - t[:, None] * v
        half_norm = half_norm - t * w_dot_step + 0.5 * t**2 * step_norm2
        if float((grad_dot_step / 2 / value.abs().clamp_min(1.0)).amax()) <= tol:
            break
    w = torch.einsum("bnd,bn->bd", X, params) if dual else params
    return w, b


class LR(Probe):
    """Logistic regression with an L2 penalty and an (unpenalised) intercept.

    The same problem as scikit-learn's ``LogisticRegression(C=C)`` on the raw activations
    (no standardisation), solved to convergence by Newton's method.

    Parameters
    ----------
    C : float, default=1.0
        Inverse regularisation strength, as in scikit-learn.
    max_iter : int, default=100
        Newton iterations at most (they usually converge in under 20).
    tol : float, default=1e-12
        Stop when the Newton decrement is below tol times the objective.
    """

    name = "lr"

    def __init__(self, *, C: float = 1.0, max_iter: int = 100, tol: float = 1e-12) -> None:
        self.C = C
        self.max_iter = max_iter
        self.tol = tol

    def _direction(self, X, y, codes, answer_types):
        if not self.C > 0:
            raise TransferlabError(f"LR needs C > 0, got {self.C}")
        return fit_logistic(X, y, self.C, self.tol, self.max_iter)
