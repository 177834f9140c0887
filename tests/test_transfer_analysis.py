"""Transfer-matrix analyses (seed 002) on results tables written by hand: no model is loaded."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from transferlab.stats import Estimate
from transferlab.engine.store import NONE, RESULT_COLUMNS
from transferlab.transfer.analysis import (
    asymmetry,
    metric_units,
    mover_difference,
    negative_transfer,
    primary_rows,
    seed_mean,
    transfer_profiles,
)
from transferlab.transfer.clusters import cluster_tasks
from transferlab.transfer.hypotheses import hypothesis_table, verdict


class Results:
    """Builds a tidy results table cell by cell, the way another tool would write one.

    Each cell gets a score row and a `gain:` row; `frame()` adds the baseline rows.
    """

    def __init__(self) -> None:
        self.rows: list[tuple] = []
        self.baselines: set[tuple] = set()

    def cell(self, source: str, target: str, gain: float, half: float = 0.05, *, ci: tuple[float, float] | None = None,
             condition: str | None = None, model: str = "m", learner: str = "lora", seed: int = 0,
             metric: str = "acc", base: float = 0.3, n: int = 200) -> Results:
        condition = condition or ("direct" if source == target else "transfer")
        low, high = ci if ci else (gain - half, gain + half)
        self.rows.append((model, learner, source, target, condition, seed, metric, base + gain, n,
                          base + low, base + high))
        self.rows.append((model, learner, source, target, condition, seed, f"gain:{metric}", gain, n, low, high))
        self.baselines.add((model, target, seed, metric, base, n))
        return self

    def frame(self) -> pd.DataFrame:
        base = [(model, NONE, NONE, target, "baseline", seed, metric, value, n, value - 0.05, value + 0.05)
                for model, target, seed, metric, value, n in sorted(self.baselines)]
        return pd.DataFrame(base + self.rows, columns=RESULT_COLUMNS)


def full_matrix(gains: dict[tuple[str, str], float], half: float = 0.02, **kwargs) -> pd.DataFrame:
    built = Results()
    for (source, target), gain in gains.items():
        built.cell(source, target, gain, half, **kwargs)
    return built.frame()


# ---- shared helpers ----------------------------------------------------------------------
def test_primary_rows_pick_the_tasks_primary_metric():
    frame = (Results().cell("gsm8k", "ifeval", 0.1, metric="prompt_strict")
             .cell("gsm8k", "ifeval", 0.3, metric="inst_loose").frame())
    rows = primary_rows(frame)
    assert list(rows["metric"]) == ["prompt_strict"] and list(rows["value"]) == [0.1]


def test_metric_units_group_accuracy_like_metrics():
    assert {metric_units(m) for m in ("acc", "gain:pass@1", "exact_match_flexible", "prompt_strict")} == {"proportion"}
    assert metric_units("gain:bleu") == "bleu"


def test_a_table_without_the_tidy_columns_is_a_clear_error():
    with pytest.raises(ValueError, match="lacks the columns .*evaluated_on"):
        negative_transfer(pd.DataFrame({"model": ["m"], "value": [0.1]}))


# ---- asymmetry and negative transfer -----------------------------------------------------
def test_asymmetry_compares_both_directions_of_each_pair():
    frame = (Results().cell("math", "code", 0.20, ci=(0.15, 0.25)).cell("code", "math", 0.0, ci=(-0.05, 0.05))
             .cell("math", "law", 0.1).frame())  # law → math was never run: no row
    table = asymmetry(frame)
    assert len(table) == 1
    row = table.iloc[0]
    assert (row["task_a"], row["task_b"]) == ("code", "math")
    assert row["a_to_b"] == 0.0 and row["b_to_a"] == 0.20
    assert row["difference"] == pytest.approx(-0.20)
    assert row["difference_ci_high"] == pytest.approx(-0.20 + math.hypot(0.05, 0.05))
    assert bool(row["disjoint"])


def test_asymmetry_with_overlapping_cis_is_not_disjoint_and_other_kinds_work():
    frame = Results().cell("a", "b", 0.10).cell("b", "a", 0.08).frame()
    assert not asymmetry(frame)["disjoint"].iloc[0]
    assert asymmetry(frame, "score")["a_to_b"].iloc[0] == pytest.approx(0.40)
    with pytest.raises(ValueError, match="unknown metric kind 'ratio'"):
        asymmetry(frame, "ratio")


def test_asymmetry_refuses_to_subtract_gains_in_different_units():
    frame = Results().cell("a", "b", 0.1, metric="acc").cell("b", "a", 3.0, metric="bleu").frame()
    row = asymmetry(frame).iloc[0]
    assert math.isnan(row["difference"]) and row["metric_a_to_b"] == "acc" and row["metric_b_to_a"] == "bleu"


def test_negative_transfer_lists_harmful_cells_worst_first():
    frame = (Results().cell("a", "b", -0.10, 0.03).cell("a", "c", -0.30, 0.05).cell("b", "c", -0.02, 0.05)
             .cell("c", "c", -0.50, 0.05)  # direct, not transfer
             .cell("b", "a", 0.20).frame())
    hurt = negative_transfer(frame)
    assert list(zip(hurt["trained_on"], hurt["evaluated_on"])) == [("a", "c"), ("a", "b")]
    assert (hurt["ci_high"] < 0).all()


def test_negative_transfer_averages_seeds_first():
    frame = Results().cell("a", "b", -0.10, 0.03, seed=0).cell("a", "b", 0.10, 0.03, seed=1).frame()
    assert negative_transfer(frame).empty


# ---- profiles and clusters ---------------------------------------------------------------
def test_transfer_profiles_is_a_source_by_target_matrix():
    frame = Results().cell("a", "a", 0.3).cell("a", "b", 0.1, seed=0).cell("a", "b", 0.2, seed=1).frame()
    matrix = transfer_profiles(frame)
    assert matrix.loc["a", "a"] == 0.3 and matrix.loc["a", "b"] == pytest.approx(0.15)


def test_transfer_profiles_ask_which_model_when_there_are_several():
    frame = Results().cell("a", "b", 0.1, model="small").cell("a", "b", 0.2, model="large").frame()
    with pytest.raises(ValueError, match=r"2 models \(large, small\): pass model="):
        transfer_profiles(frame)
    assert transfer_profiles(frame, model="large").loc["a", "b"] == 0.2
    with pytest.raises(ValueError, match="no transfer cells for model 'medium'"):
        transfer_profiles(frame, model="medium")


def two_families() -> dict[tuple[str, str], float]:
    """Two obvious families: {algebra, arithmetic} help each other, {law, ethics} too, not across."""
    family = {"algebra": 0, "arithmetic": 0, "law": 1, "ethics": 1}
    return {(s, t): (0.4 if s == t else 0.25 if family[s] == family[t] else 0.0) for s in family for t in family}


def test_cluster_tasks_groups_similar_tasks():
    clusters = cluster_tasks(full_matrix(two_families()), n_clusters=2)
    a = clusters.assignment
    assert a["algebra"] == a["arithmetic"] and a["law"] == a["ethics"] and a["algebra"] != a["law"]
    order = clusters.order
    assert abs(order.index("algebra") - order.index("arithmetic")) == 1
    assert clusters.linkage.shape == (3, 4)
    assert clusters.distances.loc["algebra", "arithmetic"] < clusters.distances.loc["algebra", "law"]


def test_cluster_tasks_default_cut_and_gaps_in_the_matrix():
    gains = two_families()
    del gains[("law", "algebra")]  # a cell never run is missing, not zero
    clusters = cluster_tasks(full_matrix(gains))
    a = clusters.assignment
    assert a["algebra"] == a["arithmetic"] and a["algebra"] != a["law"]


def test_cluster_tasks_needs_three_tasks():
    frame = full_matrix({("a", "b"): 0.1, ("b", "a"): 0.2})
    with pytest.raises(ValueError, match="at least 3 tasks.*has 2 \\(a, b\\)"):
        cluster_tasks(frame)


def test_cluster_tasks_refuses_bad_methods_and_mixed_units():
    frame = full_matrix(two_families())
    with pytest.raises(ValueError, match="'ward' is not supported"):
        cluster_tasks(frame, "ward")
    mixed = pd.concat([frame, Results().cell("algebra", "essay", 2.0, metric="bleu").frame()])
    with pytest.raises(ValueError, match="different units.*essay: bleu"):
        cluster_tasks(mixed)


# ---- hypotheses --------------------------------------------------------------------------
def hypotheses(frame: pd.DataFrame, **kwargs) -> dict[str, pd.Series]:
    table = hypothesis_table(frame, **kwargs)
    assert set(table["verdict"]) <= {"supported", "not supported", "inconclusive", "not tested"}
    return {row["hypothesis"]: row for _, row in table.iterrows()}


def test_every_hypothesis_is_not_tested_without_its_cells():
    found = hypotheses(Results().cell("law", "ethics", 0.1).frame())
    assert [found[h]["verdict"] for h in ("H1", "H2", "H3", "H4")] == ["not tested"] * 4
    assert "no transfer cell from a math task to a code task" in found["H1"]["evidence"]
    assert "no similarity table" in found["H2"]["evidence"]


def test_h1_reads_math_to_code_from_the_registered_domains():
    frame = Results().cell("gsm8k", "humaneval", 0.05, ci=(0.01, 0.09), metric="pass@1").frame()
    h1 = hypotheses(frame)["H1"]
    assert h1["verdict"] == "supported" and h1["cells"] == 1
    assert "gsm8k → humaneval (m, lora): +0.050 [+0.010, +0.090]" in h1["evidence"]


@pytest.mark.parametrize("gain, ci, expected", [(-0.05, (-0.08, -0.02), "not supported"),
                                                (0.01, (-0.03, 0.05), "inconclusive")])
def test_h1_other_verdicts(gain, ci, expected):
    domains = {"arith": "math", "py": "code"}
    frame = Results().cell("arith", "py", gain, ci=ci).frame()
    assert hypotheses(frame, domains=domains)["H1"]["verdict"] == expected


def test_margin_counts_small_effects_as_none():
    frame = Results().cell("arith", "py", 0.0, ci=(-0.03, 0.01)).frame()
    domains = {"arith": "math", "py": "code"}
    assert hypotheses(frame, domains=domains)["H1"]["verdict"] == "inconclusive"
    assert hypotheses(frame, domains=domains, margin=0.02)["H1"]["verdict"] == "not supported"


def similarity_frame() -> pd.DataFrame:
    return pd.DataFrame({"task_a": ["a", "a", "b"], "task_b": ["b", "c", "c"], "similarity": [0.9, 0.5, 0.1]})


def related_tasks(count: int, sign: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`count` tasks with random similarities and gains that follow them (sign +1) or oppose them."""
    rng = np.random.default_rng(seed)
    names = [chr(ord("a") + i) for i in range(count)]
    pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1:]]
    sim = {frozenset(p): float(s) for p, s in zip(pairs, rng.uniform(0, 1, len(pairs)))}
    gains = {(s, t): sign * sim[frozenset((s, t))] / 3 + (0.01 if s < t else 0.0)
             for s in names for t in names if s != t}
    similarity = pd.DataFrame({"task_a": [a for a, _ in pairs], "task_b": [b for _, b in pairs],
                               "similarity": [sim[frozenset(p)] for p in pairs]})
    return full_matrix(gains), similarity


@pytest.mark.parametrize("sign, expected", [(1, "supported"), (-1, "not supported")])
def test_h2_correlates_similarity_with_gain(sign, expected):
    frame, similarity = related_tasks(7, sign)
    h2 = hypotheses(frame, similarity=similarity)["H2"]
    assert h2["verdict"] == expected and h2["cells"] == 42
    assert h2["estimate"] == pytest.approx(sign * 1.0, abs=0.2)


def test_h2_is_not_decided_by_three_tasks_however_many_pairs_agree():
    """Six directed pairs of three tasks correlate perfectly, and a CI over pairs would exclude
    zero; three tasks are too few to resample, and relabelling them gives only 6 orders."""
    sim = {frozenset(p): s for p, s in (("ab", 0.9), ("ac", 0.5), ("bc", 0.1))}
    for sign in (1, -1):
        gains = {(s, t): sign * sim[frozenset((s, t))] / 3 + (0.01 if s < t else 0.0)
                 for s in "abc" for t in "abc" if s != t}
        h2 = hypotheses(full_matrix(gains), similarity=similarity_frame())["H2"]
        assert h2["estimate"] == pytest.approx(sign * 1.0, abs=0.2)
        assert h2["verdict"] == "inconclusive" and "3 tasks are too few" in h2["evidence"]


def test_h2_needs_the_permutation_test_as_well_as_the_interval(monkeypatch):
    from transferlab.transfer import hypotheses as H
    from transferlab.transfer.similarity import Correlation

    frame, similarity = related_tasks(6, 1)
    monkeypatch.setattr(H, "correlate", lambda *a, **k: Correlation(0.5, 30, 0.1, 0.9, p=0.2, tasks=6))
    h2 = hypotheses(frame, similarity=similarity)["H2"]
    assert h2["verdict"] == "inconclusive" and "permutation test does not" in h2["evidence"]


def test_h2_needs_enough_matched_pairs_and_the_right_columns():
    frame = Results().cell("a", "b", 0.1).cell("x", "y", 0.2).frame()
    assert hypotheses(frame, similarity=similarity_frame())["H2"]["verdict"] == "not tested"
    with pytest.raises(ValueError, match="lacks the columns similarity"):
        hypothesis_table(frame, similarity=pd.DataFrame({"task_a": ["a"], "task_b": ["b"]}))


def learned(results: "Results", learners=("lora-grpo", "lora-sft"), tasks="ab", gain: float = 0.3) -> "Results":
    """Direct cells: each learner's adapter gained `gain` (CI +-0.05) on each of its own tasks."""
    for learner in learners:
        for task in tasks:
            results = results.cell(task, task, gain, learner=learner)
    return results


def test_h3_compares_rl_and_sl_learners_on_the_same_cells():
    frame = learned(Results().cell("a", "b", 0.30, learner="lora-grpo").cell("a", "b", 0.05, learner="lora-sft")
                    .cell("b", "a", 0.20, learner="lora-grpo").cell("b", "a", 0.00, learner="lora-sft")).frame()
    h3 = hypotheses(frame)["H3"]
    assert h3["verdict"] == "supported" and h3["cells"] == 2
    assert h3["estimate"] == pytest.approx(0.225)
    # An explicit mapping overrides the names: here the labels are swapped.
    swapped = hypotheses(frame, methods={"lora-grpo": "sl", "lora-sft": "rl"})["H3"]
    assert swapped["verdict"] == "not supported"


def test_h3_is_not_tested_with_one_method_or_no_shared_cell():
    one = learned(Results().cell("a", "b", 0.3, learner="lora-grpo")).frame()
    assert hypotheses(one)["H3"]["verdict"] == "not tested"
    apart = learned(Results().cell("a", "b", 0.3, learner="rl").cell("b", "a", 0.1, learner="sl"), ("rl", "sl")).frame()
    h3 = hypotheses(apart)["H3"]
    assert h3["verdict"] == "not tested" and "both an RL and an SL" in h3["evidence"]


def test_h3_leaves_out_an_adapter_that_did_not_learn_its_source():
    """An RL adapter that learned nothing 'transfers' more than an SL one that learned and forgot: not a finding."""
    cells = Results().cell("a", "b", 0.00, learner="lora-grpo").cell("a", "b", -0.30, learner="lora-sft")
    frame = learned(learned(cells, ("lora-sft",), "a"), ("lora-grpo",), "a", gain=0.01).frame()
    h3 = hypotheses(frame)["H3"]
    assert h3["verdict"] == "not tested" and h3["cells"] == 0
    assert "the RL adapter on a" in h3["evidence"] and "gained nothing on its own task" in h3["evidence"]
    both = learned(cells, ("lora-sft", "lora-grpo"), "a").frame()
    assert hypotheses(both)["H3"]["verdict"] == "supported"


def test_h4_pairs_sequential_with_direct_cells_of_the_same_target():
    frame = (Results().cell("b", "b", 0.20).cell("a>b", "b", 0.40, condition="sequential")
             .cell("a+b", "b", 0.9, condition="joint").frame())  # joint cells are not H4's
    h4 = hypotheses(frame)["H4"]
    assert h4["verdict"] == "supported" and h4["cells"] == 1
    assert h4["estimate"] == pytest.approx(0.20)
    assert h4["ci_low"] == pytest.approx(0.20 - math.hypot(0.05, 0.05))
    close = Results().cell("b", "b", 0.20).cell("a>b", "b", 0.22, condition="sequential").frame()
    assert hypotheses(close)["H4"]["verdict"] == "inconclusive"


def test_h4_is_not_tested_without_a_direct_partner():
    frame = Results().cell("a>b", "b", 0.4, condition="sequential").cell("c", "c", 0.2).frame()
    assert hypotheses(frame)["H4"]["verdict"] == "not tested"


def test_verdict_and_mover_difference():
    assert verdict(Estimate(0.1, 10, float("nan"), float("nan"))) == "inconclusive"
    d = mover_difference(Estimate(0.5, 10, 0.4, 0.7), Estimate(0.2, 20, 0.1, 0.25))
    assert d.value == pytest.approx(0.3)
    assert d.ci_low == pytest.approx(0.3 - math.hypot(0.1, 0.05))
    assert d.ci_high == pytest.approx(0.3 + math.hypot(0.2, 0.1))


def test_a_ratio_na_in_one_seed_is_na_over_seeds():
    rows = [("m", "lora", "a", "b", "transfer", seed, "relative:acc", value, 40, low, high)
            for seed, value, low, high in ((0, 0.5, 0.1, 0.9), (1, math.nan, math.nan, math.nan))]
    rows += [("m", "lora", "a", "c", "transfer", seed, "relative:acc", value, 40, value - 0.2, value + 0.2)
             for seed, value in ((0, 0.4), (1, 0.6))]
    out = seed_mean(pd.DataFrame(rows, columns=RESULT_COLUMNS)).set_index("evaluated_on")
    assert math.isnan(out.loc["b", "value"]) and math.isnan(out.loc["b", "std"]) and out.loc["b", "seeds"] == 2
    assert out.loc["c", "value"] == pytest.approx(0.5) and out.loc["c", "std"] == pytest.approx(0.1414, abs=1e-4)


def test_seed_mean_takes_the_ci_of_the_row_pooled_over_seeds():
    from transferlab.engine.store import POOLED

    frame = Results().cell("a", "b", 0.10, 0.03, seed=0).cell("a", "b", 0.30, 0.03, seed=1).frame()
    pooled = pd.DataFrame([("m", "lora", "a", "b", "transfer", POOLED, "gain:acc", 0.20, 400, 0.02, 0.38)],
                          columns=RESULT_COLUMNS)
    averaged = seed_mean(primary_rows(frame)).iloc[0]
    assert (averaged.ci_low, averaged.ci_high) == pytest.approx((0.17, 0.23))  # the fallback, too narrow
    both = pd.concat([frame, pooled], ignore_index=True)
    cell = seed_mean(primary_rows(both, pooled=True)).iloc[0]
    assert (cell.value, cell.ci_low, cell.ci_high, cell.seeds) == pytest.approx((0.20, 0.02, 0.38, 2))
    assert len(primary_rows(both)) == 2, "per-seed analyses never see the pooled row"


def test_summarise_pools_two_seeds_hierarchically(tmp_path):
    import json



    from transferlab.engine.store import POOLED, Store
    from transferlab.tasks import get_task
    from transferlab.transfer.plan import Cell, Plan
    from transferlab.transfer.summarise import summarise

    uids = [e.uid for e in get_task("cities").examples("test")[:200]]
    rng = np.random.default_rng(0)
    store = Store(tmp_path)

    def evaluation(key: str, p: float) -> None:
        right = (rng.random(len(uids)) < p).astype(float).tolist()
        with store.writing("evaluation", key) as out:
            (out / "evaluation.json").write_text(json.dumps(
                {"task": "cities", "split": "test", "uids": uids, "scores": {"acc": right, "acc_norm": right}}))

    evaluation("base", 0.5)
    evaluation("seed0", 0.5)  # the two seeds disagree: one adapter helps, the other does not
    evaluation("seed1", 0.8)
    evaluation("direct0", 0.9)
    evaluation("direct1", 0.9)
    cells = [Cell("m", None, None, "cities", "baseline", 0, "base", "base"),
             *(Cell("m", "lora", "larger_than", "cities", "transfer", s, f"seed{s}", "base") for s in (0, 1)),
             *(Cell("m", "lora", "cities", "cities", "direct", s, f"direct{s}", "base") for s in (0, 1))]
    summarise(Plan([], cells=cells), store, resamples=500)
    frame = store.results()
    transfer = frame[frame.condition == "transfer"]
    pooled = transfer[(transfer.seed == POOLED) & (transfer.metric == "gain:acc")].iloc[0]
    seeds = transfer[(transfer.seed != POOLED) & (transfer.metric == "gain:acc")]
    assert pooled.value == pytest.approx(seeds.value.mean())
    assert pooled.ci_high - pooled.ci_low > (seeds.ci_high - seeds.ci_low).max()
    assert {"p:gain:acc", "acc"} <= set(frame[frame.seed == POOLED].metric)
    assert POOLED not in set(frame[frame.condition == "baseline"].seed), "the shared baseline is not pooled"
    ratios = frame[(frame.seed == POOLED) & frame.metric.isin(["efficiency:acc", "relative:acc"])]
    assert len(ratios) == 2 and ratios.value.notna().all() and (ratios.ci_low < ratios.value).all()
