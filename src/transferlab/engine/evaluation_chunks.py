"""Evaluations scored a chunk of examples at a time, each chunk kept until the evaluation is stored,
so an evaluation killed part-way resumes with the chunks it had.

A long evaluation (a generation task over hundreds of examples, a grouped pass that scores the
base model and several adapters) would otherwise lose everything at a kill. Here its examples
are scored `CHUNK` at a time; each chunk's per-example records, one `TaskEvaluation` per member
of the pass (keyed by the member's job key), go to `chunk-<i>.json` in the leading job's resume
directory (`Store.resume_dir`). A restart loads every chunk whose examples and members match and
scores the others. Records are per example, so the chunks concatenate to the whole evaluation:
the same scores, predictions and texts as one call over all examples, up to the float rounding
of other batch neighbours (tests/test_evaluation_chunks.py).

    results = in_chunks(examples, store.resume_dir(job.key), member_keys,
                        lambda chunk: evaluate_many(model, tokenizer, task, chunk, adapter_dirs))
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from transferlab.evaluate import TaskEvaluation
from transferlab.tasks.base import Example

CHUNK = 64  # examples per chunk: a kill loses at most one chunk's scoring


def in_chunks(examples: Sequence[Example], directory: Path | None, members: Sequence[str],
              evaluate: Callable[[list[Example]], list[TaskEvaluation]],
              skipped: Callable[[list[Example]], None] | None = None) -> list[TaskEvaluation]:
    """`evaluate(examples)` (one result per member, in `members`' order), a chunk at a time, each
    chunk saved in `directory` and loaded from there when a previous run scored it.

    `skipped(chunk)` is told of every chunk that was loaded instead of scored (for progress).
    """
    examples = list(examples)
    if directory is None or len(examples) <= CHUNK:
        return evaluate(examples)
    parts = []
    for index, start in enumerate(range(0, len(examples), CHUNK)):
        chunk = examples[start : start + CHUNK]
        path = directory / f"chunk-{index:04d}.json"
        saved = _load(path, [e.uid for e in chunk], members)
        if saved is None:
            saved = evaluate(chunk)
            _save(path, dict(zip(members, saved)))
        elif skipped:
            skipped(chunk)
        parts.append(saved)
    return [concatenate([part[m] for part in parts]) for m in range(len(members))]


def discard(directory: Path) -> None:
    """Remove an evaluation's chunks once its results are stored."""
    shutil.rmtree(directory, ignore_errors=True)


def _save(path: Path, results: dict[str, TaskEvaluation]) -> None:
    from transferlab.engine.store import write_json

    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, {key: result.to_json() for key, result in results.items()})


def _load(path: Path, uids: list[str], members: Sequence[str]) -> list[TaskEvaluation] | None:
    """The chunk's results for `members`, or None when it is missing, damaged, of other examples
    or lacks one of the members (a pass with other peers: that chunk is scored again)."""
    try:
        saved = json.loads(path.read_text())
        results = [from_json(saved[key]) for key in members]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return results if all(r.uids == uids for r in results) else None


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
