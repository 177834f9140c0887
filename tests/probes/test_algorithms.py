"""Every probe algorithm: the shared estimator checks, exactness against scikit-learn, bad input."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from tests.probes.conftest import planted
from transferlab.errors import TransferlabError
from transferlab.probes.algorithms import ALGORITHMS, STUDY_ALGORITHMS, make
from transferlab.probes.algorithms import _common as C

NAMES = sorted(ALGORITHMS)
FAST = {"ccs": {"n_restarts": 2, "max_iter": 60}}


def fresh(name):
    return make(name, **FAST.get(name, {}))


def test_the_eight_study_algorithms_and_the_baseline_are_registered():
    assert set(STUDY_ALGORITHMS) == {"dim", "lda", "lr", "lr-g", "ccs", "pca", "pca-g", "lat"}
    assert set(ALGORITHMS) == set(STUDY_ALGORITHMS) | {"random"}
    with pytest.raises(TransferlabError, match="did you mean 'lda'"):
        make("ldaa")


@pytest.mark.parametrize("name", NAMES)
def test_estimator_contract(name):
    X, y, g = planted(layers=1)
    probe = fresh(name)
    assert not any(k.endswith("_") for k in vars(probe)), "__init__ only stores hyper-parameters"
    params = probe.get_params()
    with pytest.raises(TransferlabError, match="not fitted"):
        probe.decision_function(X[0])
    assert probe.fit(X[0], y, groups=g) is probe
    assert probe.get_params() == params, "fit never changes the user's hyper-parameters"
    assert probe.coef_.shape == (X.shape[2],) and isinstance(probe.intercept_, float)
    scores = probe.decision_function(X[0])
    assert scores.shape == (len(y),) and np.isfinite(scores).all()
    again = pickle.loads(pickle.dumps(probe))
    np.testing.assert_allclose(again.decision_function(X[0]), scores)
    # idempotent: fitting twice gives the same probe
    np.testing.assert_allclose(fresh(name).fit(X[0], y, groups=g).coef_, probe.coef_, rtol=1e-6, atol=1e-9)
    with pytest.raises(TransferlabError, match="features"):
        probe.decision_function(X[0][:, :5])


@pytest.mark.parametrize("name", [n for n in NAMES if n not in ("random", "lat", "pca")])
def test_supervised_or_contrastive_probes_find_a_planted_direction(name):
    X, y, g = planted(layers=1, pairs=80, signal=3.0)
    probe = fresh(name).fit(X[0], y, groups=g)
    assert probe.score(X[0], y, groups=g) > (0.8 if name == "ccs" else 0.9)  # CCS: unsupervised, few steps here


@pytest.mark.parametrize("name", NAMES)
def test_batched_fit_equals_one_problem_at_a_time(name):
    X, y, g = planted(layers=3)
    batched = fresh(name).fit(X, y, groups=g)
    assert batched.coef_.shape == (3, X.shape[2])
    for layer in range(3):
        single = fresh(name).fit(X[layer], y, groups=g)
        if name in ("random", "ccs"):  # seeded draws differ per problem in a batch
            continue
        np.testing.assert_allclose(batched.coef_[layer], single.coef_, rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(batched.intercept_[layer], single.intercept_, rtol=1e-6, atol=1e-8)


def test_lr_and_lda_match_scikit_learn():
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
    from sklearn.linear_model import LogisticRegression

    for d in (24, 120):  # fewer features than rows, and more (solved in the rows' span)
        X, y, g = planted(layers=1, pairs=40, d=d)
        ours = make("lr").fit(X[0], y)
        ref = LogisticRegression(C=1.0, tol=1e-10, max_iter=10_000).fit(X[0], y)
        np.testing.assert_allclose(ours.coef_, ref.coef_[0], atol=1e-4)
        assert ours.intercept_ == pytest.approx(ref.intercept_[0], abs=1e-4)
        for shrinkage in ("auto", 0.3):
            ours = make("lda", shrinkage=shrinkage).fit(X[0], y)
            ref = LinearDiscriminantAnalysis(solver="lsqr", shrinkage=shrinkage).fit(X[0], y)
            np.testing.assert_allclose(ours.coef_, ref.coef_[0], rtol=1e-6, atol=1e-8)
            assert ours.intercept_ == pytest.approx(ref.intercept_[0], rel=1e-6, abs=1e-8)


def test_pca_matches_scikit_learn_up_to_sign():
    from sklearn.decomposition import PCA

    X, y, g = planted(layers=1)
    ours = make("pca").fit(X[0], y).coef_
    ref = PCA(n_components=1).fit(X[0]).components_[0]
    assert abs(abs(np.dot(ours, ref)) - 1) < 1e-8


def test_sign_convention_uses_training_rows_only():
    X, y, g = planted(layers=1, signal=3.0)
    probe = make("pca-g").fit(X[0], y, groups=g)
    assert probe.score(X[0], y, groups=g) >= 0.5
    flipped = make("pca-g").fit(X[0], 1 - y, groups=g)  # same rows, labels swapped: the direction flips
    assert np.dot(probe.coef_, flipped.coef_) < 0


def test_question_accuracy_and_ties():
    import torch

    y = torch.tensor([1, 0, 0, 1, 0])
    codes = torch.tensor([0, 0, 0, 1, 1])
    scores = torch.tensor([[3.0, 1.0, 2.0, 0.0, 0.0]], dtype=torch.float64)
    assert float(C.question_accuracy(scores, y, codes)[0]) == 0.5  # group 1 is a tie: wrong


def test_best_threshold_maximises_training_accuracy():
    import torch

    scores = torch.tensor([[0.1, 0.4, 0.35, 0.8]], dtype=torch.float64)
    y = torch.tensor([0, 1, 0, 1])
    t, acc = C.best_threshold(scores, y)
    assert float(acc[0]) == 1.0 and 0.35 < float(t[0]) < 0.4


@pytest.mark.parametrize("name", NAMES)
def test_bad_input_gives_one_clear_error(name):
    X, y, g = planted(layers=1)
    with pytest.raises(TransferlabError, match="one class only"):
        fresh(name).fit(X[0], np.ones_like(y), groups=g)
    with pytest.raises(TransferlabError, match="constant activations"):
        fresh(name).fit(np.ones_like(X[0]), y, groups=g)
    bad = X[0].copy()
    bad[0, 0] = np.nan
    with pytest.raises(TransferlabError, match="NaN"):
        fresh(name).fit(bad, y, groups=g)
    if ALGORITHMS[name].uses_groups:
        with pytest.raises(TransferlabError, match="both a true and a false"):
            fresh(name).fit(X[0], y, groups=np.arange(len(y)))  # singleton groups
        with pytest.raises(TransferlabError, match="needs groups"):
            fresh(name).fit(X[0], y)


def test_constant_layer_in_a_batch_is_named():
    X, y, g = planted(layers=3)
    X[1] = 0.0
    with pytest.raises(TransferlabError, match=r"problem\(s\) \[1\]"):
        make("dim").fit(X, y)


@pytest.mark.parametrize("name", ["pca", "pca-g", "lr"])
def test_batched_fit_scores_like_one_scikit_learn_fit_per_layer(name):
    """The benchmark's accuracy check in small: the sign rule (with its tie-break) and the
    threshold are shared, the direction comes from scikit-learn one layer at a time."""
    import torch
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression

    X, y, g = planted(layers=4, pairs=50, d=120, signal=0.3)  # weak signal: +w and -w often tie
    train, test = slice(0, 60), slice(60, 100)
    ours = make(name).fit(X[:, train], y[train], groups=g[train])
    ours_acc = ours.score(X[:, test], y[test], groups=g[test])
    for layer in range(4):
        Xl = X[layer, train]
        if name == "lr":
            ref = LogisticRegression(C=1.0, tol=1e-10, max_iter=100_000).fit(Xl, y[train])
            coef, bias = ref.coef_[0], torch.tensor([ref.intercept_[0]], dtype=C.DTYPE)
            np.testing.assert_allclose(ours.coef_[layer], coef, atol=1e-4 * np.abs(coef).max())
        else:
            Z = Xl - Xl.reshape(-1, 2, Xl.shape[1]).mean(axis=1).repeat(2, axis=0) if name == "pca-g" else Xl
            coef, bias = PCA(n_components=1, svd_solver="full").fit(Z).components_[0], None
        c, b = C.orient(torch.as_tensor(Xl[None]), torch.as_tensor(y[train]),
                        torch.as_tensor(np.unique(g[train], return_inverse=True)[1]), torch.as_tensor(coef[None]),
                        bias)
        scores = X[layer, test] @ c[0].numpy() + float(b[0])
        first_is_true = scores[0::2] > scores[1::2]  # pairs (true, false): question accuracy
        assert abs(first_is_true.mean() - ours_acc[layer]) <= 1e-3


def test_sign_tie_break_does_not_depend_on_the_solver_sign():
    import torch

    # two (true, false) pairs; along w the first pair is right and the second wrong, either sign: a tie
    X = torch.tensor([[[3.0, 0.0], [0.0, 0.0], [0.0, 0.0], [1.0, 0.0]]], dtype=C.DTYPE)
    y = torch.tensor([1, 0, 1, 0])
    codes = torch.tensor([0, 0, 1, 1])
    w = torch.tensor([[1.0, 0.0]], dtype=C.DTYPE)
    for grouped in (codes, None):
        plus, minus = C.orient(X, y, grouped, w, None)[0], C.orient(X, y, grouped, -w, None)[0]
        assert torch.equal(plus, minus) and float(plus[0, 0]) > 0  # true rows score higher on average
    # no mean gap either: the largest component decides
    Xs = torch.tensor([[[1.0, 0.0], [0.0, 0.0], [0.0, 0.0], [1.0, 0.0]]], dtype=C.DTYPE)
    v = torch.tensor([[-2.0, 1.0]], dtype=C.DTYPE)
    assert torch.equal(C.orient(Xs, y, codes, v, None)[0], C.orient(Xs, y, codes, -v, None)[0])
    assert float(C.orient(Xs, y, codes, v, None)[0][0, 0]) == 2.0


def test_centring_in_gram_space_equals_centring_the_rows():
    rng = np.random.default_rng(0)
    X = C.as_tensor(rng.normal(size=(3, 12, 20)))
    codes = C.group_index(np.array([0, 0, 1, 1, 1, 2, 2, 3, 3, 3, 3, 4]), 12)
    centred = C.group_center(X, codes)
    np.testing.assert_allclose(C.center_gram(C.gram(X), codes), centred @ centred.transpose(1, 2), atol=1e-10)
    v = C.as_tensor(rng.normal(size=(3, 12)))
    np.testing.assert_allclose(np.einsum("bnd,bn->bd", X, C.remove_group_means(v, codes)),
                               np.einsum("bnd,bn->bd", centred, v), atol=1e-10)


def test_the_shared_gram_matrix_is_recomputed_when_its_rows_change():
    X = C.as_tensor(np.random.default_rng(1).normal(size=(2, 5, 8)))
    assert C.gram(X) is C.gram(X), "the second algorithm on the same rows reuses the product"
    before = C.gram(X).clone()
    X.mul_(2.0)  # in place: same tensor, new version
    np.testing.assert_allclose(C.gram(X), 4 * before)
    assert not np.allclose(C.gram(X.clone() + 1), C.gram(X))


def test_lr_layers_that_converge_at_different_steps_match_one_fit_each():
    """Converged layers leave the Newton batch; the others must still reach their own optimum."""
    X, y, g = planted(layers=4, signal=3.0)
    X = X * np.array([0.1, 1.0, 5.0, 20.0])[:, None, None]  # from easy to nearly separable
    batched = make("lr").fit(X, y, groups=g)
    for layer in range(4):
        single = make("lr").fit(X[layer], y, groups=g)
        np.testing.assert_allclose(batched.coef_[layer], single.coef_, rtol=1e-6, atol=1e-8)
