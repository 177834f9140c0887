"""What a model predicted, per example, and the degenerate-predictor flag.

A model that gives (nearly) one answer everywhere scores the share of that answer, and an
adapter that flips the base model's answers wholesale scores 1 - base: neither is a finding,
however significant its gain looks. Both are flagged wherever the cell appears.

Predictions are recovered from a stored evaluation where they are implied by it: for a
two-choice task, a correct example was answered with its answer and a wrong one with the
other choice. Tasks with more choices need the predicted answers themselves, which the
evaluation records do not hold yet; they get no flag (None), never a guessed one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from transferlab.tasks.base import Task

DEGENERATE_SHARE = 0.95  # one answer (or flipped answers) on at least this share of the examples


def predicted_choices(task: Task, evaluation: dict[str, Any]) -> list[int] | None:
    """The index of the choice predicted for each evaluated example, or None when the
    evaluation does not imply it (generation tasks, more than two choices)."""
    if task.output_type != "multiple_choice" or "acc" not in evaluation.get("scores", {}):
        return None
    by_uid = {e.uid: e for e in task.all_examples()}
    examples = [by_uid.get(uid) for uid in evaluation["uids"]]
    if not examples or any(e is None or len(e.choices) != 2 or e.answer is None for e in examples):
        return None
    return [e.answer if correct >= 0.5 else 1 - e.answer
            for e, correct in zip(examples, evaluation["scores"]["acc"])]  # type: ignore[union-attr]


def majority_share(predictions: Sequence[int]) -> float:
    """The share of the most common predicted answer."""
    return Counter(predictions).most_common(1)[0][1] / len(predictions) if predictions else float("nan")


def flipped_share(uids: Sequence[str], predictions: Sequence[int], base_uids: Sequence[str],
                  base_predictions: Sequence[int]) -> float:
    """The share of the shared examples whose predicted answer differs from the base model's."""
    base = dict(zip(base_uids, base_predictions))
    shared = [(p, base[u]) for u, p in zip(uids, predictions) if u in base]
    return sum(p != b for p, b in shared) / len(shared) if shared else float("nan")


def is_degenerate(majority: float, flipped: float = float("nan")) -> bool:
    return bool(majority >= DEGENERATE_SHARE or flipped >= DEGENERATE_SHARE)
