"""The protocol on planted activations: batched scoring equals the naive loop, recovered accuracy, skips."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.probes.conftest import planted
from transferlab.probes.algorithms import make
from transferlab.probes.protocol import Data, evaluate, fit_bank

def data(name: str, seed: int, signal: float = 2.0, pairs: int = 60, grouped: bool = True) -> Data:
    X, y, g = planted(layers=2, pairs=pairs, seed=seed, signal=signal)
    pair_split = np.array(["train", "train", "hparams", "validation", "validation"])[np.arange(pairs) % 5]
    splits = pair_split[g]
    groups = g if grouped else np.arange(len(y))
    return Data(name, X, y, np.array([f"{name}{v}" for v in groups]), np.array(["s"] * len(y)), splits)


def test_bank_scores_equal_one_probe_at_a_time():
    sets = [data("a", 0), data("b", 1, grouped=False)]
    bank = fit_bank(sets, {"dim": {}, "lr": {}}, [1, 2])
    evs = evaluate(bank, sets, resamples=50)
    by_name = {e.dataset: e for e in evs}
    for p, (trained_on, algorithm) in enumerate(zip(bank.trained_on, bank.algorithm)):
        source = sets[[s.name for s in sets].index(trained_on)]
        X, y, g, _ = source.part("train")
        for layer in range(2):
            probe = make(algorithm).fit(X[layer], y, groups=g)
            for target in sets:
                Xv, yv, gv, _ = target.part("validation")
                expected = probe.score(Xv[layer], yv, groups=gv)
                assert float(by_name[target.name].acc[p, layer]) == pytest.approx(expected, abs=1e-6)


def test_recovered_accuracy_and_its_ci():
    sets = [data("a", 0), data("b", 1)]
    evs = evaluate(fit_bank(sets, {"dim": {}, "lr": {}}, [1, 2]), sets, resamples=100)
    for e in evs:
        assert e.recovered is not None and e.best is not None
        assert float(e.recovered[e.best]) == 1.0
        assert bool(((e.recovered >= 0) & (e.recovered <= 1)).all())
        lo, hi = e.recovered_ci
        assert bool((lo <= e.recovered + 1e-9).all() and (hi >= e.recovered - 1e-9).all())
        lo, hi = e.acc_ci
        assert bool((lo <= e.acc + 1e-9).all() and (hi >= e.acc - 1e-9).all())


def test_chance_level_dataset_gets_no_recovered_accuracy():
    sets = [data("a", 0), data("noise", 1, signal=0.0)]
    by_name = {e.dataset: e for e in evaluate(fit_bank(sets, {"dim": {}}, [1, 2]), sets, resamples=100)}
    assert by_name["noise"].recovered is None and "not above chance" in by_name["noise"].note
    assert by_name["a"].recovered is not None


def test_constant_layer_and_missing_groups_are_recorded_skips():
    a = data("a", 0)
    a.acts = a.acts.copy()
    a.acts[0] = 1.0
    flat = data("flat", 1, grouped=False)
    skips = []
    bank = fit_bank([a, flat], {"dim": {}, "pca-g": {}}, [1, 2], on_skip=skips.append)
    reasons = {(s.trained_on, s.algorithm, s.layer): s.reason for s in skips}
    assert reasons[("a", "dim", 0)] == "constant activations at this layer"
    assert "both a true and a false" in reasons[("flat", "pca-g", None)]
    evs = evaluate(bank, [a, flat], resamples=20)
    for e in evs:
        p = bank.trained_on.index("a")
        assert torch.isnan(e.acc[p, 0]) and not torch.isnan(e.acc[p, 1])


def test_a_baseline_that_scores_best_is_never_the_best_probe():
    from transferlab.probes.protocol import ProbeBank

    sets = [data("a", 0, signal=0.8)]
    fitted = fit_bank(sets, {"dim": {}}, [1, 2])
    X, y, g = sets[0].acts, sets[0].labels, sets[0].groups
    rows = sets[0].splits != "train"  # fitted on the evaluation rows: it beats every honest probe there
    oracle = make("lr").fit(torch.as_tensor(np.asarray(X[:, rows])), y[rows], groups=g[rows])

    def bank(name: str) -> ProbeBank:
        b = ProbeBank([1, 2])
        b.add("a", "dim", fitted.coef[0], fitted.intercept[0], fitted.valid[0])
        b.add("a", name, oracle.coef_, oracle.intercept_, np.ones(2, dtype=bool))
        return b

    as_candidate = evaluate(bank("lr"), sets, resamples=50)[0]
    assert as_candidate.best[0] == 1, "the planted probe is the best one on hparams"
    as_baseline = evaluate(bank("random"), sets, resamples=50)[0]
    assert as_baseline.best[0] == 0, "labelled a baseline, it is a reference point, not the denominator"


def test_chance_corrected_recovered_accuracy_shows_a_flipped_direction():
    sets = [data("a", 0), data("b", 1)]
    bank = fit_bank(sets, {"dim": {}}, [1, 2])
    bank.add("b", "lr", -bank.coef[0], -bank.intercept[0], bank.valid[0])  # a's direction, sign reversed
    ev = {e.dataset: e for e in evaluate(bank, sets, resamples=200)}["a"]
    top = ev.acc[ev.best]
    expected = (ev.acc - ev.chance) / (top - ev.chance)
    assert torch.allclose(ev.corrected, expected)
    flipped = 2
    assert float(ev.recovered[flipped].max()) < 0.3, "recovered accuracy only says 'low'"
    assert bool((ev.corrected[flipped] < 0).all()) and bool((ev.corrected_ci[1][flipped] < 0).all()), \
        "the chance-corrected one says 'below chance': a reversed direction"
    assert float(ev.corrected[ev.best]) == pytest.approx(1.0)
