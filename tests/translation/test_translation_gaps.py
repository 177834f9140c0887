"""gap_recovered's NA and unstable rules (`translation.gaps`), from aggregated numbers alone
or with per-example CIs, and on a table imported from another tool (seed 000's main table)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from transferlab.errors import TransferlabError
from transferlab.translation.gaps import check_min_effect, flag_gaps, gap_verdict
from transferlab.translation.imported import flag_table, read_table
from transferlab.translation.protocol import score_against
from seed_tables import SEED_000



def cell(base: float, oracle: float, score: float, **extra: float) -> pd.DataFrame:
    return pd.DataFrame([{"task": "t", "method": "m", "score": score, "base_y": base, "oracle": oracle, **extra}])


def test_oracle_gain_below_the_minimum_effect_is_na_with_the_reason():
    flagged = flag_gaps(cell(0.50, 0.53, 0.52)).iloc[0]  # the raw ratio would be 0.67
    assert math.isnan(flagged.gap) and flagged.na_rule == "below_min_effect"
    assert flagged.na_reason == "oracle − base_Y = +0.030 is below the minimum effect 0.05"
    assert flag_gaps(cell(0.50, 0.50, 0.60)).iloc[0].na_rule == "below_min_effect"  # no gain at all
    relaxed = flag_gaps(cell(0.50, 0.53, 0.52), min_effect=0.01).iloc[0]  # the stated minimum decides
    assert relaxed.na_rule == "" and abs(relaxed.gap - 2 / 3) < 1e-9
    # rounding in a published table does not push an exact minimum effect under it
    assert flag_gaps(cell(0.30, 0.35, 0.32), min_effect=0.05).iloc[0].na_rule == ""


def test_wrong_sign_is_na():
    flagged = flag_gaps(cell(0.60, 0.40, 0.50)).iloc[0]  # the raw ratio would be +0.5: a method "half way"
    assert math.isnan(flagged.gap) and flagged.na_rule == "wrong_sign"
    assert "wrong sign: oracle − base_Y = -0.200" in flagged.na_reason
    lower_is_better = flag_gaps(cell(0.60, 0.40, 0.50), higher_is_better=False).iloc[0]
    assert lower_is_better.na_rule == "" and abs(lower_is_better.gap - 0.5) < 1e-9
    per_row = flag_gaps(cell(0.60, 0.40, 0.50, higher_is_better="False")).iloc[0]
    assert per_row.na_rule == ""


def test_unstable_when_the_oracle_gain_is_barely_above_the_minimum_effect():
    unstable = flag_gaps(cell(0.50, 0.58, 0.54)).iloc[0]  # 0.08 < 2 x 0.05
    assert unstable.unstable and unstable.unstable_rule == "under_2x_min_effect" and abs(unstable.gap - 0.5) < 1e-9
    assert "more than doubles the ratio" in unstable.unstable_reason
    assert not flag_gaps(cell(0.50, 0.70, 0.60)).iloc[0].unstable
    # with a CI (per-example data) the CI rules apply as well
    wide = flag_gaps(cell(0.50, 0.70, 0.60, oracle_gain_lo=0.03, oracle_gain_hi=0.37)).iloc[0]
    assert wide.unstable and wide.unstable_rule == "ci_below_min_effect" and wide.na_rule == ""
    noise = flag_gaps(cell(0.50, 0.70, 0.60, oracle_gain_lo=-0.01, oracle_gain_hi=0.41)).iloc[0]
    assert noise.na_rule == "ci_includes_0" and math.isnan(noise.gap) and "includes 0" in noise.na_reason
    tight = flag_gaps(cell(0.50, 0.70, 0.60, oracle_gain_lo=0.12, oracle_gain_hi=0.28)).iloc[0]
    assert not tight.unstable and tight.na_rule == ""


def test_an_aggregated_table_without_cis_gets_the_same_flags_as_per_example_data():
    """Four held-out tasks, one per regime, scored from 400 examples each: `score_against`
    on the examples and `flag_gaps` on their means alone give the same flags and ratios."""
    n = 400
    base = [0] * 200 + [1] * 200

    def shifted(k: int) -> list[int]:  # base_Y with k wrong answers made right (k < 0: right made wrong)
        return [1] * k + base[k:] if k >= 0 else base[:200] + [0] * -k + base[200 - k:]

    regimes = {"below": 12, "wrong_sign": -40, "unstable": 32, "stable": 120}  # oracle − base_Y x 400
    rows, per_example = [], {}
    for task, k in regimes.items():
        oracle, method = shifted(k), shifted(abs(k) // 2)
        scored = score_against(method, base, oracle, resamples=400, seed=0)
        per_example[task] = scored
        rows.append({"task": task, "method": "m", "score": sum(method) / n, "base_y": sum(base) / n,
                     "oracle": sum(oracle) / n})
    flagged = flag_gaps(pd.DataFrame(rows)).set_index("task")
    assert flagged.na_rule.to_dict() == {"below": "below_min_effect", "wrong_sign": "wrong_sign", "unstable": "",
                                         "stable": ""}
    assert flagged.unstable.to_dict() == {"below": False, "wrong_sign": False, "unstable": True, "stable": False}
    for task, scored in per_example.items():
        assert bool(scored.na_reason) == bool(flagged.loc[task, "na_rule"])
        assert bool(scored.unstable_reason) == bool(flagged.loc[task, "unstable"])
        same = (math.isnan(scored.gap.value) and math.isnan(flagged.loc[task, "gap"])) or \
            abs(scored.gap.value - flagged.loc[task, "gap"]) < 1e-9
        assert same, task
    # the same table with its CIs (tight at n=400) flags the same cells
    with_ci = pd.DataFrame(rows)
    with_ci["oracle_gain_lo"] = [k / n - 0.02 for k in regimes.values()]
    with_ci["oracle_gain_hi"] = [k / n + 0.02 for k in regimes.values()]
    again = flag_gaps(with_ci).set_index("task")
    assert again.na_rule.to_dict() == flagged.na_rule.to_dict()
    assert again.unstable.to_dict() == flagged.unstable.to_dict()
    assert flag_gaps(flagged.reset_index()).equals(flag_gaps(flag_gaps(flagged.reset_index())))  # idempotent


@pytest.mark.parametrize("bad", [0, -0.1, "lots", True, float("nan"), None])
def test_a_bad_min_effect_is_a_one_line_error(bad):
    with pytest.raises(TransferlabError, match=r"^min_effect must be a positive number") as err:
        check_min_effect(bad)
    assert "\n" not in str(err.value)
    with pytest.raises(TransferlabError, match="min_effect"):
        flag_gaps(cell(0.5, 0.7, 0.6), min_effect=bad)
    assert check_min_effect("5e-2") == 0.05 and gap_verdict(0.2, min_effect=0.05).na_rule == ""


def test_seed_000_published_table_gets_the_flags(tmp_path):
    """Seed 000's headline ratios (3.000, -0.500, ...) divide by oracle gains of 0.3 to 2
    accuracy points, or negative ones: every cell is NA, each with its reason."""
    path = tmp_path / "main_table.md"
    path.write_text("# Experiment 1\n\n" + SEED_000 + "\n## Success criteria\n")
    table = read_table(path)
    assert len(table) == 6 * 6 and list(table.method[:2]) == ["mean", "global_ridge"]
    flagged = flag_table(path, tmp_path / "flagged.csv")
    by_task = flagged.groupby("task").na_rule.first()
    assert by_task["humaneval_plus"] == "wrong_sign" and by_task["math_algebra_medium"] == "below_min_effect"
    assert (flagged.na_rule != "").all() and flagged.gap.isna().all()
    assert flagged.set_index("task").published_gap_recovered["math_algebra_medium"].iloc[0] == 3.0
    assert pd.read_csv(tmp_path / "flagged.csv").na_reason.str.contains("minimum effect|wrong sign").all()
    # the same table as CSV, with a larger oracle gain: defined, unstable, or NA as the rules say
    csv = tmp_path / "main_table.csv"
    csv.write_text("Domain,Task,base_Y,mean,global_ridge,oracle\nmath,a,0.10,0.15,0.20,0.30\n"
                   "math,b,0.10,0.12,0.14,0.18\ncode,c,0.10,0.12,NA,0.12\n")
    flagged = flag_table(csv).set_index(["task", "method"])
    assert abs(flagged.loc[("a", "global_ridge"), "gap"] - 0.5) < 1e-9 and not flagged.loc[("a", "mean"), "unstable"]
    assert flagged.loc[("b", "mean"), "unstable"] and abs(flagged.loc[("b", "mean"), "gap"] - 0.25) < 1e-9
    assert flagged.loc[("c", "mean"), "na_rule"] == "below_min_effect"
    assert flagged.loc[("c", "global_ridge"), "na_rule"] == ""  # no score: nothing to flag


def test_tidy_table_with_cis_and_missing_columns(tmp_path):
    tidy = tmp_path / "tidy.csv"
    tidy.write_text("held_out,method,score,base,oracle,oracle_gain_lo,oracle_gain_hi\n"
                    "t,ridge,0.6,0.5,0.7,-0.02,0.42\nu,ridge,0.6,0.5,0.7,0.15,0.25\n")
    flagged = flag_table(tidy).set_index("task")
    assert flagged.loc["t", "na_rule"] == "ci_includes_0" and flagged.loc["u", "na_rule"] == ""
    broken = tmp_path / "broken.csv"
    broken.write_text("task,method,score\nt,ridge,0.6\n")
    with pytest.raises(TransferlabError, match="missing column.*base_y, oracle"):
        flag_table(broken)


def test_cli_flags_a_table_and_rejects_a_bad_min_effect(tmp_path):
    from typer.testing import CliRunner

    from transferlab.cli import app

    path = tmp_path / "seed000.md"
    path.write_text(SEED_000)
    result = CliRunner().invoke(app, ["translation", "flag", str(path), "--out", str(tmp_path / "out.csv")])
    assert result.exit_code == 0, result.output
    assert "36 NA" in result.output and "wrong_sign" in result.output and (tmp_path / "out.csv").exists()
    result = CliRunner().invoke(app, ["translation", "flag", str(path), "--min-effect=-1"])
    assert result.exit_code != 0 and isinstance(result.exception, TransferlabError)
    assert str(result.exception).startswith("min_effect must be a positive number") and "\n" not in str(result.exception)
