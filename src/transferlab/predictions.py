"""What a model predicted, per example, and the degenerate-predictor flag.

A model that gives (nearly) one answer everywhere scores the share of that answer, and an
adapter that flips the base model's answers wholesale scores 1 - base: neither is a finding,
however significant its gain looks. Both are flagged wherever the cell appears.

Evaluations record the chosen index of every multiple-choice example (`predictions`). Older
records hold only 0/1 scores; there the answers are recovered where the scores imply them
(two choices: a correct example was answered with its answer, a wrong one with the other
choice) and tasks with more choices get no flag (None), never a guessed one. For generation
tasks the "answer" is the generated text itself, so a model that writes the same text (often
nothing) for every prompt is flagged too; flips are defined for choices only.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Sequence
from typing import Any

from transferlab.tasks.base import Task

DEGENERATE_SHARE = 0.95  # one answer (or flipped answers) on at least this share of the examples


def predicted_choices(task: Task, evaluation: dict[str, Any]) -> list[int] | None:
    """The index of the choice predicted for each evaluated example: recorded, or implied by the
    scores of a two-choice task; None for generation tasks and unrecorded many-choice ones."""
    if task.output_type != "multiple_choice":
        return None
    if evaluation.get("predictions"):
        return list(evaluation["predictions"])
    if "acc" not in evaluation.get("scores", {}):
        return None
    by_uid = {e.uid: e for e in task.all_examples()}
    examples = [by_uid.get(uid) for uid in evaluation["uids"]]
    if not examples or any(e is None or len(e.choices) != 2 or e.answer is None for e in examples):
        return None
    return [e.answer if correct >= 0.5 else 1 - e.answer
            for e, correct in zip(examples, evaluation["scores"]["acc"])]  # type: ignore[union-attr]


def predicted_answers(task: Task, evaluation: dict[str, Any]) -> list[Hashable] | None:
    """What the model answered on each example: the chosen index, or the generated text."""
    if task.output_type == "multiple_choice":
        return predicted_choices(task, evaluation)  # type: ignore[return-value]
    outputs = evaluation.get("outputs") or []
    return [o.strip() for o in outputs] if outputs and len(outputs) == len(evaluation["uids"]) else None


def majority_share(predictions: Sequence[Hashable]) -> float:
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
