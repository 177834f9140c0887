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

`example_records` reads any stored evaluation (new, older, or imported from lm-eval) as one
record per example: what the model saw, what it answered, the reference and the scores.
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


def example_records(evaluation: dict[str, Any], task: Task | None = None) -> list[dict[str, Any]]:
    """One record per evaluated example: uid, context, continuations, prediction (the chosen
    index, or the generated text), choice_logprobs, reference (the target text), answer (the
    correct index), scores and weights by metric.

    Newer evaluations store all of it. For older ones the reference and answer come from
    `task` (looked up by uid) and the prediction from `predicted_choices`; the context is never
    guessed from the task's prompt: what neither the record nor the task knows is None.
    """
    uids = evaluation["uids"]

    def column(name: str) -> list[Any] | None:
        values = evaluation.get(name)
        return values if isinstance(values, list) and len(values) == len(uids) else None

    by_uid = {e.uid: e for e in task.all_examples()} if task is not None else {}
    examples = [by_uid.get(uid) for uid in uids]
    logprobs = column("choice_logprobs")
    multiple = logprobs is not None or (task is not None and task.output_type == "multiple_choice")
    chosen = (predicted_choices(task, evaluation) if task is not None else None) or column("predictions")
    if chosen is None and logprobs is not None:
        chosen = [max(range(len(lps)), key=lps.__getitem__) for lps in logprobs]
    outputs, targets, answers = column("outputs"), column("targets"), column("answers")
    contexts = column("contexts") or column("prompts")  # imported lm-eval samples keep their prompts
    continuations = column("continuations")
    weights = {m: w for m, w in (evaluation.get("weights") or {}).items() if isinstance(w, list) and len(w) == len(uids)}
    records = []
    for i, (uid, example) in enumerate(zip(uids, examples)):
        prediction = chosen[i] if multiple and chosen is not None else (outputs[i] if outputs else None)
        reference = targets[i] if targets else (example.target if example is not None else None)
        answer = answers[i] if answers else (example.answer if example is not None and multiple else None)
        records.append({
            "uid": uid, "prompt": example.prompt if example is not None else None,
            "choices": list(example.choices) if example is not None and example.choices else None,
            "context": contexts[i] if contexts else None,
            "continuations": continuations[i] if continuations else None,
            "prediction": prediction, "choice_logprobs": logprobs[i] if logprobs else None,
            "reference": reference, "answer": answer,
            "scores": {m: values[i] for m, values in evaluation["scores"].items()},
            "weights": {m: w[i] for m, w in weights.items()}})
    return records


def gained_cells(cells: Any) -> Any:
    """The rows of a gain table (columns `value`, optional `degenerate`) above zero and not
    degenerate predictors: the candidates for a report's "largest transfer" (a zero, a loss or
    an answer prior's gain is none)."""
    gained = cells[cells["value"] > 0]
    return gained[~gained["degenerate"].astype(bool)] if "degenerate" in gained else gained
