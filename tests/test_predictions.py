"""The degenerate-predictor flag: answers recovered from stored evaluations, one-answer models
and wholesale flips flagged, and marked in the report wherever the cell appears."""

from __future__ import annotations

import pandas as pd

from transferlab.engine.store import NONE, RESULT_COLUMNS
from transferlab.predictions import (flipped_share, is_degenerate, majority_share, predicted_answers,
                                     predicted_choices)
from transferlab.tasks import get_task


def evaluation(task, answers):
    """An evaluation whose model predicted `answers` (choice indices) on the first examples."""
    examples = task.examples("test")[: len(answers)]
    return {"uids": [e.uid for e in examples],
            "scores": {"acc": [float(a == e.answer) for a, e in zip(answers, examples)]}}


def test_answers_are_recovered_for_two_choice_tasks_only():
    cities = get_task("cities")
    always_first = [0] * 50
    assert predicted_choices(cities, evaluation(cities, always_first)) == always_first
    mmlu = get_task("mmlu-math")
    assert predicted_choices(mmlu, evaluation(mmlu, [0] * 20)) is None, "four choices: unknown, never guessed"
    assert predicted_choices(get_task("gsm8k"), {"uids": [], "scores": {}}) is None


def test_recorded_predictions_flag_many_choice_and_generation_tasks():
    mmlu = get_task("mmlu-math")
    record = {**evaluation(mmlu, [0] * 20), "predictions": [2] * 20}
    assert predicted_choices(mmlu, record) == [2] * 20, "the recorded choice, not a guess from the scores"
    assert is_degenerate(majority_share(predicted_answers(mmlu, record)))
    gsm = get_task("gsm8k")
    silent = {"uids": ["a", "b", "c"], "scores": {}, "outputs": ["", " ", "\n"]}
    assert predicted_answers(gsm, silent) == ["", "", ""] and is_degenerate(majority_share(["", "", ""]))
    assert predicted_choices(gsm, silent) is None, "flips are defined for choices only"
    assert not is_degenerate(majority_share(predicted_answers(gsm, {**silent, "outputs": ["1", "2", "3"]})))


def test_one_answer_everywhere_and_wholesale_flips_are_degenerate():
    assert majority_share([1] * 97 + [0] * 3) == 0.97 and is_degenerate(0.97)
    assert not is_degenerate(majority_share([0, 1] * 50))
    uids = [str(i) for i in range(100)]
    base = [i % 2 for i in range(100)]
    assert flipped_share(uids, [1 - b for b in base], uids, base) == 1.0
    assert is_degenerate(0.5, flipped_share(uids, [1 - b for b in base], uids, base))
    assert not is_degenerate(0.5, flipped_share(uids, base, uids, base))


def test_the_report_marks_a_degenerate_cell_in_tables_and_findings(tmp_path):
    from transferlab.transfer.report import write_report

    rows = [("m", NONE, NONE, "cities", "baseline", 0, "acc", 0.5, 100, 0.4, 0.6),
            ("m", NONE, NONE, "cities", "baseline", 0, "share:majority", 0.5, 100, None, None)]
    for source, majority, gain in (("a", 0.99, 0.1), ("b", 0.6, 0.05)):
        rows += [("m", "lora", source, "cities", "transfer", 0, "acc", 0.5 + gain, 100, 0.45 + gain, 0.55 + gain),
                 ("m", "lora", source, "cities", "transfer", 0, "gain:acc", gain, 100, gain - 0.04, gain + 0.04),
                 ("m", "lora", source, "cities", "transfer", 0, "share:majority", majority, 100, None, None)]
    summary = write_report(pd.DataFrame(rows, columns=RESULT_COLUMNS), tmp_path)[0].read_text()
    assert "+0.100 [+0.060, +0.140]*†" in summary and "+0.050 [+0.010, +0.090]*" in summary
    assert "+0.050 [+0.010, +0.090]*†" not in summary
    assert "degenerate predictors (†), whose gains are not findings: a → cities" in summary
