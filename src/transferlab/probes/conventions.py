"""Which conventions a probe study follows: the default held-out protocol, or mishajw/repeng's.

`protocol: heldout` (the default) chooses everything a probe needs from its training data
alone: its sign and threshold come from the train split of the dataset it was fitted on,
LDA shrinks its covariance (Ledoit-Wolf) and LR is solved to convergence. A number on B is
then what the probe would score on B's rows unseen.

`protocol: repeng` reproduces the conventions of the original study's code
(mishajw/repeng, `repeng/evals/probes.py`, `repeng/evals/logits.py`, `repeng/probes/`), so
a user can compare with published numbers:
- the sign is chosen on the evaluation data: a probe is flipped when its negation scores
  better there (by AUROC on rows, by question accuracy on grouped data);
- the row threshold is chosen on the evaluation data too: the point of scikit-learn's
  `roc_curve` (intermediate points dropped) nearest to (FPR 0, TPR 1), rows predicted true
  when their score is strictly above it;
- LDA is scikit-learn's default `LinearDiscriminantAnalysis()`: the SVD solver, no shrinkage;
- LR and LR-G stop at scikit-learn's default tolerance (max |gradient| of its averaged
  objective <= 1e-4) instead of converging to rounding.
Both choices look at the evaluation labels, so the numbers lean optimistic, more so on small
splits: a direction that points the wrong way on B is scored as if it pointed the right way
(the nearest-ROC threshold does not maximise accuracy, so a row accuracy can still come out
below a held-out threshold's). What stays ours in both: question ties count as wrong
(repeng draws among the tied rows at random), and CIs resample the evaluation units with
the sign and threshold held at their chosen values.
"""

from __future__ import annotations

from typing import Any

import torch

from transferlab.errors import unknown_name

DEFAULT = "heldout"
PROTOCOLS = {
    "heldout": "sign and threshold chosen on the probe's own training rows; LDA with Ledoit-Wolf shrinkage; "
               "LR solved to convergence",
    "repeng": "mishajw/repeng's conventions: sign and threshold chosen on the evaluation data; LDA without "
              "shrinkage (scikit-learn's SVD solver); LR at scikit-learn's default tolerance (1e-4)",
}
_LR = {"tol": 1e-4, "stop": "gradient"}
# hyper-parameters a protocol sets before the user's own `params` (which win)
FIT_PARAMS: dict[str, dict[str, dict[str, Any]]] = {
    "heldout": {},
    "repeng": {"lda": {"shrinkage": None, "solver": "svd"}, "lr": _LR, "lr-g": _LR},
}


def check(name: str) -> str:
    """The protocol's name, or a one-line error naming the valid ones."""
    if name not in PROTOCOLS:
        raise unknown_name("probe protocol", name, PROTOCOLS)
    return name


def fit_params(name: str, algorithm: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """An algorithm's hyper-parameters under a protocol: its defaults, then the user's.

    The default protocol adds nothing, so its fit keys are those of runs made before
    protocols existed."""
    return {**FIT_PARAMS[check(name)].get(algorithm, {}), **(params or {})}


def key_part(name: str) -> list[str]:
    """What a protocol adds to a job key: nothing for the default (existing stores stay valid)."""
    return [] if check(name) == DEFAULT else [name]


# ---- repeng: sign and threshold chosen on the evaluation data ----------------------------------
def eval_sign_groups(pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
    """(K, groups) correctness with each probe's sign chosen on these groups (flipped when the
    negated scores answer more questions; a tie keeps the sign)."""
    flip = neg.to(torch.float64).mean(dim=1) > pos.to(torch.float64).mean(dim=1)
    return torch.where(flip[:, None], neg, pos)


def eval_threshold_rows(scores: torch.Tensor, y: torch.Tensor, auroc: torch.Tensor
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """Row correctness (K, m) and AUROC (K,) with sign and threshold chosen on these rows, as
    repeng's `eval_probe_by_row` does.

    The sign is flipped when the negated scores have the larger AUROC (AUROC < 0.5). The
    threshold is the ROC point nearest to (0, 1), the ROC being scikit-learn's `roc_curve`
    with `drop_intermediate=True`: distinct scores from the highest down, collinear points
    dropped, an extra point (0, 0) at threshold +inf first; the first nearest point wins. A
    row is predicted true when its score is strictly above that threshold.
    """
    flip = auroc < 0.5
    s = torch.where(flip[:, None], -scores, scores)
    threshold = _nearest_roc_threshold(s, y)
    correct = (s > threshold[:, None]).to(torch.long) == y
    return correct, torch.where(flip, 1 - auroc, auroc)


def _nearest_roc_threshold(s: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    K, m = s.shape
    n_pos, n_neg = int(y.sum()), int((1 - y).sum())
    if n_pos == 0 or n_neg == 0:  # no ROC: scikit-learn's distances are NaN and argmin picks (0, 0)
        return torch.full((K,), torch.inf, dtype=s.dtype)
    order = torch.argsort(s, dim=1, descending=True, stable=True)
    ss = torch.gather(s, 1, order)
    ys = y[order].to(s.dtype)
    tps, fps = torch.cumsum(ys, dim=1), torch.cumsum(1 - ys, dim=1)
    pos = torch.arange(m).expand(K, m)
    distinct = torch.ones(K, m, dtype=torch.bool)  # the last row of each run of equal scores
    distinct[:, :-1] = ss[:, 1:] != ss[:, :-1]
    before = torch.cummax(torch.where(distinct, pos, -1), dim=1).values
    prev = torch.cat([torch.full((K, 1), -1), before[:, :-1]], dim=1)  # previous distinct point, -1: none
    after = torch.flip(torch.cummin(torch.flip(torch.where(distinct, pos, m), [1]), dim=1).values, [1])
    nxt = torch.cat([after[:, 1:], torch.full((K, 1), m)], dim=1)  # next distinct point, m: none

    def at(counts: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        return torch.where(idx >= 0, torch.gather(counts, 1, idx.clamp(0, m - 1)), torch.zeros((), dtype=s.dtype))

    collinear = ((at(tps, nxt) - tps == tps - at(tps, prev)) & (at(fps, nxt) - fps == fps - at(fps, prev)))
    keep = distinct & ((prev < 0) | (pos == m - 1) | ~collinear)
    distance = torch.sqrt((1 - tps / n_pos) ** 2 + (fps / n_neg) ** 2)
    distance = torch.where(keep, distance, torch.full((), torch.inf, dtype=s.dtype))
    best = torch.argmin(distance, dim=1)  # the first minimum, like numpy's argmin
    nearer = torch.gather(distance, 1, best[:, None])[:, 0] < 1.0  # (0, 0), at distance 1, comes first
    return torch.where(nearer, torch.gather(ss, 1, best[:, None])[:, 0], torch.full((), torch.inf, dtype=s.dtype))
