"""When a ratio over the oracle's gain means something: the NA and "unstable" rules of
gap_recovered, from aggregated numbers alone or with per-example CIs.

    gap_recovered = (method − base_Y) / (oracle − base_Y)

The denominator d = oracle − base_Y (signed so that higher is better) and a stated minimum
effect m (the spec's `min_effect`, default 0.05, in the metric's units) decide:

NA, with the reason, when
  1. base_Y or the oracle is missing;
  2. d < 0: wrong sign, the oracle is worse than base_Y (the ratio would flip every sign);
  3. d < m: the oracle gain is below the minimum effect (d = 0 included);
  4. (CI of d given) the CI includes 0.
Unstable (a number, marked †, left out of every average) when
  5. d < 2m: an error of m in the denominator, an effect we would still call nothing,
     moves the ratio by more than a factor of two (d / (d − m) > 2);
  6. (CI of d given) the CI's lower bound is below m: the data do not rule out an oracle
     gain too small to divide by.

Rules 1-3 and 5 read point values only, so a table imported from another tool (seed 000's
published main table, say) gets the same flags as a run of this study; rules 4 and 6 add
what per-example bootstrap CIs know when they exist. `flag_gaps` applies them to any tidy
table; the study's `summarise` and `report` use it, and `transferlab translation flag`
applies it to a CSV (`imported`).

0.05 is five accuracy points: about the 95% CI half-width of a 0.5 accuracy over 400
examples (1.96 · 0.5 / √400 = 0.049), the smallest gain a typical evaluation resolves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from transferlab.errors import TransferlabError

MIN_EFFECT = 0.05
UNSTABLE_FACTOR = 2.0
EPS = 1e-9  # published tables round to 3 decimals: 0.35 − 0.30 must count as 0.05
TASK_NUMBERS = ("base_y", "oracle", "oracle_gain", "oracle_gain_lo", "oracle_gain_hi")
FLAGS = ("na_rule", "na_reason", "unstable", "unstable_rule", "unstable_reason")
RULES = {"missing": "missing", "wrong_sign": "wrong sign", "below_min_effect": "below the minimum effect",
         "ci_includes_0": "CI includes 0", "under_2x_min_effect": "under 2 × the minimum effect",
         "ci_below_min_effect": "CI reaches below the minimum effect"}  # rule code -> words


@dataclass(frozen=True)
class Verdict:
    """What the rules say about one denominator oracle − base_Y."""

    oracle_gain: float
    na_rule: str = ""  # missing, wrong_sign, below_min_effect, ci_includes_0
    na_reason: str = ""
    unstable_rule: str = ""  # under_2x_min_effect, ci_below_min_effect
    unstable_reason: str = ""

    @property
    def na(self) -> bool:
        return bool(self.na_rule)

    @property
    def unstable(self) -> bool:
        return bool(self.unstable_rule)


def check_min_effect(value: Any) -> float:
    """`min_effect` as a float, or a one-line error saying what it must be."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise TransferlabError(f"min_effect must be a positive number in the metric's units (the smallest oracle − "
                               f"base_Y gain a ratio may divide by, e.g. 0.05), got {value!r}")
    return float(value)


def _finite(value: Any) -> bool:
    try:
        return value is not None and math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def gap_verdict(oracle_gain: float, lo: float = math.nan, hi: float = math.nan, min_effect: float = MIN_EFFECT,
                higher_is_better: bool = True) -> Verdict:
    """The rules above for one denominator; `lo`/`hi` are its CI where per-example data gave one."""
    m = check_min_effect(min_effect)
    if not _finite(oracle_gain):
        return Verdict(math.nan, "missing", "oracle or base_Y missing")
    gain = float(oracle_gain)
    sign = 1.0 if higher_is_better else -1.0
    d = sign * gain
    text = f"oracle − base_Y = {gain:+.3f}"
    if d < -EPS:
        better = "" if higher_is_better else " (lower is better)"
        return Verdict(gain, "wrong_sign", f"wrong sign: {text}, the oracle is worse than base_Y{better}")
    if d < m - EPS:
        return Verdict(gain, "below_min_effect", f"{text} is below the minimum effect {m:g}")
    has_ci = _finite(lo) and _finite(hi)
    ci_lo, ci_hi = sorted((sign * float(lo), sign * float(hi))) if has_ci else (math.nan, math.nan)
    ci = f"CI [{float(lo):+.3f}, {float(hi):+.3f}]" if has_ci else ""
    if has_ci and ci_lo <= 0 <= ci_hi:
        return Verdict(gain, "ci_includes_0", f"{text}, {ci} includes 0")
    if d < UNSTABLE_FACTOR * m - EPS:
        why = (f"{text} is under {UNSTABLE_FACTOR:g} × min_effect ({UNSTABLE_FACTOR * m:g}): an error of {m:g} "
               "in it more than doubles the ratio")
        return Verdict(gain, unstable_rule="under_2x_min_effect", unstable_reason=why)
    if has_ci and ci_lo < m - EPS:
        why = f"{text}, {ci} reaches below the minimum effect {m:g}"
        return Verdict(gain, unstable_rule="ci_below_min_effect", unstable_reason=why)
    return Verdict(gain)


def _numbers(frame: pd.DataFrame, column: str) -> pd.Series:
    if column not in frame:
        return pd.Series(math.nan, index=frame.index, dtype=float)
    return pd.to_numeric(frame[column], errors="coerce")


def _bools(values: pd.Series, default: bool) -> list[bool]:
    """True/False however a CSV spelled them; blank or NaN reads as `default`."""
    words = {"true": True, "1": True, "1.0": True, "yes": True, "false": False, "0": False, "0.0": False, "no": False}
    return [words.get(str(v).strip().lower(), default) for v in values]


def flag_gaps(table: pd.DataFrame, min_effect: float = MIN_EFFECT, higher_is_better: bool = True) -> pd.DataFrame:
    """A copy of `table` with the NA and unstable flags of gap_recovered, from whatever it holds.

    Reads columns `base_y` and `oracle` (or `oracle_gain` = oracle − base_Y), optionally
    `oracle_gain_lo`/`oracle_gain_hi` (its CI: adds rules 4 and 6), `higher_is_better`
    (per row; else the argument) and, for per-method rows, `score` (and `gain` = score −
    base_Y, `gap`, `gap_lo`, `gap_hi` where per-example data computed them). Adds
    `oracle_gain`, `na_rule` ("" when defined; codes in `RULES`), `na_reason`, `unstable`,
    `unstable_rule`, `unstable_reason` and, with `score`, `gap`: the given one, else
    (score − base_Y) / (oracle − base_Y); NA cells get NaN gap and CI. Rows without a score
    have no ratio to flag and stay blank. Applying it twice gives the same table.
    """
    m = check_min_effect(min_effect)
    frame = table.copy()
    if "oracle_gain" not in frame and not {"base_y", "oracle"} <= set(frame.columns):
        raise TransferlabError("a table to flag needs columns base_y and oracle (or oracle_gain); it has "
                               + ", ".join(map(str, frame.columns)))
    difference = _numbers(frame, "oracle") - _numbers(frame, "base_y")
    frame["oracle_gain"] = _numbers(frame, "oracle_gain").fillna(difference) if "oracle_gain" in frame else difference
    lo, hi = _numbers(frame, "oracle_gain_lo"), _numbers(frame, "oracle_gain_hi")
    better = ([higher_is_better] * len(frame) if "higher_is_better" not in frame
              else _bools(frame["higher_is_better"], higher_is_better))
    verdicts = [gap_verdict(g, a, b, m, h) for g, a, b, h in zip(frame["oracle_gain"], lo, hi, better)]
    scored = _numbers(frame, "score").notna().to_numpy() if "score" in frame else np.ones(len(frame), bool)
    frame["na_reason"] = [v.na_reason if s else "" for v, s in zip(verdicts, scored)]
    frame["na_rule"] = [v.na_rule if s else "" for v, s in zip(verdicts, scored)]
    frame["unstable"] = [v.unstable and bool(s) for v, s in zip(verdicts, scored)]
    frame["unstable_rule"] = [v.unstable_rule if s else "" for v, s in zip(verdicts, scored)]
    frame["unstable_reason"] = [v.unstable_reason if s else "" for v, s in zip(verdicts, scored)]
    if "score" in frame:
        gain = _numbers(frame, "gain").fillna(_numbers(frame, "score") - _numbers(frame, "base_y"))
        with np.errstate(divide="ignore", invalid="ignore"):
            computed = gain / frame["oracle_gain"].where(frame["oracle_gain"] != 0)
        na = np.array([v.na for v in verdicts])
        frame["gap"] = _numbers(frame, "gap").fillna(computed).mask(na | ~scored)
        for column in ("gap_lo", "gap_hi"):
            if column in frame:
                frame[column] = _numbers(frame, column).mask(na | ~scored)
    return frame


def flag_study_tables(tasks: pd.DataFrame, trans: pd.DataFrame,
                      min_effect: float = MIN_EFFECT) -> tuple[pd.DataFrame, pd.DataFrame]:
    """tasks.csv and translations.csv with the flags (re)computed by `flag_gaps`: a task
    gets `gap_na_rule`, `gap_na_reason`, `gap_unstable`, ... (`FLAGS`, prefixed) for its
    denominator; each translation row takes its held-out task's base_Y, oracle and
    oracle-gain CI, so translations.csv alone is a tidy table `flag_gaps` can read again."""
    if len(tasks) and ({"base_y", "oracle"} <= set(tasks.columns) or "oracle_gain" in tasks):
        flagged = flag_gaps(tasks.drop(columns=[f"gap_{c}" for c in FLAGS if f"gap_{c}" in tasks]), min_effect)
        tasks = flagged.drop(columns=list(FLAGS)).assign(**{f"gap_{c}": flagged[c] for c in FLAGS})
    if len(trans) and "score" in trans and len(tasks) and "task" in tasks:
        numbers = [c for c in TASK_NUMBERS if c in tasks]
        lookup = tasks[["task", *numbers]].rename(columns={"task": "held_out"})
        trans = trans.drop(columns=[c for c in numbers if c in trans]).merge(lookup, on="held_out", how="left")
        trans = flag_gaps(trans, min_effect)
    return tasks, trans


def stable_gaps(frame: pd.DataFrame) -> pd.Series:
    """The gap_recovered values an average may use: defined and not unstable."""
    if "gap" not in frame:
        return pd.Series(dtype=float)
    gaps = pd.to_numeric(frame["gap"], errors="coerce")
    if "unstable" in frame:
        gaps = gaps[~pd.Series(_bools(frame["unstable"], False), index=frame.index)]
    return gaps.dropna()


def rules_text(min_effect: float = MIN_EFFECT) -> str:
    """The rules in one paragraph, for the report and the command line."""
    m = check_min_effect(min_effect)
    return (f"gap_recovered = (method − base_Y) / (oracle − base_Y) is NA, with the reason, when oracle − base_Y is "
            f"missing, negative (wrong sign), below the minimum effect {m:g}, or has a CI that includes 0; it is "
            f"unstable (marked †, shown but left out of every average) when oracle − base_Y is under "
            f"{UNSTABLE_FACTOR:g} × {m:g} = {UNSTABLE_FACTOR * m:g} (an error of {m:g} in it would more than double "
            f"the ratio) or its CI reaches below {m:g}. The CI rules apply where per-example data gave a CI; the "
            "others read the point values alone, so an imported table gets them too.")
