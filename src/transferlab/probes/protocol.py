"""The generalisation protocol: train on A at layer L, score on every B, recover accuracy.

1. Every algorithm is fitted on the train split of every dataset A, all layers in one
   batched call (a layer whose activations are constant is a recorded skip).
2. Every probe (A, algorithm, layer) is scored on every dataset B as one matrix product
   over the stacked rows of all datasets, on B's hparams and validation splits.
3. Accuracy on B: question accuracy when B is grouped (the top-scoring row of each group
   must be the true one), else row accuracy of `score > 0`, the sign and threshold having
   been chosen on A's training rows. AUROC over rows too. Under `protocol: repeng` the
   sign (and, on rows, the threshold) is chosen on B's split itself instead, as the
   original study did (see `conventions`).
4. Recovered accuracy = clip(acc(A -> B) / acc(best probe for B), 0, 1), and its
   chance-corrected twin (acc - chance) / (best - chance), the best probe for
   B being the probe trained on B with the highest accuracy on B's hparams split (baselines
   such as the random direction are reference points, never the best probe); both
   accuracies are taken on B's validation split, with a paired bootstrap CI.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import torch

from transferlab.errors import TransferlabError
from transferlab.probes import conventions, threads
from transferlab.probes.algorithms import _common as C
from transferlab.probes.algorithms import BASELINES, make

EVAL_SPLITS = ("hparams", "validation")


@dataclass
class Data:
    """One dataset's activations (layers, rows, width) with its row labels, groups and splits."""

    name: str
    acts: np.ndarray
    labels: np.ndarray
    groups: np.ndarray
    answer_types: np.ndarray
    splits: np.ndarray
    _rows: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)

    @classmethod
    def of(cls, dataset: Any, acts: np.ndarray) -> Data:
        return cls(dataset.name, acts, dataset.labels, dataset.groups, dataset.answer_types, dataset.splits)

    def part(self, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        idx = np.nonzero(self.splits == split)[0]
        return self.acts[:, idx], self.labels[idx], self.groups[idx], self.answer_types[idx]

    def rows(self, split: str) -> torch.Tensor:
        """One split's activations as a double tensor, converted once (every scoring pass reuses it)."""
        if split not in self._rows:
            self._rows[split] = torch.as_tensor(np.asarray(self.part(split)[0]), dtype=C.DTYPE)
        return self._rows[split]

    @cached_property
    def train(self) -> tuple[torch.Tensor, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The train split for fitting, prepared once for every algorithm: (X as a double
        tensor, labels, groups, answer types, mask of the layers whose activations vary)."""
        _, y, groups, types = self.part("train")
        Xt = self.rows("train")
        return Xt, y, groups, types, (~C.constant_problems(Xt)).numpy()


@dataclass(frozen=True)
class Skip:
    trained_on: str
    algorithm: str
    layer: int | None  # None = every layer
    reason: str


@dataclass
class ProbeBank:
    """Fitted probes: directions (P, L, d) and biases (P, L); `valid` marks the layers that were fitted."""

    layers: list[int]
    trained_on: list[str] = field(default_factory=list)
    algorithm: list[str] = field(default_factory=list)
    coef: list[np.ndarray] = field(default_factory=list)
    intercept: list[np.ndarray] = field(default_factory=list)
    valid: list[np.ndarray] = field(default_factory=list)

    def add(self, trained_on: str, algorithm: str, coef: np.ndarray, intercept: np.ndarray, valid: np.ndarray) -> None:
        self.trained_on.append(trained_on)
        self.algorithm.append(algorithm)
        self.coef.append(np.asarray(coef, dtype=np.float64))
        self.intercept.append(np.asarray(intercept, dtype=np.float64))
        self.valid.append(np.asarray(valid, dtype=bool))

    def __len__(self) -> int:
        return len(self.trained_on)

    def stacked(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return (torch.as_tensor(np.stack(self.coef)), torch.as_tensor(np.stack(self.intercept)),
                torch.as_tensor(np.stack(self.valid)))


def fit_one(data: Data, algorithm: str, params: dict[str, Any] | None = None
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[Skip]]:
    """Fit one algorithm on A's train split at every layer at once.

    Returns (coef (L, d), intercept (L,), valid (L,), skips). Layers with constant
    activations are skipped (recorded); any other bad input raises TransferlabError.
    """
    if not (data.splits == "train").any():
        raise TransferlabError(f"{data.name} has no train rows")
    with threads.limited():  # torch and BLAS threads set together (see `threads`)
        Xt, y, groups, types, valid = data.train
        L, _, d = Xt.shape
        skips = [Skip(data.name, algorithm, i, "constant activations at this layer") for i in np.nonzero(~valid)[0]]
        coef = np.zeros((L, d))
        intercept = np.zeros(L)
        if valid.any():
            rows = Xt if valid.all() else Xt[torch.as_tensor(valid)]
            probe = make(algorithm, **(params or {})).fit(rows, y, groups=groups, answer_types=types)
            coef[valid], intercept[valid] = probe.coef_, probe.intercept_
    return coef, intercept, valid, skips


def fit_or_skip(data: Data, algorithm: str, params: dict[str, Any] | None, n_layers: int
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[Skip]]:
    """`fit_one`, with a fit that cannot be made (bad input for this algorithm) turned into an
    all-invalid probe and a recorded skip saying why, so the study goes on without it."""
    try:
        return fit_one(data, algorithm, params)
    except TransferlabError as err:
        return (np.zeros((n_layers, data.acts.shape[2])), np.zeros(n_layers), np.zeros(n_layers, dtype=bool),
                [Skip(data.name, algorithm, None, str(err))])


def fit_bank(datasets: Sequence[Data], algorithms: dict[str, dict[str, Any]], layers: list[int],
             on_skip: Callable[[Skip], None] | None = None,
             fitted: Callable[[str, str], tuple[np.ndarray, np.ndarray, np.ndarray] | None] | None = None,
             on_fit: Callable[[str, str, np.ndarray, np.ndarray, np.ndarray, list[Skip]], None] | None = None
             ) -> ProbeBank:
    """Every algorithm on every dataset; `fitted` may return a cached fit, `on_fit` saves a new one."""
    bank = ProbeBank(layers)
    with threads.limited():  # one setting for the whole sweep (each fit_one would set it too)
        for data in datasets:
            for algorithm, params in algorithms.items():
                cached = fitted(data.name, algorithm) if fitted else None
                if cached is not None:
                    coef, intercept, valid = cached
                else:
                    coef, intercept, valid, skips = fit_or_skip(data, algorithm, params, len(layers))
                    for s in skips:
                        if on_skip:
                            on_skip(s)
                    if on_fit:
                        on_fit(data.name, algorithm, coef, intercept, valid, skips)
                if valid.any():
                    bank.add(data.name, algorithm, coef, intercept, valid)
    return bank


# ---- scoring -----------------------------------------------------------------------------------
@dataclass
class Scores:
    """Per-unit correctness of every probe on one dataset split: (P, L, units), plus AUROC (P, L)."""

    dataset: str
    split: str
    grouped: bool
    correct: torch.Tensor
    auroc: torch.Tensor
    chance: float = 0.5  # accuracy of guessing: 1 / group size (grouped), the majority share (rows)

    @property
    def accuracy(self) -> torch.Tensor:
        return self.correct.mean(dim=2)


def _auroc(scores: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Row AUROC of each probe: (K, m) scores -> (K,), average ranks for ties."""
    n_pos, n_neg = int(y.sum()), int((1 - y).sum())
    if n_pos == 0 or n_neg == 0:
        return torch.full((scores.shape[0],), float("nan"), dtype=scores.dtype)
    order = torch.argsort(scores, dim=1)
    ranks = torch.empty_like(scores)
    ranks.scatter_(1, order, torch.arange(1, scores.shape[1] + 1, dtype=scores.dtype).expand_as(scores).contiguous())
    sorted_scores = torch.gather(scores, 1, order)
    if bool((sorted_scores[:, 1:] == sorted_scores[:, :-1]).any()):  # rare: average the ranks of ties
        ranks = torch.as_tensor(np.apply_along_axis(_average_ranks, 1, scores.numpy()))
    return (ranks[:, y == 1].sum(dim=1) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def _average_ranks(values: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    return rankdata(values)


def group_correct(scores: torch.Tensor, y: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """(K, m) scores -> (K, groups) whether each group's top-scoring row is its true one (ties = wrong)."""
    size = int(codes.max()) + 1
    best = torch.full((scores.shape[0], size), -torch.inf, dtype=scores.dtype).scatter_reduce(
        1, codes.expand_as(scores), scores, reduce="amax")
    true_score = torch.zeros_like(best).scatter_(1, codes[y == 1].expand(scores.shape[0], -1), scores[:, y == 1])
    at_max = (scores == best[:, codes]).to(torch.long)
    ties = torch.zeros(best.shape, dtype=torch.long).scatter_add_(1, codes.expand_as(scores), at_max)
    return (true_score >= best) & (ties == 1)


def score_bank(bank: ProbeBank, datasets: Sequence[Data], split: str,
               protocol: str = conventions.DEFAULT) -> list[Scores]:
    """Score every probe on every dataset's split: one batched matrix product per dataset."""
    W, b, valid = bank.stacked()
    out: list[Scores] = []
    with threads.limited():
        for data in datasets:
            rows = data.splits == split
            scores = torch.einsum("pld,lmd->plm", W, data.rows(split)) + b[:, :, None]
            out.append(_metrics(data.name, split, scores, data.labels[rows], data.groups[rows], valid, protocol))
    return out


def _metrics(name: str, split: str, s: torch.Tensor, y_np: np.ndarray, groups: np.ndarray,
             valid: torch.Tensor, protocol: str = conventions.DEFAULT) -> Scores:
    P, L, m = s.shape
    if m == 0:
        raise TransferlabError(f"{name} has no {split} rows: raise --limit or check the dataset")
    y = torch.as_tensor(y_np)
    flat = s.reshape(P * L, m)
    codes = C.group_index(groups, m)
    grouped = C.is_grouped(y, codes)
    auroc = _auroc(flat, y)
    if conventions.check(protocol) == "repeng":  # sign (and threshold) chosen on this very split
        if grouped:
            correct = conventions.eval_sign_groups(group_correct(flat, y, codes), group_correct(-flat, y, codes))
            auroc = torch.maximum(auroc, 1 - auroc)
        else:
            correct, auroc = conventions.eval_threshold_rows(flat, y, auroc)
    else:
        correct = group_correct(flat, y, codes) if grouped else ((flat > 0).to(torch.long) == y)
    correct = correct.to(torch.float32).reshape(P, L, -1)
    auroc = auroc.reshape(P, L)
    correct = torch.where(valid[:, :, None], correct, torch.nan)
    auroc = torch.where(valid, auroc, torch.nan)
    if grouped:
        sizes = torch.bincount(codes).to(torch.float64)
        chance = float((1 / sizes[sizes > 0]).mean())
    else:
        share = float(y.to(torch.float64).mean())
        chance = max(share, 1 - share)
    return Scores(name, split, grouped, correct, auroc, chance)


# ---- bootstrap and recovered accuracy -----------------------------------------------------------
def bootstrap_counts(units: int, resamples: int, seed: int) -> torch.Tensor:
    """(units, resamples) how often each unit is drawn in each resample."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, units, size=(resamples, units))
    counts = np.stack([np.bincount(row, minlength=units) for row in draws], axis=1)
    return torch.as_tensor(counts.astype(np.float32))


@dataclass
class Evaluation:
    """Everything the results table needs for one evaluated dataset B."""

    dataset: str
    grouped: bool
    units: int
    hparams_acc: torch.Tensor  # (P, L)
    acc: torch.Tensor  # (P, L) validation
    acc_ci: tuple[torch.Tensor, torch.Tensor]
    auroc: torch.Tensor
    recovered: torch.Tensor | None  # (P, L), None when B has no usable best probe
    recovered_ci: tuple[torch.Tensor, torch.Tensor] | None
    best: tuple[int, int] | None  # (probe index, layer index) of the best probe for B
    chance: float = 0.5
    note: str = ""
    # chance-corrected recovered accuracy, (acc - chance) / (best - chance): 0 = chance, < 0 = below it
    # (a flipped sign); not clipped, so a systematic flip shows instead of being floored away
    corrected: torch.Tensor | None = None
    corrected_ci: tuple[torch.Tensor, torch.Tensor] | None = None


def evaluate(bank: ProbeBank, datasets: Sequence[Data], resamples: int = 1000, seed: int = 0,
             level: float = 0.95, protocol: str = conventions.DEFAULT) -> list[Evaluation]:
    """Accuracy, AUROC and recovered accuracy (with bootstrap CIs) of every probe on every dataset."""
    with threads.limited():
        return _evaluate(bank, datasets, resamples, seed, level, protocol)


def _evaluate(bank: ProbeBank, datasets: Sequence[Data], resamples: int, seed: int, level: float,
              protocol: str) -> list[Evaluation]:
    hparams = {s.dataset: s for s in score_bank(bank, datasets, "hparams", protocol)}
    validation = score_bank(bank, datasets, "validation", protocol)
    tail = (1 - level) / 2
    out = []
    for v in validation:
        h = hparams[v.dataset]
        P, L, U = v.correct.shape
        counts = bootstrap_counts(U, resamples, seed)
        flat = torch.nan_to_num(v.correct.reshape(P * L, U))
        means = (flat @ counts / U).reshape(P, L, resamples)
        acc = v.accuracy
        acc_ci = (_quantile(means, tail), _quantile(means, 1 - tail))
        own = [i for i, a in enumerate(bank.trained_on) if a == v.dataset and bank.algorithm[i] not in BASELINES]
        recovered = recovered_ci = best = corrected = corrected_ci = None
        note = ""
        if not own:
            note = (f"no probe other than a baseline ({', '.join(BASELINES)}) was trained on {v.dataset}, so its "
                    "best accuracy (the denominator) is unknown")
        else:
            h_acc = torch.nan_to_num(h.accuracy[own], nan=-1.0)
            flat_index = int(torch.argmax(h_acc.reshape(-1)))  # first maximum: deterministic
            best = (own[flat_index // L], flat_index % L)
            top = acc[best]
            low = acc_ci[0][best]
            if not low > v.chance:
                # the denominator is noise: a ratio over it would be a number about nothing
                note = (f"the best probe for {v.dataset} is not above chance ({float(top):.3f}, CI low "
                        f"{float(low):.3f} vs chance {v.chance:.3f}): recovered accuracy on it is undefined")
            else:
                recovered = (acc / top).clamp(0, 1)
                ratio = (means / means[best][None, None, :].clamp_min(1e-12)).clamp(0, 1)
                recovered_ci = (_quantile(ratio, tail), _quantile(ratio, 1 - tail))
                corrected = (acc - v.chance) / (top - v.chance)
                above = (means[best][None, None, :] - v.chance).clamp_min(1e-12)
                ratio = (means - v.chance) / above
                corrected_ci = (_quantile(ratio, tail), _quantile(ratio, 1 - tail))
        out.append(Evaluation(v.dataset, v.grouped, U, h.accuracy, acc, acc_ci, v.auroc, recovered, recovered_ci,
                              best, v.chance, note, corrected, corrected_ci))
    return out


def _quantile(values: torch.Tensor, q: float) -> torch.Tensor:
    # numpy: torch.quantile refuses inputs above 2**24 elements
    return torch.as_tensor(np.quantile(values.numpy(), q, axis=-1))
