"""What every probe shares: input checks, group centring, thresholds and the sign convention.

Every estimator accepts a stack of problems at once: X of shape (n, d) or (B, n, d), where
B is usually the layers of one model. All the linear algebra then runs batched over B,
which is what makes a full sweep fast; with B = 1 it is an ordinary estimator.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from transferlab.errors import TransferlabError

DTYPE = torch.float64  # fits and scores in double precision: accuracies must not depend on rounding


def as_tensor(X: Any) -> torch.Tensor:
    if isinstance(X, torch.Tensor):
        return X.to(DTYPE)
    return torch.as_tensor(np.asarray(X), dtype=DTYPE)


def check_X(X: Any, n_features: int | None = None) -> tuple[torch.Tensor, bool]:
    """X as a (B, n, d) double tensor, and whether the caller gave a single (n, d) problem."""
    t = as_tensor(X)
    if t.ndim not in (2, 3):
        raise TransferlabError(f"X must have shape (rows, features) or (layers, rows, features), got {tuple(t.shape)}")
    single = t.ndim == 2
    t = t.unsqueeze(0) if single else t
    if t.shape[1] == 0:
        raise TransferlabError("X has no rows")
    if not torch.isfinite(t.sum()):  # one pass: a NaN or an infinity makes the sum non-finite
        raise TransferlabError("X holds NaN or infinite activations: re-extract them (the forward pass overflowed?)")
    if n_features is not None and t.shape[-1] != n_features:
        raise TransferlabError(f"X has {t.shape[-1]} features but the probe was fitted on {n_features}")
    return t, single


def check_labels(y: Any, n: int) -> torch.Tensor:
    labels = np.asarray(y)
    if labels.shape != (n,):
        raise TransferlabError(f"y must have one label per row ({n}), got shape {labels.shape}")
    values = set(np.unique(labels).tolist())
    if not values <= {0, 1, True, False}:
        raise TransferlabError(f"y must be binary (1 = true, 0 = false), got values {sorted(values)[:5]}")
    if len(values) < 2:
        which = "true" if 1 in values else "false"
        raise TransferlabError(f"the data has one class only (every row is {which}): a probe needs true and false rows")
    return torch.as_tensor(labels.astype(np.int64))


def constant_problems(X: torch.Tensor) -> torch.Tensor:
    """(B,) True where every row of the (n, d) problem is the same row."""
    return (X.amax(dim=1) == X.amin(dim=1)).all(dim=1)


def check_not_constant(X: torch.Tensor) -> None:
    """Constant activations carry no direction: name the problem instead of returning NaN."""
    constant = torch.nonzero(constant_problems(X)).flatten().tolist()
    if constant:
        where = "" if X.shape[0] == 1 else f" in problem(s) {constant} of the batch (layers?)"
        raise TransferlabError(f"constant activations{where}: every row is identical, so no direction separates them")


def group_index(groups: Any, n: int) -> torch.Tensor:
    """Groups (any hashable ids) as integer codes 0..G-1."""
    values = np.asarray(groups)
    if values.shape != (n,):
        raise TransferlabError(f"groups must have one id per row ({n}), got shape {values.shape}")
    _, codes = np.unique(values, return_inverse=True)
    return torch.as_tensor(codes.reshape(-1).astype(np.int64))


def contrast_groups(y: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """Mask of the rows whose group holds both a true and a false row (the only usable ones)."""
    size = int(codes.max()) + 1
    positives = torch.zeros(size, dtype=torch.long).index_add_(0, codes, y)
    totals = torch.zeros(size, dtype=torch.long).index_add_(0, codes, torch.ones_like(y))
    usable = (positives > 0) & (positives < totals)
    return usable[codes]


def require_contrast_groups(y: torch.Tensor, groups: Any, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Row mask and group codes for a grouped algorithm; a clear error when no group has both labels."""
    if groups is None:
        raise TransferlabError(f"{name} needs groups (rows of one question or one contrast pair share a group id)")
    codes = group_index(groups, len(y))
    mask = contrast_groups(y, codes)
    if not bool(mask.any()):
        raise TransferlabError(f"{name} needs groups holding both a true and a false row, and no group does")
    return mask, codes


def group_center(X: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """Subtract each group's mean row (over the n axis of a (B, n, d) stack)."""
    B, n, d = X.shape
    size = int(codes.max()) + 1
    rows = X.transpose(0, 1).reshape(n, B * d)  # rows first: index_add_ over whole contiguous rows
    sums = torch.zeros(size, B * d, dtype=X.dtype).index_add_(0, codes, rows)
    counts = torch.bincount(codes, minlength=size).to(X.dtype)
    means = (sums / counts[:, None])[codes].reshape(n, B, d).transpose(0, 1)
    return X - means


def is_grouped(y: torch.Tensor, codes: torch.Tensor | None) -> bool:
    """True when every group has exactly one true row and at least one false one (question accuracy applies)."""
    if codes is None:
        return False
    size = int(codes.max()) + 1
    positives = torch.zeros(size, dtype=torch.long).index_add_(0, codes, y)
    totals = torch.zeros(size, dtype=torch.long).index_add_(0, codes, torch.ones_like(y))
    return bool(((positives == 1) & (totals >= 2)).all())


def question_accuracy(scores: torch.Tensor, y: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """Per problem: share of groups whose highest-scoring row is the true one. scores: (B, n)."""
    size = int(codes.max()) + 1
    best = torch.full((scores.shape[0], size), -torch.inf, dtype=scores.dtype)
    best = best.scatter_reduce(1, codes.expand_as(scores), scores, reduce="amax")
    true_score = torch.zeros_like(best).scatter_(1, codes[y == 1].expand(scores.shape[0], -1), scores[:, y == 1])
    # ties count as wrong: a probe that scores every row alike has not picked the answer
    wins = (true_score >= best) & (_count_at(scores, best, codes) == 1)
    return wins.to(scores.dtype).mean(dim=1)


def _count_at(scores: torch.Tensor, best: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    at_max = (scores == best[:, codes]).to(torch.long)
    return torch.zeros(best.shape, dtype=torch.long).scatter_add_(1, codes.expand_as(scores), at_max)


def best_threshold(scores: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per problem, the threshold t maximising row accuracy of `score > t`, and that accuracy.

    Thresholds are midpoints between consecutive sorted scores (or just outside the range),
    so the rule is the same one whichever implementation sorts the rows.
    """
    n = scores.shape[1]
    order = torch.argsort(scores, dim=1, stable=True)
    s = torch.gather(scores, 1, order)
    labels = y[order].to(scores.dtype)
    # rows at or below a cut are called false: correct = false rows below + true rows above
    false_below = torch.cumsum(1 - labels, dim=1)
    true_above = labels.sum(dim=1, keepdim=True) - torch.cumsum(labels, dim=1)
    correct = torch.cat([labels.sum(dim=1, keepdim=True), false_below + true_above], dim=1)  # cut before row 0, after row k
    # a cut between equal scores is not realisable: forbid it
    invalid = torch.zeros_like(correct, dtype=torch.bool)
    invalid[:, 1:n] = s[:, 1:] == s[:, :-1]
    correct = correct.masked_fill(invalid, -1.0)
    k = torch.argmax(correct, dim=1)
    low = torch.where(k == 0, s[:, 0] - 1, torch.gather(s, 1, (k - 1).clamp(min=0)[:, None])[:, 0])
    high = torch.where(k == n, s[:, -1] + 1, torch.gather(s, 1, k.clamp(max=n - 1)[:, None])[:, 0])
    return (low + high) / 2, torch.gather(correct, 1, k[:, None])[:, 0] / n


def row_accuracy(scores: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return ((scores > 0).to(torch.long) == y).to(scores.dtype).mean(dim=1)


def orient(X: torch.Tensor, y: torch.Tensor, codes: torch.Tensor | None, coef: torch.Tensor,
           intercept: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply the sign convention and set the threshold, both from the training data only.

    A direction is flipped when its negation scores better on the training rows (question
    accuracy when the training data is grouped, else row accuracy). Ties, common for an
    unsupervised direction (+w and -w often score alike), are broken deterministically,
    whichever solver produced the sign: first the direction whose true rows score higher
    on average, then (if that ties too) the one whose largest-magnitude component is
    positive. Algorithms without an intercept of their own get the threshold with the best
    training row accuracy.
    """
    scores = torch.einsum("bnd,bd->bn", X, coef)
    grouped = is_grouped(y, codes)
    threshold = None
    if intercept is None:
        t_pos, acc_pos = best_threshold(scores, y)
        t_neg, acc_neg = best_threshold(-scores, y)
    else:
        full = scores + intercept[:, None]
        acc_pos, acc_neg = row_accuracy(full, y), row_accuracy(-full, y)
    if grouped:
        assert codes is not None
        acc_pos, acc_neg = question_accuracy(scores, y, codes), question_accuracy(-scores, y, codes)
    flip = (acc_neg > acc_pos) | ((acc_neg == acc_pos) & _prefer_negative(scores, y, coef))
    sign = torch.where(flip, -1.0, 1.0).to(coef.dtype)
    if intercept is None:
        threshold = torch.where(flip, t_neg, t_pos)
        return coef * sign[:, None], -threshold
    return coef * sign[:, None], intercept * sign


def _prefer_negative(scores: torch.Tensor, y: torch.Tensor, coef: torch.Tensor) -> torch.Tensor:
    """Tie-break of the sign convention: True where -w is the canonical sign of the direction w."""
    gap = scores[:, y == 1].mean(dim=1) - scores[:, y == 0].mean(dim=1)
    largest = torch.gather(coef, 1, coef.abs().argmax(dim=1, keepdim=True))[:, 0]
    return (gap < 0) | ((gap == 0) & (largest < 0))


def top_component(X: torch.Tensor) -> torch.Tensor:
    """First principal direction of each (n, d) problem in a (B, n, d) stack (X already centred).

    Works on the smaller of the Gram (n x n) and covariance (d x d) matrices, and asks LAPACK
    (syevr) for the top eigenvector only: several times faster than a full batched eigh, one
    small call per problem.
    """
    from scipy.linalg import eigh

    n, d = X.shape[1], X.shape[2]
    gram = n < d
    A = (X @ X.transpose(1, 2) if gram else X.transpose(1, 2) @ X).numpy()
    m = A.shape[1]
    top = torch.stack([torch.as_tensor(eigh(a, subset_by_index=[m - 1, m - 1], driver="evr")[1][:, 0]) for a in A])
    direction = torch.einsum("bnd,bn->bd", X, top.to(X.dtype)) if gram else top.to(X.dtype)
    return direction / direction.norm(dim=1, keepdim=True).clamp_min(1e-300)
