"""What every probe shares: input checks, group centring, thresholds and the sign convention.

Every estimator accepts a stack of problems at once: X of shape (n, d) or (B, n, d), where
B is usually the layers of one model. All the linear algebra then runs batched over B,
which is what makes a full sweep fast; with B = 1 it is an ordinary estimator.
"""

from __future__ import annotations

import weakref
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
    # rows that are all equal have equal sums: one cheap pass rules out almost every problem,
    # and only the rest get the full comparison
    sums = X.sum(dim=2)
    suspect = torch.nonzero((sums == sums[:, :1]).all(dim=1)).flatten()
    constant = torch.zeros(X.shape[0], dtype=torch.bool)
    if len(suspect):
        low, high = torch.aminmax(X[suspect], dim=1)
        constant[suspect] = (low == high).all(dim=1)
    return constant


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
    return X - _group_means(X, codes, 1)[:, codes]


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


def top_component(X: torch.Tensor, codes: torch.Tensor | None = None) -> torch.Tensor:
    """First principal direction of each (n, d) problem in a (B, n, d) stack, after
    subtracting each group's mean row (`codes`; one group = ordinary centring).

    With fewer rows than features it works in row space: the centred Gram matrix is
    P K P (K = X X^T, P removing group means), computed from the shared `gram(X)` in
    O(n^2) without ever forming the centred rows, and the direction is X^T P u for its top
    eigenvector u. Otherwise it centres the rows and uses the d x d covariance. Either way
    LAPACK (syevr) is asked for the top eigenvector only: several times faster than a full
    batched eigh, one small call per problem.
    """
    from scipy.linalg import eigh

    n, d = X.shape[1], X.shape[2]
    codes = torch.zeros(n, dtype=torch.long) if codes is None else codes
    in_row_space = n < d
    A = (center_gram(gram(X), codes) if in_row_space else _covariance(group_center(X, codes))).numpy()
    m = A.shape[1]
    top = torch.stack([torch.as_tensor(eigh(a, subset_by_index=[m - 1, m - 1], driver="evr")[1][:, 0]) for a in A])
    top = top.to(X.dtype)
    direction = torch.einsum("bnd,bn->bd", X, remove_group_means(top, codes)) if in_row_space else top
    return direction / direction.norm(dim=1, keepdim=True).clamp_min(1e-300)


def _covariance(Xc: torch.Tensor) -> torch.Tensor:
    return Xc.transpose(1, 2) @ Xc


_last_gram: tuple[weakref.ref, int, torch.Tensor] | None = None


def gram(X: torch.Tensor) -> torch.Tensor:
    """X X^T of each problem (B, n, n), remembered for the last X seen.

    A sweep fits every algorithm on one dataset's rows in turn, and LR, LR-G, PCA and
    PCA-G all start from this product (the costliest step they share), so the second and
    later ones reuse it. The memo holds a weak reference and the tensor's version counter:
    another tensor, or this one modified in place, is computed afresh.
    """
    global _last_gram
    if _last_gram is not None:
        ref, version, K = _last_gram
        if ref() is X and X._version == version:
            return K
    K = X @ X.transpose(1, 2)
    _last_gram = (weakref.ref(X), X._version, K)
    return K


def _group_means(values: torch.Tensor, codes: torch.Tensor, dim: int) -> torch.Tensor:
    """Mean over each group along `dim` of a batched tensor (groups come out on that axis)."""
    size = int(codes.max()) + 1
    shape = list(values.shape)
    shape[dim] = size
    sums = torch.zeros(shape, dtype=values.dtype).index_add_(dim, codes, values)
    counts = torch.bincount(codes, minlength=size).to(values.dtype)
    view = [1] * values.ndim
    view[dim] = size
    return sums / counts.view(view)


def remove_group_means(v: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """P v for a (B, n) batch of row-space vectors: each group's mean subtracted."""
    return v - _group_means(v, codes, 1)[:, codes]


def center_gram(K: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """P K P: the Gram matrix of the group-centred rows, from the Gram matrix of the raw ones."""
    row_means = _group_means(K, codes, 1)  # (B, G, n): A K, one row per group
    both = _group_means(row_means, codes, 2)  # (B, G, G): A K A
    AK = row_means[:, codes]
    return K - AK - AK.transpose(1, 2) + both[:, codes][:, :, codes]
