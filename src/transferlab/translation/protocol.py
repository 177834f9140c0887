"""Leave one task out: translate the held-out task's X adapter with a map fitted on the
other anchors, evaluate it with model Y, and score it against base_Y and the oracle.

    gap_recovered = (method − base_Y) / (oracle − base_Y)

is NA, with the reason, when the oracle's gain over base_Y is negative, below the minimum
effect or within noise (its paired bootstrap CI includes zero), and unstable when it is
barely above the minimum effect: the rules of `gaps`, the same for an imported table.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

from transferlab.stats import (
    Estimate,
    bootstrap_mean,
    paired_difference,
    paired_ratio,
)
from transferlab.errors import TransferlabError
from transferlab.translation.features import AdapterStack, LoraAdapter
from transferlab.translation.gaps import MIN_EFFECT, gap_verdict
from transferlab.translation.translators import Prediction, make

NA = float("nan")


def others(tasks: Sequence[str], held_out: str) -> list[str]:
    """The anchors a held-out task's translator may see: every task but itself."""
    return [t for t in tasks if t != held_out]


@contextmanager
def small_algebra() -> Iterator[None]:
    """Translators do many N x N operations: one thread avoids the overhead (and fighting
    other processes for cores) that dominates such small work."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def translate(method: str, params: dict[str, Any], anchors_X: Sequence[LoraAdapter], anchors_Y: Sequence[LoraAdapter],
              query: LoraAdapter) -> tuple[Prediction, float]:
    """Fit `method` on the anchor pairs and predict the query's Y adapter; returns (prediction, seconds)."""
    for x, y in zip(anchors_X, anchors_Y):
        if x.name != y.name:
            raise TransferlabError(f"anchor pairs are out of order: X adapter {x.name} is paired with Y adapter "
                                   f"{y.name}")
    start = time.perf_counter()
    with small_algebra():
        translator = make(method, **params)
        translator.fit(AdapterStack.of(anchors_X, role="anchor (model X)"),
                       AdapterStack.of(anchors_Y, role="anchor (model Y)"))
        prediction = translator.predict(query)
    return prediction, time.perf_counter() - start


@dataclass(frozen=True)
class Scored:
    """A method's result on one held-out task: its score, gain over base_Y and gap recovered
    (NaN when `na_reason` says why; a number to distrust when `unstable_reason` is set)."""

    score: Estimate
    gain: Estimate
    gap: Estimate
    na_reason: str = ""
    unstable_reason: str = ""


def score_against(method: Sequence[float], base: Sequence[float], oracle: Sequence[float], resamples: int = 1000,
                  seed: int = 0, min_effect: float = MIN_EFFECT) -> Scored:
    """Score, paired gain over base_Y, and gap recovered with the rules of `gaps`, on shared examples."""
    if not (len(method) == len(base) == len(oracle)):
        raise ValueError(f"evaluations differ in size: {len(method)}, {len(base)}, {len(oracle)}")
    score = bootstrap_mean(method, resamples, seed)
    gain = paired_difference(method, base, resamples, seed)
    oracle_gain = paired_difference(oracle, base, resamples, seed)
    verdict = gap_verdict(oracle_gain.value, oracle_gain.ci_low, oracle_gain.ci_high, min_effect)
    if verdict.na:
        return Scored(score, gain, Estimate(NA, len(method), NA, NA), verdict.na_reason)
    gap = paired_ratio([m - b for m, b in zip(method, base)], [o - b for o, b in zip(oracle, base)], resamples, seed)
    return Scored(score, gain, gap, unstable_reason=verdict.unstable_reason)


def finite_mean(values: Sequence[float]) -> float:
    kept = [v for v in values if v is not None and not math.isnan(v)]
    return sum(kept) / len(kept) if kept else NA
