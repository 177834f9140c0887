"""lm-evaluation-harness's outputs as rows of the results table.

    lm_eval --model hf --model_args pretrained=M --tasks arc_easy --output_path out --log_samples
    lm_eval --model hf --model_args pretrained=M,peft=adapters/arc --tasks arc_easy --output_path out --log_samples
    transferlab results import RUN out/                 # every results_*.json and samples_*.jsonl under out/

Two formats, as lm-eval 0.4 writes them (`lm_eval/loggers/evaluation_tracker.py`):
- the results JSON (`results_<date>.json`): `results.<task>."<metric>,<filter>"` with
  `"<metric>_stderr,<filter>"`, `n-samples.<task>.effective`, and `config.model_args`
  (`pretrained=...,peft=...`, or a dict) naming the model and the adapter. Each metric is
  one row: n from n-samples, the 95% CI value ± 1.96 stderr (none when stderr is "N/A").
- the `--log_samples` JSONL (`samples_<task>_<date>.jsonl`): one record per document and
  filter, with doc_id, target, arguments, resps, filtered_resps and one field per metric
  (acc, exact_match, ...). The model comes from the results JSON of the same run beside it
  (same date) or from --model/--adapter. Each file is stored as an evaluation artifact in
  the native shape (uids, scores, outputs, plus prompts and targets), and rows are computed
  from it as the transfer study's summarise computes them (`stats`): the score with a
  bootstrap CI over documents, and for an adapter the gain over the base model paired by
  doc_id (`gain:<metric>`, `p:gain:<metric>`), and the relative transfer against an
  adapter trained on the target (`relative:<metric>`, NA when that direct gain's CI
  includes 0), whichever order the files come in.

A metric under the filter "none" keeps its name (acc); others are named "<metric>,<filter>"
as lm-eval names them (exact_match,strict-match). Rows are labelled: the base model's as
the baseline (learner and trained_on "-"); an adapter's with --learner (default lora) and
--trained-on (default: the adapter directory's name), condition direct when trained on
the task it is evaluated on, else transfer. Which artifact holds which cell is listed in
RUN/imported-evaluations.json (`INDEX`), for readers of per-example records.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transferlab.engine.import_checks import integer, number, refuse, unique
from transferlab.engine.store import NONE, ResultRow, Store, write_json
from transferlab.errors import TransferlabError

Z95 = 1.959963984540054  # the normal quantile of a 95% interval, for CIs from a standard error
INDEX = "imported-evaluations.json"
MODEL_KEYS = ("pretrained", "model", "path", "engine")  # lm-eval's own order, after the adapter keys
ADAPTER_KEYS = ("peft", "lora_local_path")
BOOKKEEPING = {"doc_id", "doc", "target", "arguments", "resps", "filtered_resps", "filter", "metrics", "doc_hash",
               "prompt_hash", "target_hash"}
SAMPLES_NAME = re.compile(r"samples_(?P<task>.+)_(?P<date>\d{4}-\d{2}-\d{2}T[\d.\-]+)\.jsonl")


@dataclass(frozen=True)
class Labels:
    """How imported evaluations are named in the results table (the command line's options)."""

    model: str | None = None  # replaces the model that model_args names
    adapter: str | None = None  # the adapter of samples without a results JSON beside them
    learner: str = "lora"
    trained_on: str | None = None  # what the adapters were trained on (default: the adapter's name)
    seed: int = 0
    resamples: int = 1000


@dataclass(frozen=True)
class Identity:
    model: str
    adapter: str | None


@dataclass
class Samples:
    """One samples file: per-document scores of one (model, adapter) on one task."""

    source: str
    task: str
    cell: tuple  # (model, learner, trained_on, evaluated_on, condition, seed)
    sha256: str
    uids: list[str] = field(default_factory=list)
    scores: dict[str, list[float]] = field(default_factory=dict)
    outputs: list[str] = field(default_factory=list)
    prompts: list[str] = field(default_factory=list)
    targets: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # metrics whose per-document values are not numbers

    @property
    def key(self) -> str:
        return hashlib.sha256(json.dumps(["lm-eval-samples", *self.cell, self.sha256]).encode()).hexdigest()[:16]

    def evaluation(self) -> dict[str, Any]:
        """The native evaluation.json shape, with where it came from."""
        return {"task": self.task, "split": "lm-eval", "uids": self.uids, "scores": self.scores,
                "outputs": self.outputs, "weights": {}, "prompts": self.prompts, "targets": self.targets,
                "source": {"tool": "lm-evaluation-harness", "file": self.source, "sha256": self.sha256,
                           "cell": list(self.cell)}}


def metric_name(metric: str, filter_name: str) -> str:
    return metric if filter_name in ("none", "") else f"{metric},{filter_name}"


def model_args(value: Any) -> dict[str, str]:
    """config.model_args, a "k=v,k=v" string or a dict, as a dict of strings."""
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items() if v is not None}
    if not isinstance(value, str):
        return {}
    pairs = (part.split("=", 1) for part in value.split(",") if "=" in part)
    return {k.strip(): v.strip() for k, v in pairs}


def identity_of(data: dict[str, Any], where: str, labels: Labels) -> Identity:
    """Model and adapter of a results JSON (config.model_args), or the command line's."""
    config = data.get("config") if isinstance(data.get("config"), dict) else {}
    args = model_args(config.get("model_args"))
    model = next((args[k] for k in MODEL_KEYS if args.get(k)), None) or config.get("model_name")
    adapter = next((args[k] for k in ADAPTER_KEYS if args.get(k)), None) or labels.adapter
    model = labels.model or model
    if not model:
        raise TransferlabError(f"{where}: config.model_args names no model (pretrained=...): give --model")
    return Identity(str(model), adapter)


def cell_of(identity: Identity, task: str, labels: Labels) -> tuple:
    if identity.adapter is None:
        return identity.model, NONE, NONE, task, "baseline", labels.seed
    trained = labels.trained_on or Path(identity.adapter.rstrip("/")).name or identity.adapter
    return identity.model, labels.learner, trained, task, "direct" if trained == task else "transfer", labels.seed


def _load_json(path: Path) -> Any:
    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [k for k, _ in items]
        repeated = sorted({k for k in keys if keys.count(k) > 1})
        if repeated:
            raise refuse(path.name, f"the key {repeated[0]!r} appears twice in one object")
        return dict(items)

    try:
        return json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=pairs)
    except ValueError as err:
        raise TransferlabError(f"{path.name}: not valid JSON ({err})") from None
    except RecursionError:
        raise TransferlabError(f"{path.name}: not valid JSON for lm-eval (nested too deeply)") from None


def read_results_json(path: Path, labels: Labels) -> list[ResultRow]:
    """One row per task and metric of an lm-eval 0.4 results JSON."""
    data = _load_json(path)
    results = data.get("results") if isinstance(data, dict) else None
    if not isinstance(results, dict):
        raise TransferlabError(f"{path.name}: no `results` object: not an lm-eval results JSON")
    metric_keys = [k for m in results.values() if isinstance(m, dict) for k in m if "," in k]
    if results and not metric_keys:
        raise TransferlabError(f"{path.name}: metric keys without ',<filter>' (lm-eval 0.3?): transferlab reads the "
                               "0.4 format, results.<task>.\"<metric>,<filter>\"")
    identity = identity_of(data, path.name, labels)
    rows = []
    for task, metrics in results.items():
        if not isinstance(metrics, dict):
            continue
        where = f"{path.name} results.{task}"
        n = _count(data, task, metrics, where)
        for key, value in metrics.items():
            if "," not in key or "_stderr," in key or isinstance(value, (str, list, dict)) or value is None:
                continue  # alias, sample_len, and aggregations lm-eval left blank
            metric, filter_name = key.split(",", 1)
            estimate = number(value, f'"{key}"', where)
            stderr = metrics.get(f"{metric}_stderr,{filter_name}")
            spread = None if isinstance(stderr, str) or stderr is None else number(stderr, f"{metric}_stderr", where)
            low, high = (None, None) if spread is None else (estimate - Z95 * spread, estimate + Z95 * spread)
            rows.append(ResultRow(*cell_of(identity, task, labels), metric_name(metric, filter_name), estimate, n,
                                  low, high))
    return rows


def _count(data: dict[str, Any], task: str, metrics: dict[str, Any], where: str) -> int:
    """Documents behind a task's metrics: n-samples (effective, after --limit), else a
    group's sum over its subtasks, else sample_len."""
    counts = data.get("n-samples") if isinstance(data.get("n-samples"), dict) else {}
    entry = counts.get(task)
    if isinstance(entry, dict) and entry.get("effective", entry.get("original")) is not None:
        return integer(entry.get("effective", entry.get("original")), "n-samples", where)
    subtasks = (data.get("group_subtasks") or {}).get(task) or []
    if subtasks and all(isinstance(counts.get(s), dict) for s in subtasks):
        return sum(integer(counts[s].get("effective", counts[s].get("original")), "n-samples", where)
                   for s in subtasks)
    if metrics.get("sample_len") is not None:
        return integer(metrics["sample_len"], "sample_len", where)
    raise refuse(where, "no n-samples entry says how many documents it scored (lm-eval 0.4 writes one per task)")


def sibling_results(path: Path) -> Path | None:
    """The results JSON lm-eval wrote in the same run as a samples file (same directory and date)."""
    match = SAMPLES_NAME.fullmatch(path.name)
    if match is None:
        return None
    beside = path.with_name(f"results_{match['date']}.json")
    return beside if beside.exists() else None


def read_samples(path: Path, labels: Labels) -> Samples:
    """A samples JSONL, checked line by line: integer doc_id, finite metric values, one record
    per (doc_id, filter), every metric on every document."""
    match = SAMPLES_NAME.fullmatch(path.name)
    task = match["task"] if match else path.stem.removeprefix("samples_")
    beside = sibling_results(path)
    if beside is not None:
        identity = identity_of(_load_json(beside), beside.name, labels)
    elif labels.model:
        identity = Identity(labels.model, labels.adapter)
    else:
        raise TransferlabError(f"{path.name}: no results_<date>.json of the same lm-eval run beside it says which "
                               "model wrote it: give --model (and --adapter for an adapter's samples)")
    raw = path.read_bytes()
    samples = Samples(path.name, task, cell_of(identity, task, labels), hashlib.sha256(raw).hexdigest())
    per_metric: dict[str, dict[int, float]] = {}
    shown: dict[int, tuple[str, str, str]] = {}  # doc_id -> (output, prompt, target) of its first filter
    seen: list[tuple[tuple, str]] = []
    skipped: set[str] = set()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise refuse(path.name, f"not UTF-8 text (byte {err.start})") from None
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path.name} line {line_no}"
        try:
            record = json.loads(line)
        except (ValueError, RecursionError) as err:
            raise refuse(where, f"not a JSON record ({'nested too deeply' if isinstance(err, RecursionError) else err})") from None
        if not isinstance(record, dict) or "doc_id" not in record:
            raise refuse(where, "a record without doc_id: not an lm-eval samples line")
        doc = integer(record["doc_id"], "doc_id", where)
        filter_name = str(record.get("filter", "none"))
        seen.append(((doc, filter_name), f"line {line_no}"))
        names = record.get("metrics") if isinstance(record.get("metrics"), list) else [
            k for k, v in record.items() if k not in BOOKKEEPING and isinstance(v, (int, float))]
        for name in names:
            value = record.get(name)
            if isinstance(value, bool):
                value = float(value)
            if not isinstance(value, (int, float)):
                skipped.add(str(name))  # e.g. bleu's (reference, prediction) pairs: a corpus-level metric
                continue
            per_metric.setdefault(metric_name(str(name), filter_name), {})[doc] = number(value, str(name), where)
        shown.setdefault(doc, (_output(record.get("filtered_resps")), _prompt(record.get("arguments")),
                               str(record.get("target", ""))))
    unique(seen, "doc_id and filter", path.name)
    if not per_metric:
        raise TransferlabError(f"{path.name}: no per-document metric values (acc, exact_match, ...) to import")
    docs = sorted(shown)
    for name, values in per_metric.items():
        if len(values) != len(docs):
            missing = next(d for d in docs if d not in values)
            raise refuse(path.name, f"metric {name} is missing on doc_id {missing}: every document needs every metric")
    samples.uids = [str(d) for d in docs]
    samples.scores = {name: [values[d] for d in docs] for name, values in sorted(per_metric.items())}
    samples.outputs, samples.prompts, samples.targets = (list(column) for column in zip(*(shown[d] for d in docs)))
    samples.skipped = sorted(skipped)
    return samples


def _output(filtered: Any) -> str:
    """What the model answered: the generated text, or the highest-scoring choice's index."""
    if isinstance(filtered, list) and filtered and all(isinstance(c, list) and c for c in filtered):
        try:
            scores = [float(c[0]) for c in filtered]
            return f"choice {scores.index(max(scores))}"
        except (TypeError, ValueError):
            pass
    if isinstance(filtered, list) and filtered and isinstance(filtered[0], str):
        return filtered[0]
    return "" if filtered is None else json.dumps(filtered)[:500]


def _prompt(arguments: Any) -> str:
    """The context of the first request ({"gen_args_0": {"arg_0": ...}} as saved, or [[ctx, ...]])."""
    if isinstance(arguments, dict):
        first = arguments.get("gen_args_0")
        return str(first.get("arg_0", "")) if isinstance(first, dict) else ""
    if isinstance(arguments, list) and arguments and isinstance(arguments[0], list) and arguments[0]:
        return str(arguments[0][0])
    return ""


def store_samples(store: Store, run_dir: Path, batch: list[Samples]) -> list[dict[str, Any]]:
    """Write each samples file as an evaluation artifact and list it in the run's index
    (a cell imported again replaces its entry); returns the whole index."""
    path = run_dir / INDEX
    index = json.loads(path.read_text()) if path.exists() else []
    for samples in batch:
        if not store.has("evaluation", samples.key):
            with store.writing("evaluation", samples.key, meta={"imported": samples.source}) as tmp:
                (tmp / "evaluation.json").write_text(json.dumps(samples.evaluation()))
        index = [e for e in index if e["cell"] != list(samples.cell)]
        index.append({"cell": list(samples.cell), "evaluation": samples.key, "source": samples.source})
    write_json(path, index, indent=1)
    return index


def sample_rows(store: Store, index: list[dict[str, Any]], resamples: int) -> list[ResultRow]:
    """Every imported evaluation's scores, and the paired gains and relative transfer that the
    index's cells allow (the base model's evaluation of the same target and model)."""
    from transferlab.stats import align, bootstrap_mean, paired_difference

    loaded = {e["evaluation"]: store.read_json("evaluation", e["evaluation"], "evaluation.json") for e in index}
    cells = {tuple(e["cell"]): loaded[e["evaluation"]] for e in index}
    rows = []
    for cell, result in cells.items():
        model, learner, trained_on, task, condition, seed = cell
        for metric, scores in result["scores"].items():
            rows.append(_row(cell, metric, bootstrap_mean(scores, resamples, seed=seed)))
        base = _baseline(cells, model, task, seed)
        if condition == "baseline" or base is None:
            continue
        for metric in result["scores"].keys() & base["scores"].keys():
            _, treated, control = align(result["uids"], result["scores"][metric], base["uids"], base["scores"][metric])
            gain = paired_difference(treated, control, resamples, seed)
            rows += [_row(cell, f"gain:{metric}", gain), _row(cell, f"p:gain:{metric}", _p(gain))]
        direct = next((r for c, r in cells.items() if c[:2] == (model, learner) and c[3:] == (task, "direct", seed)),
                      None)
        if condition == "transfer" and direct is not None:
            rows += _relative(cell, result, direct, base, resamples)
    return rows


def _baseline(cells: dict[tuple, dict], model: str, task: str, seed: int) -> dict | None:
    """The base model's evaluation of `task`: the same seed's if imported, else any (the base is untrained)."""
    same = cells.get((model, NONE, NONE, task, "baseline", seed))
    return same or next((r for c, r in cells.items() if c[0] == model and c[3:5] == (task, "baseline")), None)


def _relative(cell: tuple, transfer: dict, direct: dict, base: dict, resamples: int) -> list[ResultRow]:
    """relative:<metric> = (transfer − base) / (direct − base) over the documents all three
    share, NA when the direct gain's CI includes 0 (as the transfer study's summarise rules)."""
    from transferlab.stats import Estimate, paired_difference, paired_ratio

    seed = cell[5]
    rows = []
    for metric in transfer["scores"].keys() & direct["scores"].keys() & base["scores"].keys():
        index = [{u: i for i, u in enumerate(e["uids"])} for e in (direct, base)]
        shared = [i for i, u in enumerate(transfer["uids"]) if all(u in ix for ix in index)]
        t = [transfer["scores"][metric][i] for i in shared]
        d = [direct["scores"][metric][index[0][transfer["uids"][i]]] for i in shared]
        b = [base["scores"][metric][index[1][transfer["uids"][i]]] for i in shared]
        if paired_difference(d, b, resamples, seed).significant:
            gap = paired_ratio([x - y for x, y in zip(t, b)], [x - y for x, y in zip(d, b)], resamples, seed)
        else:
            gap = Estimate(math.nan, len(shared), math.nan, math.nan)
        rows.append(_row(cell, f"relative:{metric}", gap))
    return rows


def _p(gain: Any) -> Any:
    from transferlab.stats import Estimate

    return Estimate(gain.p, gain.n, math.nan, math.nan)


def _row(cell: tuple, metric: str, est: Any) -> ResultRow:
    model, learner, trained_on, task, condition, seed = cell
    return ResultRow(model, learner, trained_on, task, condition, seed, metric, est.value, est.n, est.ci_low,
                     est.ci_high)
