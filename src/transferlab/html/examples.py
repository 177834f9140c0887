"""The examples an adapter changed: per transfer cell, where its outcome differs from the base model's.

Read from the run's per-example records, `artifacts/evaluation/<key>/evaluation.json`, whose
`MANIFEST.json` `meta` holds the job's parameters (model, learner, trained_on, task, condition,
seed, split, eval_examples, template). For a cell (model, learner, trained_on, evaluated_on)
the adapter's evaluation (the lowest seed that has one, default prompt template) is paired by
example uid with the base model's evaluation of the same target, split and budget; an example
changed when its score in the cell's metric differs. Its prompt and reference come from the
task (`tasks.get_task`), or from the record itself where it carries `prompts` and `targets`
(lm-eval samples imported by `results import`, listed in `RUN/imported-evaluations.json`); its
predictions from the records: the generated text, or for multiple choice the option picked
(stored `predictions`, else the highest `choice_logprobs`).
At most `cap` examples per cell are kept, the better and the worse halves alike, and long
texts are cut, so the page stays small.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

MANIFEST = "MANIFEST.json"
RECORD = "evaluation.json"
# what `results import` stored: [{"cell": [model, learner, trained_on, task, condition, seed], "evaluation": key}]
IMPORTED = "imported-evaluations.json"
CAP = 50
TEXT_LIMIT = 1200
BASE_KEY = ("model", "task", "split", "eval_examples", "max_new_tokens")


def _cut(text: Any, limit: int = TEXT_LIMIT) -> str | None:
    if text is None:
        return None
    text = str(text)
    return text if len(text) <= limit else text[:limit] + f" … [{len(text) - limit} more characters]"


def evaluations(artifacts: Path, spec: dict[str, Any] | None = None) -> list[tuple[dict[str, Any], Path]]:
    """(meta, directory) of every default-template evaluation in `artifacts` that matches the
    run's spec (split, example budget and generation length) when one is given."""
    found = []
    budgets = (spec or {}).get("budgets") or {}
    wanted = {"split": (spec or {}).get("eval_split"), "eval_examples": budgets.get("eval_examples"),
              "max_new_tokens": budgets.get("max_new_tokens")}
    for manifest in sorted((Path(artifacts) / "evaluation").glob(f"*/{MANIFEST}")):
        try:
            meta = json.loads(manifest.read_text())["meta"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if "task" not in meta or meta.get("template", "default") != "default":
            continue
        if not (manifest.parent / RECORD).is_file():
            continue
        if any(v is not None and meta.get(k) is not None and meta.get(k) != v for k, v in wanted.items()):
            continue
        found.append((meta, manifest.parent))
    return found


def imported(run_dir: Path | None, artifacts: Path) -> list[tuple[dict[str, Any], Path]]:
    """(meta, directory) of the evaluations `results import` stored for the run's cells."""
    path = Path(run_dir) / IMPORTED if run_dir is not None else None
    if path is None or not path.is_file():
        return []
    try:
        index = json.loads(path.read_text())
    except ValueError:
        return []
    found = []
    for entry in index:
        model, learner, trained_on, task, condition, seed = entry["cell"]
        where = Path(artifacts) / "evaluation" / entry["evaluation"]
        if (where / RECORD).is_file():
            found.append(({"model": model, "learner": learner, "trained_on": trained_on, "task": task,
                           "condition": condition, "seed": seed, "split": "imported"}, where))
    return found


class _Tasks:
    """Each task's examples of one split, loaded once, by uid (None when the task cannot load here)."""

    def __init__(self) -> None:
        self.loaded: dict[tuple[str, str], dict[str, Any] | None] = {}

    def get(self, task: str, split: str) -> dict[str, Any] | None:
        if (task, split) not in self.loaded:
            try:
                from transferlab.tasks import get_task

                self.loaded[task, split] = {e.uid: e for e in get_task(task).examples(split)}
            except Exception:  # noqa: BLE001  (an unknown or unloadable task: the page shows uids only)
                self.loaded[task, split] = None
        return self.loaded[task, split]


def _prediction(record: dict[str, Any], i: int, example: Any, score: float) -> str | None:
    """What the model answered: its generated text, or the option it picked (from the stored pick,
    else its log-probabilities, else, for an older record without either, implied by its score)."""
    outputs = record.get("outputs") or []
    if i < len(outputs) and outputs[i] is not None:
        return str(outputs[i])
    choices = getattr(example, "choices", ()) or ()
    answer = getattr(example, "answer", None)
    pick, implied = None, ""
    if i < len(record.get("predictions") or []):
        pick = record["predictions"][i]
    elif i < len(record.get("choice_logprobs") or []):
        logprobs = record["choice_logprobs"][i]
        pick = max(range(len(logprobs)), key=logprobs.__getitem__) if logprobs else None
    elif answer is not None and score in (0.0, 1.0) and (score == 1.0 or len(choices) == 2):
        pick, implied = (answer if score == 1.0 else 1 - answer), " (implied by its score)"
    if pick is None:
        return None
    return (str(choices[pick]) if 0 <= pick < len(choices) else f"option {pick}") + implied


def _reference(example: Any) -> str | None:
    if example is None:
        return None
    choices, answer = getattr(example, "choices", ()) or (), getattr(example, "answer", None)
    if choices and answer is not None and 0 <= answer < len(choices):
        return str(choices[answer])
    return example.target


def compare(adapter: dict[str, Any], base: dict[str, Any], metric: str, examples: dict[str, Any] | None,
            cap: int = CAP) -> dict[str, Any] | None:
    """The changed examples of one adapter evaluation against its baseline (None without the metric)."""
    if metric not in (adapter.get("scores") or {}) or metric not in (base.get("scores") or {}):
        return None
    base_at = {uid: i for i, uid in enumerate(base["uids"])}
    better, worse, total = [], [], 0
    for i, uid in enumerate(adapter["uids"]):
        j = base_at.get(uid)
        if j is None:
            continue
        total += 1
        a, b = adapter["scores"][metric][i], base["scores"][metric][j]
        if a is None or b is None or abs(float(a) - float(b)) <= 1e-9:
            continue
        (better if a > b else worse).append((uid, i, j, float(a), float(b)))
    half = cap // 2
    keep_better = better[: max(half, cap - len(worse))]
    keep_worse = worse[: cap - len(keep_better)]
    rows = []
    own = adapter.get("prompts") or []  # records that carry their own texts (imported samples)
    for uid, i, j, a, b in keep_better + keep_worse:
        example = (examples or {}).get(uid)
        prompt = getattr(example, "prompt", None) if example is not None else (own[i] if i < len(own) else None)
        targets = adapter.get("targets") or []
        reference = _reference(example) if example is not None else (targets[i] if i < len(targets) else None)
        rows.append({"uid": uid, "prompt": _cut(prompt), "reference": _cut(reference), "base_score": b,
                     "adapter_score": a, "base": _cut(_prediction(base, j, example, b)),
                     "adapter": _cut(_prediction(adapter, i, example, a))})
    texts = examples is not None or bool(own)
    note = "" if texts else "The task's examples could not be loaded here: prompts are not shown."
    return {"metric": metric, "total": total, "changed": len(better) + len(worse), "improved": len(better),
            "worse": len(worse), "rows": rows, "note": note}


def changed_examples(artifacts: Path | None, cells: Iterable[tuple[str, str, str, str, str]], *,
                     spec: dict[str, Any] | None = None, run_dir: Path | None = None,
                     cap: int = CAP) -> dict[tuple, dict[str, Any]]:
    """(model, learner, trained_on, evaluated_on) -> the cell's changed examples, for every cell
    (those four and the metric to compare) whose adapter and base evaluations are both stored."""
    cells = list(cells)
    if artifacts is None or not cells or not (Path(artifacts) / "evaluation").is_dir():
        return {}
    found = evaluations(Path(artifacts), spec) + imported(run_dir, Path(artifacts))
    models = set((spec or {}).get("models") or [])
    trained: dict[tuple, list[tuple[int, dict, Path]]] = {}
    bases: dict[tuple, list[tuple[int, dict, Path]]] = {}
    for meta, where in found:
        if models and meta.get("model") not in models:
            continue
        seed = int(meta.get("seed") or 0)
        if meta.get("condition") == "baseline":
            bases.setdefault(tuple(meta.get(k) for k in BASE_KEY), []).append((seed, meta, where))
        else:
            key = (meta.get("model"), meta.get("learner"), meta.get("trained_on"), meta.get("task"))
            trained.setdefault(key, []).append((seed, meta, where))
    tasks, out = _Tasks(), {}
    for model, learner, trained_on, evaluated_on, metric in cells:
        runs = sorted(trained.get((model, learner, trained_on, evaluated_on), []), key=lambda r: r[0])
        for seed, meta, where in runs:
            candidates = sorted(bases.get(tuple(meta.get(k) for k in BASE_KEY), []), key=lambda r: (r[0] != seed, r[0]))
            if not candidates:
                continue
            try:
                adapter = json.loads((where / RECORD).read_text())
                base = json.loads((candidates[0][2] / RECORD).read_text())
            except (OSError, ValueError):
                continue
            result = compare(adapter, base, metric, tasks.get(evaluated_on, meta.get("split") or "test"), cap)
            if result is not None:
                out[model, learner, trained_on, evaluated_on] = {**result, "seed": seed}
                break
    return out
