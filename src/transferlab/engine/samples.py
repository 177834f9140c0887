"""`transferlab results samples`: a run's per-example records, exported.

    transferlab results samples RUN                                   # tidy JSONL on stdout
    transferlab results samples RUN --task cities --out cities.csv    # tidy CSV (or .jsonl)
    transferlab results samples RUN --cell cities:larger_than --adapter base --out picked.jsonl
    transferlab results samples RUN --format lm-eval --out lm-eval-out/
    transferlab results import OTHER lm-eval-out/                     # reads it back: the same scores

Which evaluations: the evaluate jobs the run finished (its jobs table, so an `artifacts:`
directory shared with other runs adds nothing) and those `results import` stored for it
(`RUN/imported-evaluations.json`), each checked against its manifest and labelled by its cell
(model, learner, trained_on, evaluated_on, condition, seed) and prompt template. The records
are read by `predictions.example_records`, so older evaluations export too (their missing
fields are empty).

- tidy: one row per (evaluation, example): the cell, template, split and evaluation key; uid,
  context, continuations, prediction (chosen index or generated text), reference, answer,
  choice_logprobs; one column per metric (and `weight:<metric>` where examples weigh
  unequally). CSV writes lists as JSON text; JSONL keeps them lists.
- lm-eval: what `lm_eval --output_path OUT --log_samples` leaves, one lm-eval run per (model,
  adapter, seed, template): `OUT/<model>/results_<date>.json` (config.model_args
  `pretrained=<model>[,peft=<trained_on>]`, results `"<metric>,none"` with stderr, n-samples)
  and one `samples_<task>_<date>.jsonl` beside it per task (doc_id, doc, target, arguments,
  resps, filtered_resps, filter, metrics, hashes, one field per metric). `<date>` is when the
  evaluation was stored. `peft=` carries what the adapter was trained on, which is what
  `results import` files it under (as direct or transfer, with `--learner`'s name: a
  sequential or joint cell comes back as transfer). Log-likelihood responses are `[logprob, null]`: whether the
  choice was the greedy decode is not recorded. A metric whose examples weigh unequally
  (IFEval's instruction level) is written per document as its mean repeated once per unit,
  so a flattened mean is the weighted mean, as lm-eval's list-valued metrics are.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Optional

import typer

from transferlab.engine.lm_eval import INDEX
from transferlab.engine.store import MANIFEST, NONE, Store, write_json
from transferlab.errors import TransferlabError
from transferlab.predictions import example_records

FORMATS = ("tidy", "lm-eval")
RECORD_FIELDS = ("uid", "context", "continuations", "prediction", "reference", "answer", "choice_logprobs")
CELL_FIELDS = ("model", "learner", "trained_on", "evaluated_on", "condition", "seed", "template", "split")


@dataclass(frozen=True)
class Evaluated:
    """One stored evaluation of a run and the cell it belongs to."""

    model: str
    learner: str
    trained_on: str
    evaluated_on: str
    condition: str
    seed: int
    template: str
    split: str
    key: str
    created: float
    record: dict[str, Any]
    max_new_tokens: int | None = None

    def label(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in CELL_FIELDS} | {"evaluation": self.key}


def _spec(run_dir: Path) -> dict[str, Any]:
    try:
        spec = json.loads((run_dir / "spec.json").read_text())
    except (OSError, ValueError):
        return {}
    return spec if isinstance(spec, dict) else {}


def run_evaluations(run_dir: Path) -> list[Evaluated]:
    """Every evaluation the run finished or imported, intact, in the order they were made."""
    spec = _spec(run_dir)
    if not (run_dir / "results.sqlite").is_file():
        raise TransferlabError(f"{run_dir} holds no results.sqlite: give the output directory of a run")
    store = Store(run_dir, spec.get("artifacts") or None, create=False)
    found = []
    for job in store.jobs():
        if job["kind"] != "evaluate" or job["status"] != "done" or not store.has("evaluation", job["key"]):
            continue
        manifest = json.loads((store.path("evaluation", job["key"]) / MANIFEST).read_text())
        meta = manifest.get("meta") or {}
        record = store.read_json("evaluation", job["key"], "evaluation.json")
        found.append(Evaluated(str(meta["model"]), meta.get("learner") or NONE, meta.get("trained_on") or NONE,
                               meta.get("task") or record["task"], meta.get("condition", "baseline"),
                               int(meta.get("seed", 0)), meta.get("template", "default"), record.get("split", ""),
                               job["key"], float(manifest.get("created", 0)), record,
                               meta.get("max_new_tokens") or None))
    index = json.loads((run_dir / INDEX).read_text()) if (run_dir / INDEX).is_file() else []
    for entry in index:
        key = entry["evaluation"]
        if not store.has("evaluation", key):
            continue
        model, learner, trained_on, task, condition, seed = entry["cell"]
        created = json.loads((store.path("evaluation", key) / MANIFEST).read_text()).get("created", 0)
        record = store.read_json("evaluation", key, "evaluation.json")
        found.append(Evaluated(model, learner, trained_on, task, condition, int(seed), "default",
                               record.get("split", "lm-eval"), key, float(created), record))
    return sorted(found, key=lambda e: (e.created, e.key))


def select(found: list[Evaluated], tasks: list[str] | None = None, adapters: list[str] | None = None,
           cells: list[str] | None = None, models: list[str] | None = None,
           templates: list[str] | None = None) -> list[Evaluated]:
    """The evaluations every given filter admits; a filter value that matches none is an error
    listing the values the run has."""
    def trained(e: Evaluated) -> str:
        return "base" if e.trained_on == NONE else e.trained_on

    def base_named(values: list[str] | None) -> list[str] | None:  # "-" names the base model too
        return [("base" + v[1:]) if v == NONE or v.startswith(f"{NONE}:") else v for v in values or []]

    checks = [("--task", tasks, lambda e: e.evaluated_on), ("--adapter", base_named(adapters), trained),
              ("--cell", base_named(cells), lambda e: f"{trained(e)}:{e.evaluated_on}"),
              ("--model", models, lambda e: e.model), ("--template", templates, lambda e: e.template)]
    for option, wanted, value_of in checks:
        if not wanted:
            continue
        have = sorted({value_of(e) for e in found})
        for value in wanted:
            if value not in have:
                raise TransferlabError(f"{option} {value!r} matches no evaluation of this run: it has "
                                       f"{', '.join(have) or 'none'}" + (" (write SOURCE:TARGET, base:TARGET for the "
                                                                          "base model)" if option == "--cell" else ""))
        found = [e for e in found if value_of(e) in wanted]
    return found


class _Tasks:
    """Tasks by name, for what older records lack (references, choices); None when a task is unknown."""

    def __init__(self, spec: dict[str, Any]):
        from transferlab.tasks.yaml_task import register_task_file

        for path in spec.get("task_files") or []:
            try:
                register_task_file(path)
            except TransferlabError:
                pass  # a task file gone since the run: its records still export, without the task's fields
        self.known: dict[str, Any] = {}

    def get(self, name: str) -> Any:
        if name not in self.known:
            from transferlab.tasks import get_task

            try:
                task = get_task(name)
                task.all_examples()
            except TransferlabError:
                task = None
            self.known[name] = task
        return self.known[name]


def tidy_rows(found: list[Evaluated], tasks: _Tasks) -> list[dict[str, Any]]:
    rows = []
    for e in found:
        for rec in example_records(e.record, tasks.get(e.evaluated_on)):
            row = e.label() | {f: rec[f] for f in RECORD_FIELDS}
            for metric, value in rec["scores"].items():
                row[f"score:{metric}" if metric in row else metric] = value
            row |= {f"weight:{m}": w for m, w in rec["weights"].items()}
            rows.append(row)
    return rows


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_tidy(rows: list[dict[str, Any]], path: Path | None) -> str:
    """JSONL (stdout when `path` is None, or a .jsonl file) or CSV; returns the JSONL text for stdout."""
    if path is not None and path.suffix.lower() == ".csv":
        import pandas as pd

        columns = list(dict.fromkeys(c for row in rows for c in row))
        flat = [{c: json.dumps(v) if isinstance(v, (list, dict)) else v for c, v in row.items()} for row in rows]
        frame = pd.DataFrame(flat, columns=columns)
        _atomic_text(path, frame.to_csv(index=False))
        return ""
    text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    if path is not None:
        _atomic_text(path, text)
    return text


# ---- lm-eval's --log_samples shape --------------------------------------------------------
def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sanitized(model: str) -> str:
    """lm-eval's folder name for a model (`model_name_sanitized`)."""
    return re.sub(r"[\"<>:/|\\?*\[\]]+", "__", model)


def _metric_value(value: float, weight: float | None) -> Any:
    """A per-document value; an unequally weighted one as its mean repeated once per unit."""
    if weight is None or weight == 1.0:
        return value
    return [value] * int(weight) if float(weight).is_integer() and weight > 0 else value


def lm_eval_sample(doc_id: int, rec: dict[str, Any], e: Evaluated, task: Any) -> dict[str, Any]:
    """One --log_samples record (lm-eval 0.4's keys) of one example."""
    doc = {"uid": rec["uid"], **{k: rec[k] for k in ("prompt", "choices", "answer") if rec[k] is not None},
           "target": rec["reference"]}
    context = rec["context"] if rec["context"] is not None else (rec["prompt"] or "")
    logprobs = rec["choice_logprobs"]
    if logprobs is not None:
        conts = rec["continuations"] or rec["choices"] or [""] * len(logprobs)
        target: Any = rec["answer"]
        arguments = {f"gen_args_{i}": {"arg_0": context, "arg_1": c} for i, c in enumerate(conts)}
        resps: list[Any] = [[[str(lp), None]] for lp in logprobs]
        filtered: list[Any] = [[str(lp), None] for lp in logprobs]
    else:
        target = rec["reference"] if rec["reference"] is not None else ""
        gen = {"until": list(getattr(task, "stop", ()) or ()), "do_sample": False}
        if task is not None:
            gen["max_gen_toks"] = task.generation_length(e.max_new_tokens)
        elif e.max_new_tokens:
            gen["max_gen_toks"] = e.max_new_tokens
        arguments = {"gen_args_0": {"arg_0": context, "arg_1": gen}}
        answer = "" if rec["prediction"] is None else str(rec["prediction"])
        resps, filtered = [[answer]], [answer]
    metrics = list(rec["scores"])
    return {"doc_id": doc_id, "doc": doc, "target": target, "arguments": arguments, "resps": resps,
            "filtered_resps": filtered, "filter": "none", "metrics": metrics,
            "doc_hash": _sha(json.dumps(doc, indent=2, ensure_ascii=False, default=str)),
            "prompt_hash": _sha(context), "target_hash": _sha(str(target)),
            **{m: _metric_value(v, rec["weights"].get(m)) for m, v in rec["scores"].items()}}


def _aggregate(records: list[dict[str, Any]]) -> dict[str, Any]:
    """lm-eval's `"<metric>,none"` and `"<metric>_stderr,none"` over one task's records."""
    out: dict[str, Any] = {}
    for metric in records[0]["scores"] if records else []:
        values = [r["scores"][metric] for r in records]
        weights = [r["weights"].get(metric, 1.0) for r in records]
        mean = sum(v * w for v, w in zip(values, weights)) / sum(weights)
        out[f"{metric},none"] = mean
        if len(values) > 1 and all(w == 1.0 for w in weights):
            variance = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
            out[f"{metric}_stderr,none"] = math.sqrt(variance / len(values))
        else:
            out[f"{metric}_stderr,none"] = "N/A"
    return out


def _date(stamp: float) -> str:
    """lm-eval's file date: local time in ISO format, ':' written '-'."""
    return datetime.fromtimestamp(stamp).isoformat().replace(":", "-")


def write_lm_eval(found: list[Evaluated], tasks: _Tasks, out: Path) -> list[Path]:
    """One lm-eval run per (model, adapter, seed, template, split) under `out`; returns the files."""
    groups: dict[tuple, list[Evaluated]] = {}
    for e in found:
        group = (e.model, e.learner, e.trained_on, e.seed, e.template, e.split)  # one adapter: one lm-eval run
        groups.setdefault(group, []).append(e)
    doc_ids: dict[str, dict[tuple[str, int], int]] = {}  # task -> (uid, repeat) -> doc_id, the same in every file
    dates: set[tuple[str, str]] = set()
    written = []
    for (model, learner, trained_on, seed, template, split), members in groups.items():
        folder = out / sanitized(model)
        folder.mkdir(parents=True, exist_ok=True)
        stamp = min(e.created for e in members)
        date = _date(stamp)
        while (folder.name, date) in dates:  # two runs of one model in one folder need two dates
            stamp += 1e-6
            date = _date(stamp)
        dates.add((folder.name, date))
        results, counts, configs, provenance = {}, {}, {}, {}
        for e in members:
            task = tasks.get(e.evaluated_on)
            records = example_records(e.record, task)
            ids = doc_ids.setdefault(e.evaluated_on, {})
            seen: dict[str, int] = {}
            lines = []
            for r in records:  # a uid twice in one evaluation (identical rows of a task file): two documents
                seen[r["uid"]] = seen.get(r["uid"], -1) + 1
                doc_id = ids.setdefault((r["uid"], seen[r["uid"]]), len(ids))
                lines.append(json.dumps(lm_eval_sample(doc_id, r, e, task), ensure_ascii=False))
            path = folder / f"samples_{e.evaluated_on}_{date}.jsonl"
            _atomic_text(path, "".join(line + "\n" for line in lines))
            written.append(path)
            results[e.evaluated_on] = {"alias": e.evaluated_on, **_aggregate(records)}
            counts[e.evaluated_on] = {"original": len(records), "effective": len(records)}
            kind = "multiple_choice" if e.record.get("choice_logprobs") else "generate_until"
            configs[e.evaluated_on] = {"task": e.evaluated_on, "output_type": kind}
            provenance[e.evaluated_on] = {"evaluation": e.key, "condition": e.condition,
                                          "prompt": e.record.get("prompt") or {}}
        args = f"pretrained={model}" + ("" if trained_on == NONE else f",peft={trained_on}")
        data = {"results": results, "group_subtasks": {t: [] for t in results}, "configs": configs,
                "n-samples": counts, "config": {"model": "hf", "model_args": args},
                "model_name": model, "model_name_sanitized": folder.name, "date": stamp,
                "transferlab": {"learner": learner, "trained_on": trained_on, "seed": seed, "template": template,
                                "split": split, "tasks": provenance}}
        written.append(write_json(folder / f"results_{date}.json", data, indent=2))
    return written


def export(run_dir: Path, fmt: str, out: Path | None, **filters: Any) -> tuple[int, int, list[Path], str]:
    """(examples, evaluations, files written, JSONL text for stdout) of one export."""
    if fmt not in FORMATS:
        raise TransferlabError(f"--format {fmt!r}: use one of {', '.join(FORMATS)}")
    if fmt == "lm-eval" and out is None:
        raise TransferlabError("--format lm-eval writes a directory of files: give it with --out DIR")
    if fmt == "lm-eval" and out is not None and out.exists() and not out.is_dir():
        raise TransferlabError(f"--out {out} is a file: --format lm-eval writes a directory")
    if fmt == "tidy" and out is not None and out.suffix.lower() not in (".csv", ".jsonl"):
        raise TransferlabError(f"--out {out}: the tidy export writes .csv or .jsonl")
    found = select(run_evaluations(run_dir), **filters)
    if not found:
        raise TransferlabError(f"{run_dir} holds no finished evaluations to export")
    tasks = _Tasks(_spec(run_dir))
    if fmt == "lm-eval":
        assert out is not None
        files = write_lm_eval(found, tasks, out)
        return sum(len(e.record["uids"]) for e in found), len(found), files, ""
    rows = tidy_rows(found, tasks)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
    text = write_tidy(rows, out)
    return len(rows), len(found), [out] if out is not None else [], text


def results_samples(
        run_dir: Path = typer.Argument(..., help="A run's output directory."),
        fmt: str = typer.Option("tidy", "--format", help="tidy (one row per example) or lm-eval (--log_samples "
                                                         "JSONL and results JSON, readable by `results import`)."),
        out: Optional[Path] = typer.Option(None, "--out", help="tidy: a .csv or .jsonl file (default: JSONL on "
                                                               "stdout); lm-eval: a directory."),
        task: Optional[list[str]] = typer.Option(None, "--task", help="Only evaluations of this task (repeatable)."),
        adapter: Optional[list[str]] = typer.Option(None, "--adapter", help="Only this adapter, named by what it "
                                                    "was trained on; `base` for the base model (repeatable)."),
        cell: Optional[list[str]] = typer.Option(None, "--cell", help="Only this cell, SOURCE:TARGET (base:TARGET "
                                                 "for the base model; repeatable)."),
        model: Optional[list[str]] = typer.Option(None, "--model", help="Only this model (repeatable)."),
        template: Optional[list[str]] = typer.Option(None, "--template", help="Only this prompt template "
                                                     "(repeatable; default: all).")) -> None:
    """Export a run's per-example records: prediction, per-choice log-probs, reference, scores."""
    import sys

    from rich.console import Console

    examples, evaluations, files, text = export(run_dir, fmt, out, tasks=task, adapters=adapter, cells=cell,
                                                models=model, templates=template)
    if text and out is None:
        sys.stdout.write(text)
    where = f" to {out}" + (f" ({len(files)} files)" if len(files) > 1 else "") if out is not None else ""
    Console(stderr=True).print(f"exported {examples} examples of {evaluations} evaluations{where}", markup=False,
                               highlight=False, soft_wrap=True)
