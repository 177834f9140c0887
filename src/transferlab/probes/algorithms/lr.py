"""LR: L2-regularised logistic regression, solved by batched Newton steps for all layers at once."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from transferlab.errors import TransferlabError
from transferlab.probes.algorithms._common import center_gram, gram, group_center, remove_group_means
from transferlab.probes.algorithms.base import Probe

_STEPS = 0.5 ** torch.arange(40, dtype=torch.float64)  # line search: step sizes 1, 1/2, 1/4, ...


def fit_logistic(X: torch.Tensor, y: torch.Tensor, C: float = 1.0, tol: float = 1e-12,
                 max_iter: int = 100, codes: torch.Tensor | None = None,
                 stop: str = "decrement") -> tuple[torch.Tensor, torch.Tensor]:
    """Minimise C * sum(log-loss) + ||w||^2 / 2 (intercept not penalised) for each (n, d) problem.

    With `codes`, the rows are group-centred first (LR-G), without forming them in the dual.

    The objective of scikit-learn's LogisticRegression(C=C). Newton's method, batched over
    the leading axis, with a line search along the step (evaluated for many step sizes at
    once: along a step only the scores move, so no matrix product is needed). Each step
    solves the smaller of two equivalent systems:

    - fewer rows than features (the usual case for a probe): the dual one. The optimum
      lies in the span of the rows, w = X^T a, so everything is written with the Gram
      matrix K = X X^T (n x n, shared with the other probes through `gram`; P K P and
      w = X^T P a for group-centred rows) and each step is one Cholesky of
      I + W^(1/2) K W^(1/2), which is well conditioned even when K is singular (LR-G's
      group-centred rows);
    - otherwise the primal one: the (d + 1) x (d + 1) Hessian of (w, b).

    A problem stops when its Newton decrement (the predicted decrease) falls below
    tol * max(1, |f|), after taking that last step, so it is converged to rounding. It then
    leaves the batch: layers converge after very different numbers of steps (early layers
    in 2 to 5, late ones in 12 or more), and the finished ones cost nothing after that.

    `stop="gradient"` uses scikit-learn's rule instead (its `tol`, default 1e-4): a problem
    stops, before stepping, once the largest |gradient| of scikit-learn's objective (ours
    divided by C * n: the mean log-loss plus ||w||^2 / (2 C n)) is at most tol.
    """
    B, n, d = X.shape
    dual = n < d
    if dual:
        data = gram(X) if codes is None else center_gram(gram(X), codes)  # K
    else:
        rows = X if codes is None else group_center(X, codes)
        data = torch.cat([rows, torch.ones(B, n, 1, dtype=X.dtype)], dim=2)  # Z = [X 1]
    state = _NewtonState.start(B, n, d, dual, X.dtype)
    yf = y.to(X.dtype)
    final_params = torch.zeros_like(state.params)
    final_b = torch.zeros(B, dtype=X.dtype)
    active = torch.arange(B)
    rows = None
    if stop == "gradient":  # the rows the gradient is taken on (centred for LR-G), as (B, n, d)
        rows = X if codes is None else group_center(X, codes)
    elif stop != "decrement":
        raise TransferlabError(f"LR stop must be 'decrement' or 'gradient', got {stop!r}")
    for iteration in range(max_iter):
        gradient_tol = None if rows is None else (rows, tol * C * n)
        converged = _newton_step(state, data, yf, C, dual, tol, gradient_tol)
        if bool(converged.all()) or iteration == max_iter - 1:
            final_params[active], final_b[active] = state.params, state.b
            break
        if bool(converged.any()):
            done, keep = active[converged], ~converged
            final_params[done], final_b[done] = state.params[converged], state.b[converged]
            active, data, state = active[keep], data[keep], state.subset(keep)
            rows = None if rows is None else rows[keep]
    if not dual:
        return final_params, final_b
    a = final_params if codes is None else remove_group_means(final_params, codes)
    w = torch.einsum("bnd,bn->bd", X, a)
    return w, final_b


@dataclass
class _NewtonState:
    """The iterate of each active problem: params (a in the dual, w in the primal), b, scores, ||w||^2 / 2."""

    params: torch.Tensor
    b: torch.Tensor
    scores: torch.Tensor
    half_norm: torch.Tensor

    @classmethod
    def start(cls, B: int, n: int, d: int, dual: bool, dtype: torch.dtype) -> _NewtonState:
        return cls(torch.zeros(B, n if dual else d, dtype=dtype), torch.zeros(B, dtype=dtype),
                   torch.zeros(B, n, dtype=dtype), torch.zeros(B, dtype=dtype))

    def subset(self, keep: torch.Tensor) -> _NewtonState:
        return _NewtonState(self.params[keep], self.b[keep], self.scores[keep], self.half_norm[keep])


def _newton_step(state: _NewtonState, data: torch.Tensor, yf: torch.Tensor, C: float, dual: bool,
                 tol: float, gradient_tol: tuple[torch.Tensor, float] | None = None) -> torch.Tensor:
    """One damped Newton step of every problem in `state` (updated in place); (B,) True where converged.

    With `gradient_tol` = (rows, bound), a problem whose largest |gradient| (of our objective)
    is already at most `bound` takes no step and is converged (scikit-learn's stopping rule)."""
    s, params = state.scores, state.params
    p = torch.sigmoid(s)
    e = C * (p - yf)
    weights = (C * p * (1 - p)).clamp_min(1e-300)
    if dual:
        K = data
        # Newton equations in (a, b), with v = K da + 1 db the change of the scores:
        #   (I + K W) v = K (e + a) + 1 db,   1^T W v = 1^T e,   da = e + a - W v.
        # (I + K W)^-1 x = x - K S M^-1 S x with S = W^(1/2), M = I + S K S (SPD, eigenvalues >= 1).
        r = e + params
        root = weights.sqrt()
        M = K * root[:, :, None]
        M.mul_(root[:, None, :]).diagonal(dim1=1, dim2=2).add_(1.0)
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
        Z = data
        d = Z.shape[2] - 1
        pen = torch.ones(d + 1, dtype=Z.dtype)
        pen[-1] = 1e-12  # the intercept is not penalised (a whisker keeps the Hessian definite)
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
    steps = _STEPS.to(s.dtype)
    value = C * (F.softplus(s) - yf * s).sum(dim=1) + state.half_norm
    trial_s = s[:, None, :] - steps[None, :, None] * v[:, None, :]
    trial_pen = state.half_norm[:, None] - steps * w_dot_step[:, None] + 0.5 * steps**2 * step_norm2[:, None]
    trial = C * (F.softplus(trial_s) - yf * trial_s).sum(dim=2) + trial_pen
    ok = trial <= value[:, None]
    t = torch.where(ok.any(dim=1), steps[ok.to(torch.int8).argmax(dim=1)], torch.zeros((), dtype=s.dtype))
    if gradient_tol is not None:
        at_tol = _max_abs_gradient(gradient_tol[0], state, e, dual) <= gradient_tol[1]
        t = torch.where(at_tol, torch.zeros((), dtype=s.dtype), t)
    state.params = params - t[:, None] * step
    state.b = state.b - t * db
    state.scores = s - t[:, None] * v
    state.half_norm = state.half_norm - t * w_dot_step + 0.5 * t**2 * step_norm2
    if gradient_tol is not None:
        return at_tol
    return grad_dot_step / 2 / value.abs().clamp_min(1.0) <= tol


def _max_abs_gradient(rows: torch.Tensor, state: _NewtonState, e: torch.Tensor, dual: bool) -> torch.Tensor:
    """(B,) max |gradient| of C * sum(log-loss) + ||w||^2 / 2 over (w, b), at the current iterate."""
    if dual:  # w = rows^T a, so the gradient in w is rows^T (e + a) (a centred already for LR-G)
        grad_w = torch.einsum("bnd,bn->bd", rows, e + state.params)
    else:
        grad_w = torch.einsum("bnd,bn->bd", rows, e) + state.params
    return torch.maximum(grad_w.abs().amax(dim=1), e.sum(dim=1).abs())


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
        Stop when the Newton decrement is below tol times the objective (or, with
        stop='gradient', the largest |gradient| of scikit-learn's objective is below tol).
    stop : {'decrement', 'gradient'}, default='decrement'
        'gradient' is scikit-learn's stopping rule; with tol=1e-4 it is its default
        tolerance, as the original probe study fitted LR (`protocol: repeng`).
    """

    name = "lr"

    def __init__(self, *, C: float = 1.0, max_iter: int = 100, tol: float = 1e-12, stop: str = "decrement") -> None:
        self.C = C
        self.max_iter = max_iter
        self.tol = tol
        self.stop = stop

    def _direction(self, X, y, codes, answer_types):
        if not self.C > 0:
            raise TransferlabError(f"LR needs C > 0, got {self.C}")
        return fit_logistic(X, y, self.C, self.tol, self.max_iter, stop=self.stop)
