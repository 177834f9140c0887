"""Translators: exactness on a linear world, agreement with the primal solve, the mean limit,
leave-one-out, the training-free projection, bad input."""

from __future__ import annotations

import math

import pytest
import torch
from translation_helpers import random_adapter

from transferlab.errors import TransferlabError
from transferlab.translation.features import from_factors
from transferlab.translation.protocol import NA, score_against, translate
from transferlab.translation.translators import LEARNED, TRANSLATORS, make
from transferlab.translation.translators._kernel import choose_lambda, ridge_weights


def _relative_error(prediction, truth):
    err = sum(float((prediction.factors[t][1] @ prediction.factors[t][0] - truth.delta(t)).norm() ** 2)
              for t in truth.tensors)
    return err / sum(float(truth.delta(t).norm() ** 2) for t in truth.tensors)


@pytest.mark.parametrize("method", ["global_ridge", "pertensor_ridge", "topk_global_ridge", "topk_pertensor_ridge"])
def test_ridge_translators_recover_a_linear_map_between_models(pairs, method):
    xs, ys = pairs
    prediction, _ = translate(method, {"k": 8} if method.startswith("topk") else {}, xs[:12], ys[:12], xs[12])
    assert _relative_error(prediction, ys[12]) < 1e-4
    if method.startswith("topk"):
        assert len(prediction.meta["selected"]) == 8 and set(prediction.meta["selected"]) <= {a.name for a in xs[:12]}


def test_mlp_beats_the_mean_and_mean_is_the_anchor_average(pairs):
    xs, ys = pairs
    mean, _ = translate("mean", {}, xs[:12], ys[:12], xs[12])
    t = (0, "q_proj")
    average = sum(y.delta(t) for y in ys[:12]) / 12
    assert torch.allclose(mean.factors[t][1] @ mean.factors[t][0], average, atol=1e-12)
    mlp, _ = translate("pertensor_mlp", {"steps": 150}, xs[:12], ys[:12], xs[12])
    assert _relative_error(mlp, ys[12]) < 0.5 * _relative_error(mean, ys[12])


def test_kernel_ridge_equals_the_primal_solve_in_feature_space():
    g = torch.Generator().manual_seed(3)
    n, dx, dy = 7, 40, 30
    X, Y, q = (torch.randn(n, dx, generator=g, dtype=torch.float64), torch.randn(n, dy, generator=g, dtype=torch.float64),
               torch.randn(1, dx, generator=g, dtype=torch.float64))
    lam = 0.3
    w = ridge_weights(X @ X.T, X @ q.T, torch.tensor(lam, dtype=torch.float64))[:, 0]
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    penalty = lam * float((Xc * Xc).sum()) / n  # the relative λ times the mean eigenvalue of the centred Gram
    coef = torch.linalg.solve(Xc.T @ Xc + penalty * torch.eye(dx, dtype=torch.float64), Xc.T @ Yc)
    primal = Y.mean(0) + (q - X.mean(0)) @ coef
    assert torch.allclose(w @ Y, primal[0], atol=1e-10)
    assert abs(float(w.sum()) - 1) < 1e-12  # an affine combination of the anchor Y updates


def test_huge_regularisation_is_the_mean_and_leave_one_out_prefers_signal():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(9, 5, generator=g, dtype=torch.float64)
    K = X @ X.T
    w = ridge_weights(K, K[:, :1], torch.tensor(1e9, dtype=torch.float64))
    assert torch.allclose(w, torch.full_like(w, 1 / 9), atol=1e-6)
    Y_signal = X @ torch.randn(5, 4, generator=g, dtype=torch.float64)
    Y_noise = torch.randn(9, 4, generator=g, dtype=torch.float64)
    lam_signal, err_signal = choose_lambda(K, Y_signal @ Y_signal.T)
    lam_noise, err_noise = choose_lambda(K, Y_noise @ Y_noise.T)
    assert lam_signal < lam_noise and err_signal < 0.05 < err_noise


def test_subspace_projection_is_the_identity_between_identical_models():
    g = torch.Generator().manual_seed(0)
    dims = {"q_proj": (8, 8)}
    weights = {(l, "q_proj"): torch.randn(8, 8, generator=g, dtype=torch.float64) for l in range(2)}
    anchor = random_adapter("anchor", "same", 2, dims, 2, g)
    query = random_adapter("query", "same", 2, dims, 2, g)
    prediction, _ = translate("subspace_projection", {"weights_X": weights, "weights_Y": weights}, [anchor], [anchor],
                              query)
    assert _relative_error(prediction, query) < 1e-10  # full-rank square weights: U Uᵀ ΔW V Vᵀ = ΔW


def test_too_few_anchors_and_bad_queries_are_named(pairs):
    xs, ys = pairs
    with pytest.raises(TransferlabError, match=r"topk_global_ridge needs at least 8 anchor pairs, got 5 \(task0"):
        translate("topk_global_ridge", {"k": 8}, xs[:5], ys[:5], xs[12])
    with pytest.raises(TransferlabError, match="global_ridge needs at least 3 anchor pairs, got 2"):
        translate("global_ridge", {}, xs[:2], ys[:2], xs[12])
    wrong = from_factors("alien-query", "model-z", {t: (xs[12].A[t], xs[12].B[t]) for t in xs[12].tensors})
    with pytest.raises(TransferlabError, match="query adapter alien-query: was trained for base model 'model-z'"):
        translate("global_ridge", {}, xs[:6], ys[:6], wrong)
    with pytest.raises(TransferlabError, match="anchor pairs are out of order: X adapter task0 is paired with Y adapter task1"):
        translate("mean", {}, xs[:2], ys[1:3], xs[12])
    with pytest.raises(TransferlabError, match="unknown translation method 'globl_ridge': did you mean 'global_ridge'"):
        make("globl_ridge")
    with pytest.raises(TransferlabError, match="call fit"):
        make("mean").predict(xs[0])


def test_every_translator_is_registered_and_learned_ones_need_several_anchors():
    assert set(LEARNED) < set(TRANSLATORS) and {"mean", "subspace_projection"} <= set(TRANSLATORS)
    assert all(TRANSLATORS[m].min_anchors >= 3 for m in ("global_ridge", "pertensor_ridge", "pertensor_mlp"))


def test_gap_recovered_is_na_when_the_oracle_gain_is_noise():
    base = [0, 1] * 50
    same = list(base)
    scored = score_against([1] * 100, base, same)
    assert math.isnan(scored.gap.value) and "below the minimum effect" in scored.na_reason  # NA, with the reason
    noisy = [1 if i < 20 else b for i, b in enumerate(base)]  # +0.10 over base_Y, on 10 of 100 examples
    noisy[1], noisy[3], noisy[21], noisy[23] = 0, 0, 0, 0  # and -0.04 on 4: +0.06, within noise at n=100
    scored = score_against([1] * 100, base, noisy)
    assert math.isnan(scored.gap.value) and "includes 0" in scored.na_reason
    oracle = [1] * 100
    half = [1] * 75 + [0, 1] * 12 + [0]
    scored = score_against(half, base, oracle)
    assert not scored.na_reason and abs(scored.gap.value - (sum(half) / 100 - 0.5) / 0.5) < 1e-12
    assert math.isnan(NA)
