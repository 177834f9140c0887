"""Evaluations scored a chunk of examples at a time, each chunk kept until the evaluation is stored,
so an evaluation killed part-way resumes with the chunks it had.

A long evaluation (a generation task over hundreds of examples, a grouped pass that scores the
base model and several adapters) would otherwise lose everything at a kill. Here its examples
are scored `CHUNK` at a time, and each member of the pass (the evaluation itself, or the leader
and its peers) keeps its chunk's per-example records in `chunk-<i>.json` of its own resume
directory (`Store.resume_dir(key)`), until its own evaluation is stored. A restart loads a chunk
when every member has it for the same examples, and scores it again otherwise. Records are per
example, so the chunks concatenate to the whole evaluation: the same scores, predictions and
texts as one call over all examples, up to the float rounding of other batch neighbours
(tests/test_evaluation_chunks.py).

    results = in_chunks(examples, [store.resume_dir(k) for k in member_keys],
                        lambda chunk: evaluate_many(model, tokenizer, task, chunk, adapter_dirs))
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from transferlab.engine.store import write_json
from transferlab.evaluate import TaskEvaluation
from transferlab.tasks.base import Example

CHUNK = 64  # examples per chunk: a kill loses at most one chunk's scoring


def in_chunks(examples: Sequence[Example], directories: Sequence[Path] | None,
              evaluate: Callable[[list[Example]], list[TaskEvaluation]],
              skipped: Callable[[list[Example]], None] | None = None) -> list[TaskEvaluation]:
    """`evaluate(examples)` (one result per member, in the order of `directories`, one resume
    directory per member), a chunk at a time, each member's share of a chunk saved in its
    directory and loaded from there when a previous run scored it.

    `skipped(chunk)` is told of every chunk that was loaded instead of scored (for progress).
    """
    examples = list(examples)
    if directories is None or len(examples) <= CHUNK:
        return evaluate(examples)
    parts = []
    for index, start in enumerate(range(0, len(examples), CHUNK)):
        chunk = examples[start : start + CHUNK]
        paths = [directory / f"chunk-{index:04d}.json" for directory in directories]
        saved = [_load(path, [e.uid for e in chunk]) for path in paths]
        if any(result is None for result in saved):
            saved = evaluate(chunk)
            for path, result in zip(paths, saved):
                path.parent.mkdir(parents=True, exist_ok=True)
                write_json(path, result.to_json())
        elif skipped:
            skipped(chunk)
        parts.append(saved)
    return [concatenate([part[m] for part in parts]) for m in range(len(directories))]


def _load(path: Path, uids: list[str]) -> TaskEvaluation | None:
    """The chunk's saved result, or None when it is missing, damaged or of other examples."""
    try:
        result = from_json(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return result if result.uids == uids else None


def from_json(record: dict[str, Any]) -> TaskEvaluation:
    """The inverse of `TaskEvaluation.to_json`."""
    fields = {name: record[name] for name in ("outputs", "weights", "choice_logprobs", "predictions", "targets",
                                               "answers", "contexts", "continuations", "prompt") if name in record}
    return TaskEvaluation(record["task"], record["split"], record["uids"], record["scores"], **fields)


def concatenate(parts: Sequence[TaskEvaluation]) -> TaskEvaluation:
    """One evaluation from evaluations of consecutive chunks of the same task, split and prompt."""
    first = parts[0]
    scores = {metric: [v for p in parts for v in p.scores[metric]] for metric in first.scores}
    weighted = {metric for p in parts for metric in p.weights}  # a chunk leaves out its all-1 weights
    weights = {metric: [w for p in parts for w in (p.weights.get(metric) or [1.0] * p.n)] for metric in weighted}

    def joined(name: str) -> list:
        return [item for p in parts for item in getattr(p, name)]
    return TaskEvaluation(first.task, first.split, joined("uids"), scores, joined("outputs"), weights,
                          joined("choice_logprobs"), joined("predictions"), joined("targets"), joined("answers"),
                          joined("contexts"), joined("continuations"), first.prompt)
