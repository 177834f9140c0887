"""Capability drift (seed 004) on results tables written by hand: no model is loaded."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from test_transfer_analysis import Results

from transferlab.stats import Estimate
from transferlab.transfer.drift import COLUMNS, PATTERNS, adapter_gains, classify, drift_table


def one_row(frame: pd.DataFrame, **kwargs) -> pd.Series:
    table = drift_table(frame, **kwargs)
    assert list(table.columns) == COLUMNS and len(table) == 1
    return table.iloc[0]


def test_seed_004_instruction_tuned_adapter_gains_on_numbers_not_on_ifeval():
    """The paper's strongest case: 0.133 → 0.632 on a numeric task, 0.313 → 0.271 on IFEval."""
    frame = (Results()
             .cell("alpaca", "ifeval", -0.042, ci=(-0.10, 0.02), metric="prompt_strict", base=0.313)
             .cell("alpaca", "ifeval", 0.05, ci=(0.0, 0.1), metric="inst_loose", base=0.4)  # not the primary
             .cell("alpaca", "gsm8k", 0.499, ci=(0.44, 0.56), metric="exact_match_flexible", base=0.133)
             .cell("alpaca", "gsm8k", 0.3, metric="exact_match_strict", base=0.1)
             .frame())
    row = one_row(frame, labels={"alpaca": "instruction_following"})
    assert row["label"] == "instruction_following" and row["on_label_targets"] == "ifeval"
    assert row["on_label_gain"] == pytest.approx(-0.042)
    assert (row["on_label_ci_low"], row["on_label_ci_high"]) == pytest.approx((-0.10, 0.02))
    assert row["best_off_label"] == "gsm8k" and row["best_off_label_gain"] == pytest.approx(0.499)
    assert row["drift_score"] == pytest.approx(0.499 + 0.042)
    assert row["pattern"] == "drift" and row["units"] == "proportion"
    assert "gsm8k: +0.499 [+0.440, +0.560]" in row["off_label_gains"]


def test_as_labelled_by_default_from_the_task_domain():
    frame = (Results().cell("gsm8k", "gsm8k", 0.30, metric="exact_match_flexible")
             .cell("gsm8k", "ifeval", -0.01, metric="prompt_strict").frame())
    row = one_row(frame)
    assert row["label"] == "math" and row["on_label_targets"] == "gsm8k"
    assert row["pattern"] == "as labelled"
    assert row["drift_score"] == pytest.approx(-0.31)


def test_reverse_drift_and_no_effect():
    hurt = Results().cell("a", "a", 0.30).cell("a", "b", -0.20).frame()
    assert one_row(hurt)["pattern"] == "reverse drift"
    flat = Results().cell("a", "a", 0.01).cell("a", "b", -0.02).frame()
    assert one_row(flat)["pattern"] == "no effect"


def test_on_label_harm_is_named_even_when_no_off_label_gain_is_significant():
    frame = Results().cell("a", "a", -0.20).cell("a", "b", 0.01).frame()
    assert one_row(frame)["pattern"] == "on-label harm"


def test_an_adapter_without_an_on_label_target_is_kept_and_named():
    frame = Results().cell("contracts", "a", 0.2).cell("contracts", "b", 0.1).frame()
    row = one_row(frame, labels={"contracts": "law"})
    assert row["pattern"] == "no on-label target"
    assert math.isnan(row["on_label_gain"]) and math.isnan(row["drift_score"])
    assert row["best_off_label"] == "a"


def test_several_on_label_targets_are_averaged_with_their_bounds():
    frame = (Results().cell("a", "a", 0.30, ci=(0.2, 0.4)).cell("a", "b", 0.10, ci=(0.0, 0.3))
             .cell("a", "c", 0.05).frame())
    row = one_row(frame, domains={"a": "d1", "b": "d1", "c": "d2"})
    assert row["label"] == "d1" and row["on_label_targets"] == "a, b"
    assert row["on_label_gain"] == pytest.approx(0.20)
    assert (row["on_label_ci_low"], row["on_label_ci_high"]) == pytest.approx((0.10, 0.35))
    assert row["drift_score"] == pytest.approx(0.05 - 0.20)
    assert "averages 2 targets" in row["note"]


def test_seeds_are_reported_as_mean_and_std():
    frame = (Results().cell("a", "a", 0.10, seed=0).cell("a", "b", 0.30, seed=0)
             .cell("a", "a", 0.20, seed=1).cell("a", "b", 0.60, seed=1).frame())
    row = one_row(frame)
    assert row["seeds"] == 2
    assert row["on_label_gain"] == pytest.approx(0.15)
    assert row["on_label_std"] == pytest.approx(pd.Series([0.1, 0.2]).std())
    assert row["drift_score"] == pytest.approx(0.30)  # mean of 0.20 and 0.40
    assert row["drift_std"] == pytest.approx(pd.Series([0.2, 0.4]).std())


def test_off_label_targets_in_other_units_are_left_out_of_the_drift_score():
    frame = (Results().cell("a", "a", 0.10).cell("a", "b", 0.30)
             .cell("a", "essay", 5.0, half=1.0, metric="bleu").frame())
    row = one_row(frame)
    assert row["drift_score"] == pytest.approx(0.20) and row["best_off_label"] == "b"
    assert "essay" in row["note"] and "proportion" in row["note"]


def test_on_label_targets_in_different_units_are_flagged_not_averaged():
    frame = Results().cell("a", "a", 0.10).cell("a", "b", 4.0, metric="bleu").cell("a", "c", 0.2).frame()
    row = one_row(frame, domains={"a": "d", "b": "d", "c": "e"})
    assert math.isnan(row["on_label_gain"]) and math.isnan(row["drift_score"])
    assert "mix units" in row["note"] and "b: bleu" in row["note"] and "not significant" in row["note"]
    assert row["pattern"] == "drift"  # c's significant gain, against an on-label gain that cannot be read


def test_one_row_per_adapter_and_sequential_cells_are_not_adapters_here():
    frame = (Results().cell("a", "a", 0.2).cell("a", "b", 0.1).cell("b", "b", 0.2)
             .cell("a", "a", 0.2, learner="probe")
             .cell("a>b", "b", 0.3, condition="sequential").frame())
    table = drift_table(frame)
    assert list(zip(table["learner"], table["trained_on"])) == [("lora", "a"), ("lora", "b"), ("probe", "a")]
    assert set(table["pattern"]) <= set(PATTERNS)


def test_adapter_gains_is_the_raw_cross_task_matrix():
    frame = Results().cell("a", "a", 0.2).cell("a", "b", 0.1).frame()
    gains = adapter_gains(frame, domains={"a": "x", "b": "x"})
    assert list(gains["on_label"]) == [True, True] and list(gains["domain"]) == ["x", "x"]


def test_classify_never_counts_a_missing_ci_as_significant():
    nan = float("nan")
    assert classify(Estimate(0.5, 0, nan, nan), [Estimate(0.5, 0, nan, nan)]) == "no effect"
    assert classify(None, []) == "no on-label target"


def test_clear_errors():
    with pytest.raises(ValueError, match="lacks the columns"):
        drift_table(pd.DataFrame({"model": ["m"]}))
    baseline_only = Results().cell("a", "a", 0.1).frame().query("condition == 'baseline'")
    with pytest.raises(ValueError, match="no transfer or direct cells"):
        drift_table(baseline_only)


def test_drift_reads_the_ci_pooled_over_seeds():
    """Two seeds whose on-label gains disagree: their own narrow bounds would call the gain
    significant; the pooled-over-seeds row the study wrote says it is not."""
    from transferlab.engine.store import POOLED, RESULT_COLUMNS

    frame = (Results().cell("a", "a", 0.02, 0.01, seed=0).cell("a", "b", 0.0, seed=0)
             .cell("a", "a", 0.30, 0.01, seed=1).cell("a", "b", 0.0, seed=1).frame())
    assert one_row(frame, domains={"a": "d", "b": "e"})["on_label_ci_low"] > 0  # averaged bounds
    pooled = pd.DataFrame([("m", "lora", "a", "a", "direct", POOLED, "gain:acc", 0.16, 400, -0.05, 0.31)],
                          columns=RESULT_COLUMNS)
    row = one_row(pd.concat([frame, pooled], ignore_index=True), domains={"a": "d", "b": "e"})
    assert (row["on_label_gain"], row["on_label_ci_low"], row["on_label_ci_high"]) == pytest.approx((0.16, -0.05, 0.31))
    assert row["seeds"] == 2 and row["pattern"] == "no effect"
