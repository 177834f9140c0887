"""User tasks without code: a YAML file over local JSONL / CSV / Parquet or a `datasets` source.

    name: my-sentiment
    domain: sentiment
    output_type: multiple_choice          # or: generate
    source: {path: reviews.jsonl}         # or {hub: imdb, split: test} or {load_from_disk: ./saved, split: test}
    prompt: "Review: {{ text }}\\nIs the review positive or negative?"
    choices: [negative, positive]         # or choices_field: options
    answer: label                         # field with the answer index or the answer text
    target: "{{ answer_text }}"           # optional; defaults to the correct choice
    metrics: [exact_match]                # generate only: exact_match | contains | numeric

Templates are Jinja (sandboxed), as in lm-evaluation-harness.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from transferlab.errors import TransferlabError, closest, missing_package
from transferlab.tasks.base import Example, Task, stable_hash
from transferlab.tasks.registry import TASKS, task_names

FIELDS = {"name", "domain", "description", "output_type", "source", "prompt", "target", "choices", "choices_field",
          "answer", "metrics", "system_prompt", "num_fewshot", "max_new_tokens", "stop", "version", "id_field",
          "split_fractions", "chance"}
GEN_METRICS = ("exact_match", "contains", "numeric")
_registered: dict[str, str] = {}


def _normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().strip(".").lower()


def _last_number(text: str) -> float | None:
    found = re.findall(r"-?\d[\d,]*\.?\d*", text)
    if not found:
        return None
    try:
        return float(found[-1].replace(",", "").rstrip("."))
    except ValueError:
        return None


class YamlTask(Task):
    """A task defined entirely by a YAML file."""

    def __init__(self, config: dict[str, Any], origin: Path):
        from jinja2.sandbox import SandboxedEnvironment

        unknown = [k for k in config if k not in FIELDS]
        if unknown:
            near = closest(unknown[0], FIELDS)
            raise TransferlabError(f"{origin}: unknown field {unknown[0]!r}" +
                                   (f": did you mean {near[0]!r}?" if near else f": valid fields: {', '.join(sorted(FIELDS))}"))
        for required in ("name", "source", "prompt"):
            if required not in config:
                raise TransferlabError(f"{origin}: missing required field {required!r}")
        self.config, self.origin = config, origin
        self.name = str(config["name"])
        self.domain = str(config.get("domain", "general"))
        self.description = str(config.get("description", f"user task from {origin.name}"))
        self.output_type = config.get("output_type", "multiple_choice")  # type: ignore[misc]
        if self.output_type not in ("multiple_choice", "generate"):
            raise TransferlabError(f"{origin}: output_type must be multiple_choice or generate, got {self.output_type!r}")
        self.version = int(config.get("version", 1))
        self.system_prompt = config.get("system_prompt")
        self.num_fewshot = int(config.get("num_fewshot", 0))
        self.max_new_tokens = int(config.get("max_new_tokens", 64))
        self.stop = tuple(config.get("stop", ()))
        if "chance" in config:
            self.chance = float(config["chance"])
            if not 0 <= self.chance <= 1:
                raise TransferlabError(f"{origin}: chance must be a score between 0 and 1, got {self.chance}")
        if "split_fractions" in config:
            self.split_fractions = tuple(config["split_fractions"])  # type: ignore[assignment]
        if self.output_type == "generate":
            self.metrics = tuple(config.get("metrics", ["exact_match"]))
            bad = [m for m in self.metrics if m not in GEN_METRICS]
            if bad:
                raise TransferlabError(f"{origin}: unknown metric {bad[0]!r}: valid: {', '.join(GEN_METRICS)}")
            self.primary_metric = self.metrics[0]
        elif "choices" not in config and "choices_field" not in config:
            raise TransferlabError(f"{origin}: a multiple_choice task needs `choices` or `choices_field`")
        env = SandboxedEnvironment(keep_trailing_newline=False)
        self._prompt = env.from_string(str(config["prompt"]))
        self._target = env.from_string(str(config["target"])) if "target" in config else None

    def _rows(self) -> list[dict[str, Any]]:
        source = self.config["source"]
        if isinstance(source, str):
            source = {"path": source}
        try:
            if "path" in source:
                return _read_local(self.origin.parent / source["path"])
            if "load_from_disk" in source or "hub" in source:
                return _read_datasets(source, self.origin.parent)
        except TransferlabError:
            raise
        except Exception as err:  # a broken file: name it, the run reports it in its audit
            raise TransferlabError(f"task {self.name!r}: cannot read its data: {type(err).__name__}: {err}") from None
        raise TransferlabError(f"{self.origin}: source needs one of path, hub, load_from_disk")

    def load(self) -> list[Example]:
        examples = []
        id_field = self.config.get("id_field")
        for row in self._rows():
            prompt = self._prompt.render(**row)
            choices: tuple[str, ...] = ()
            answer = None
            if self.output_type == "multiple_choice":
                raw = row[self.config["choices_field"]] if "choices_field" in self.config else self.config["choices"]
                choices = tuple(str(c) for c in raw)
                answer = self._answer_index(row, choices)
            target = self._target.render(**row) if self._target else (choices[answer] if answer is not None else "")
            uid = str(row[id_field]) if id_field else stable_hash(prompt, choices, target)
            examples.append(Example(uid=uid, prompt=prompt, target=target, choices=choices, answer=answer))
        if not examples:
            raise TransferlabError(f"task {self.name!r}: its source has no rows")
        return examples

    def _answer_index(self, row: dict[str, Any], choices: tuple[str, ...]) -> int:
        field = self.config.get("answer", "answer")
        if field not in row:
            raise TransferlabError(f"task {self.name!r}: rows have no field {field!r} for the answer "
                                   f"(fields: {', '.join(row)})")
        value = row[field]
        if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= int(value) < len(choices):
            return int(value)
        if str(value) in choices:
            return choices.index(str(value))
        raise TransferlabError(f"task {self.name!r}: answer {value!r} is neither an index nor one of {list(choices)}")

    def score(self, example: Example, completion: str) -> dict[str, float]:
        out = {}
        for metric in self.metrics:
            if metric == "exact_match":
                out[metric] = float(_normalise(completion) == _normalise(example.target))
            elif metric == "contains":
                out[metric] = float(_normalise(example.target) in _normalise(completion))
            else:
                got, want = _last_number(completion), _last_number(example.target)
                out[metric] = float(got is not None and want is not None and abs(got - want) < 1e-6)
        return out


def _read_local(path: Path) -> list[dict[str, Any]]:
    import pandas as pd

    if not path.exists():
        raise TransferlabError(f"data file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json"):
        frame = pd.read_json(path, lines=suffix == ".jsonl")
    elif suffix == ".csv":
        frame = pd.read_csv(path)
    elif suffix == ".parquet":
        frame = pd.read_parquet(path)
    else:
        raise TransferlabError(f"cannot read {path.name}: use .jsonl, .json, .csv or .parquet")
    return frame.to_dict("records")


def _read_datasets(source: dict[str, Any], base: Path) -> list[dict[str, Any]]:
    try:
        import datasets
    except ImportError:
        raise missing_package("datasets", "a hub or load_from_disk task source", "pip install 'transferlab[hub]'") from None
    split = source.get("split")
    if "load_from_disk" in source:
        loaded = datasets.load_from_disk(str(base / source["load_from_disk"]))
    else:
        loaded = datasets.load_dataset(source["hub"], source.get("name"), split=split)
    if isinstance(loaded, datasets.DatasetDict):
        if split is None:
            raise TransferlabError(f"dataset has splits {list(loaded)}: set source.split to one of them")
        loaded = loaded[split]
    return list(loaded)


def load_task_file(path: str | Path) -> YamlTask:
    path = Path(path).resolve()
    if not path.exists():
        raise TransferlabError(f"task file {path} does not exist")
    try:
        config = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise TransferlabError(f"task file {path} is not valid YAML: {err}") from None
    if not isinstance(config, dict):
        raise TransferlabError(f"task file {path} must be a mapping of fields")
    return YamlTask(config, path)


def register_task_file(path: str | Path) -> str:
    """Register a YAML task under its name (idempotent for the same file); returns the name."""
    task = load_task_file(path)
    origin = str(task.origin)
    if _registered.get(task.name) == origin:
        return task.name
    if task.name in task_names():
        raise TransferlabError(f"task name {task.name!r} from {origin} is already taken: rename it")
    TASKS.add(task.name, lambda: task)
    _registered[task.name] = origin
    return task.name
