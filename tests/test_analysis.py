"""Bootstrap estimates: coverage of the point estimate, pairing, weights."""

from __future__ import annotations

import numpy as np
import pytest

from transferlab.stats import align, bootstrap_mean, paired_difference


def test_bootstrap_interval_contains_the_mean_and_shrinks_with_n():
    rng = np.random.default_rng(0)
    small = bootstrap_mean(rng.integers(0, 2, 50).tolist())
    large = bootstrap_mean(rng.integers(0, 2, 5000).tolist())
    assert small.ci_low <= small.value <= small.ci_high
    assert (large.ci_high - large.ci_low) < (small.ci_high - small.ci_low) / 5


def test_pairing_removes_shared_noise():
    rng = np.random.default_rng(1)
    difficulty = rng.normal(size=400)
    base = difficulty
    treated = difficulty + 0.1
    paired = paired_difference(treated, base)
    assert paired.value == pytest.approx(0.1) and paired.ci_high - paired.ci_low < 1e-9
    assert paired.significant


def test_weighted_mean_counts_sub_items():
    est = bootstrap_mean([1.0, 0.0], weights=[3.0, 1.0])
    assert est.value == pytest.approx(0.75) and est.n == 2


def test_align_pairs_by_example_id():
    shared, a, b = align(["x", "y", "z"], [1, 0, 1], ["z", "x"], [0, 0])
    assert shared == [0, 2] and a == [1, 1] and b == [0, 0]


def test_empty_is_nan_not_an_error():
    assert np.isnan(bootstrap_mean([]).value)


def test_paired_ratio_of_means_and_degenerate_denominator():
    from transferlab.stats import paired_ratio

    est = paired_ratio([1, 1, 0, 0], [1, 1, 1, 1])
    assert est.value == pytest.approx(0.5) and est.ci_low <= 0.5 <= est.ci_high
    assert np.isnan(paired_ratio([1, 0], [0, 0]).value)  # nothing to divide by: NA, not infinity


def test_bh_qvalues_equal_scipys_and_keep_nan_out_of_the_family():
    from scipy.stats import false_discovery_control

    from transferlab.stats import bh_qvalues

    p = np.random.default_rng(0).uniform(size=40) ** 3
    assert np.allclose(bh_qvalues(p), false_discovery_control(p, method="bh"))
    with_nan = np.concatenate([p[:10], [np.nan]])
    q = bh_qvalues(with_nan)
    assert np.isnan(q[-1]) and np.allclose(q[:10], false_discovery_control(p[:10], method="bh"))


def test_bootstrap_p_agrees_with_the_interval():
    rng = np.random.default_rng(1)
    clear = paired_difference(rng.normal(0.3, 1, 400), np.zeros(400), 2000)
    null = paired_difference(rng.normal(0.0, 1, 400), np.zeros(400), 2000)
    assert clear.significant and clear.p < 0.05
    assert (null.p < 0.05) == null.significant and 0 < null.p <= 1


def test_two_seeds_that_disagree_pool_to_a_wider_interval_than_either():
    from transferlab.stats import hierarchical_mean

    rng = np.random.default_rng(2)
    a, b = rng.normal(0.0, 1, 300), rng.normal(0.4, 1, 300)
    pooled = hierarchical_mean([a, b], 2000, seed=0)
    each = [bootstrap_mean(x, 2000, seed=0) for x in (a, b)]
    width = pooled.ci_high - pooled.ci_low
    assert all(width > e.ci_high - e.ci_low for e in each)
    assert pooled.value == pytest.approx((a.mean() + b.mean()) / 2)
    averaged = np.mean([e.ci_high for e in each]) - np.mean([e.ci_low for e in each])
    assert width > 1.5 * averaged, "averaging the seeds' bounds would hide their disagreement"
    agree = hierarchical_mean([a, a + 1e-9], 2000, seed=0)
    assert agree.ci_high - agree.ci_low == pytest.approx(each[0].ci_high - each[0].ci_low, rel=0.3)


def test_a_ratio_pools_over_seeds_as_a_ratio_of_pooled_means():
    from transferlab.stats import hierarchical_ratio

    rng = np.random.default_rng(3)
    num = [rng.normal(0.4, 0.2, 300), rng.normal(0.2, 0.2, 300)]
    den = [rng.normal(0.5, 0.2, 300), rng.normal(0.5, 0.2, 300)]
    est = hierarchical_ratio(num, den, 2000, seed=0)
    assert est.value == pytest.approx(np.mean([n.mean() for n in num]) / np.mean([d.mean() for d in den]))
    each = [hierarchical_ratio([n], [d], 2000, seed=0) for n, d in zip(num, den)]
    assert est.ci_low < est.value < est.ci_high
    assert est.ci_high - est.ci_low > max(e.ci_high - e.ci_low for e in each)
