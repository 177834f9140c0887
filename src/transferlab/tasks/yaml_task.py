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
    chat_template: auto                   # optional, as start_token: on | off | auto (docs/prompts.md)
    separator: " "                        # optional: the text between context and answer (default: auto)

Templates are Jinja, as in lm-evaluation-harness, rendered sandboxed with limits on size and time
(`tasks.templates`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from transferlab import safe_yaml
from transferlab.constraints import Interval, Many, Matches, Names, Options, Text, validate
from transferlab.errors import TransferlabError, closest, missing_package
from transferlab.tasks.base import Example, Task, stable_hash
from transferlab.tasks.registry import TASKS, task_names
from transferlab.tasks.templates import BoundedTemplate

FIELDS = {"name", "domain", "description", "output_type", "source", "prompt", "target", "choices", "choices_field",
          "answer", "metrics", "system_prompt", "num_fewshot", "max_new_tokens", "stop", "version", "id_field",
          "split_fractions", "chance", "chat_template", "start_token", "separator"}
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


# The declared type and bounds of each field (`transferlab.constraints`); a task file is
# checked whole when it is read, its data when the task loads.
CONSTRAINTS: dict[str, Any] = {
    "name": Matches(r"[A-Za-z0-9_.\-]+", "a task name (letters, digits, _ . -)"), "domain": Text(empty=False),
    "description": Text(), "output_type": Options(("multiple_choice", "generate")), "prompt": Text(empty=False),
    "target": Text(), "choices_field": Text(empty=False), "answer": Text(empty=False), "id_field": Text(empty=False),
    "metrics": Names(), "system_prompt": Text(), "num_fewshot": Interval(int, 0, 64),
    "max_new_tokens": Interval(int, 1, 32768), "stop": Names(pattern=None), "version": Interval(int, 0),
    "split_fractions": Many(Interval(float, 0, 1)), "chance": Interval(float, 0, 1)}
SOURCE_KEYS = {"path": ("path",), "hub": ("hub", "name", "split"), "load_from_disk": ("load_from_disk", "split")}


class YamlTask(Task):
    """A task defined entirely by a YAML file."""

    def __init__(self, config: dict[str, Any], origin: Path):
        unknown = [k for k in config if k not in FIELDS]
        if unknown:
            near = closest(str(unknown[0]), FIELDS)
            raise TransferlabError(f"{origin}: unknown field {unknown[0]!r}" +
                                   (f": did you mean {near[0]!r}?" if near else f": valid fields: {', '.join(sorted(FIELDS))}"))
        for required in ("name", "source", "prompt"):
            if required not in config:
                raise TransferlabError(f"{origin}: missing required field {required!r}")
        try:
            config = validate(config, CONSTRAINTS)
        except TransferlabError as err:
            raise TransferlabError(f"{origin}: {err}") from None
        self.config, self.origin = config, origin
        self.name = config["name"]
        self.domain = config.get("domain", "general")
        self.description = config.get("description", f"user task from {origin.name}")
        self.output_type = config.get("output_type", "multiple_choice")  # type: ignore[misc]
        self.version = config.get("version", 1)
        self.system_prompt = config.get("system_prompt")
        self.num_fewshot = config.get("num_fewshot", 0)
        self.max_new_tokens = config.get("max_new_tokens", 64)
        self.stop = config.get("stop", ())
        if "chance" in config:
            self.chance = float(config["chance"])
        self._set_prompt_options(config, origin)
        if "split_fractions" in config:
            fractions = config["split_fractions"]
            if len(fractions) != 3 or abs(sum(fractions) - 1) > 1e-6:
                raise TransferlabError(f"{origin}: split_fractions must be three shares (train, dev, test) that add "
                                       f"up to 1, got {list(fractions)}")
            self.split_fractions = tuple(float(f) for f in fractions)  # type: ignore[assignment]
        if self.output_type == "generate":
            self.metrics = config.get("metrics", ("exact_match",))
            bad = [m for m in self.metrics if m not in GEN_METRICS]
            if bad:
                raise TransferlabError(f"{origin}: unknown metric {bad[0]!r}: valid: {', '.join(GEN_METRICS)}")
            self.primary_metric = self.metrics[0]
        elif "choices" not in config and "choices_field" not in config:
            raise TransferlabError(f"{origin}: a multiple_choice task needs `choices` or `choices_field`")
        elif "choices" in config:
            _check_choices(config["choices"], f"{origin}: choices")
        _check_source(config["source"], origin)
        self._prompt = BoundedTemplate(config["prompt"], "prompt", origin)
        self._target = BoundedTemplate(config["target"], "target", origin) if "target" in config else None

    def _set_prompt_options(self, config: dict[str, Any], origin: Path) -> None:
        """chat_template, start_token (on / off / auto) and separator, checked as `PromptOptions` checks them."""
        from transferlab.tasks.prompts import OPTION_FIELDS, PromptOptions

        try:
            options = PromptOptions.from_json({k: config[k] for k in OPTION_FIELDS if k in config})
        except TransferlabError as err:
            raise TransferlabError(f"{origin}: {err}") from None
        self.chat_template, self.start_token, self.separator = (
            options.chat_template, options.start_token, options.separator)

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
        seen: dict[str, int] = {}
        for number, row in enumerate(self._rows(), start=1):
            where = f" (row {number})"
            prompt = self._prompt.render(row, where)
            choices: tuple[str, ...] = ()
            answer = None
            if self.output_type == "multiple_choice":
                if "choices_field" in self.config:
                    raw = self._field(row, self.config["choices_field"], number)
                    _check_choices(raw, f"task {self.name!r} row {number}: {self.config['choices_field']}")
                else:
                    raw = self.config["choices"]
                choices = tuple(str(c) for c in raw)
                answer = self._answer_index(row, choices)
            target = self._target.render(row, where) if self._target else (choices[answer] if answer is not None else "")
            uid = str(self._field(row, id_field, number)) if id_field else stable_hash(prompt, choices, target)
            if id_field and uid in seen:
                raise TransferlabError(f"task {self.name!r}: rows {seen[uid]} and {number} have the same {id_field} "
                                       f"{uid!r}: ids must be unique")
            seen[uid] = number
            examples.append(Example(uid=uid, prompt=prompt, target=target, choices=choices, answer=answer))
        if not examples:
            raise TransferlabError(f"task {self.name!r}: its source has no rows")
        return examples

    def _field(self, row: dict[str, Any], name: str, number: int) -> Any:
        if name not in row:
            raise TransferlabError(f"task {self.name!r}: row {number} has no field {name!r} (fields: {', '.join(map(str, row))})")
        return row[name]

    def _answer_index(self, row: dict[str, Any], choices: tuple[str, ...]) -> int:
        field = self.config.get("answer", "answer")
        if field not in row:
            raise TransferlabError(f"task {self.name!r}: rows have no field {field!r} for the answer "
                                   f"(fields: {', '.join(row)})")
        value = row[field]
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value == int(value) \
                and 0 <= int(value) < len(choices):
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
    if not path.is_file():  # a directory, a device, a pipe: nothing a table is read from
        raise TransferlabError(f"data file {path} is not a regular file")
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


def _check_choices(value: Any, where: str) -> None:
    if not isinstance(value, (list, tuple)) or len(value) < 2 or \
            not all(isinstance(c, (str, int, float)) and not isinstance(c, bool) for c in value):
        raise TransferlabError(f"{where} must be a list of at least two answers, got {value!r}")
    if len({str(c) for c in value}) != len(value):
        raise TransferlabError(f"{where} lists an answer twice: {list(value)}")


def _check_source(source: Any, origin: Path) -> None:
    if isinstance(source, str) and source:
        return
    kinds = [k for k in SOURCE_KEYS if isinstance(source, dict) and k in source]
    if len(kinds) != 1:
        raise TransferlabError(f"{origin}: source must be a file path or a mapping with one of "
                               f"{', '.join(SOURCE_KEYS)}, got {source!r}")
    for key, value in source.items():
        if key not in SOURCE_KEYS[kinds[0]]:
            raise TransferlabError(f"{origin}: source.{key}: not a field of a {kinds[0]} source "
                                   f"(fields: {', '.join(SOURCE_KEYS[kinds[0]])})")
        if not isinstance(value, str) or not value:
            raise TransferlabError(f"{origin}: source.{key} must be a non-empty string, got {value!r}")


def load_task_file(path: str | Path) -> YamlTask:
    path = Path(path).resolve()
    text = safe_yaml.read_text(path, "task file")
    config = safe_yaml.load(text, str(path))[1]
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
