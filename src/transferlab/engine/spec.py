"""What every study's spec parser shares: errors at file:line, field checks, name lists, budgets.

The transfer, probe and translation specs each read their own fields, and report every
problem the same way through these helpers: the file, the line and the field, with the
closest valid name.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import yaml

from transferlab import safe_yaml
from transferlab.constraints import Interval, Text
from transferlab.models import DEVICE, DTYPE
from transferlab.errors import TransferlabError, closest


class SpecError(TransferlabError):
    """A spec problem, located at file:line."""


@dataclass(frozen=True)
class Budgets:
    """How much data and compute each job may use."""

    train_examples: int = 256  # examples of the source's train split used for training (0 = all)
    eval_examples: int = 200  # examples of the target's evaluation split (0 = all)
    max_new_tokens: int = 0  # caps each task's generation length, never raises it (0 = the task's own)
    eval_batch_size: int = 16
    # generation batches also capped at rows x (prompt + new tokens) <= this many tokens, the KV
    # cache's size (0 = rows alone): long prompts then take fewer rows, not more memory
    eval_batch_tokens: int = 0
    # evaluations of one target scored in one pass, the base and adapters together (0 = all, 1 = one at a time)
    eval_adapters_per_pass: int = 16


class Located:
    """Maps a field path like ('learners', 0, 'rank') to its line in the file; `data` is the
    document as `yaml.safe_load` gives it, read once under the limits of `safe_yaml` (size,
    nesting, alias expansion). An alias is not walked again: its fields take the alias's line."""

    def __init__(self, filename: str, text: str):
        self.filename = filename
        self.lines: dict[tuple[Any, ...], int] = {}
        try:
            root, self.data = safe_yaml.load(text, filename)
        except TransferlabError as err:
            raise SpecError(str(err)) from None
        if root is not None:
            self._walk(root, (), set())

    def _walk(self, node: Any, path: tuple[Any, ...], seen: set[int]) -> None:
        self.lines[path] = node.start_mark.line + 1
        if id(node) in seen:  # an alias: the node was walked where its anchor is
            return
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                field = key.value if isinstance(key, yaml.ScalarNode) else id(key)
                self._walk(value, (*path, field), seen)
                self.lines[(*path, field)] = key.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self._walk(item, (*path, i), seen)

    def error(self, path: tuple[Any, ...], message: str) -> SpecError:
        line = self.lines.get(path) or self.lines.get(path[:-1]) or 1
        where = ".".join(str(p) for p in path) or "(top level)"
        return SpecError(f"{self.filename}:{line}: {where}: {message}")


# Top-level fields of every study's spec that say how it runs, not what it computes: the engine reads
# them (`executor:`, engine.executors), so they are in no job's key and no study parses them.
RUN_FIELDS = {"executor"}


def check_keys(data: dict[str, Any], allowed: set[str], path: tuple[Any, ...], at: Located) -> None:
    if not path:
        allowed = allowed | RUN_FIELDS
    for key in data:
        if key not in allowed:
            near = closest(str(key), allowed)
            hint = f"did you mean {near[0]!r}?" if near else f"valid fields: {', '.join(sorted(allowed))}"
            raise at.error((*path, key), f"unknown field {key!r}: {hint}")


def name_list(value: Any, path: tuple[Any, ...], at: Located) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value) or not value:
        raise at.error(path, "expected a non-empty list of names")
    return tuple(value)


def register_task_files(files: tuple[str, ...], at: Located) -> None:
    from transferlab.tasks.yaml_task import register_task_file

    for i, f in enumerate(files):
        try:
            register_task_file(f)
        except TransferlabError as err:
            raise at.error(("task_files", i), str(err)) from None


def check_tasks(names: tuple[str, ...], path: tuple[Any, ...], at: Located) -> None:
    from transferlab.tasks import get_task

    for i, name in enumerate(names):
        try:
            get_task(name)
        except TransferlabError as err:
            raise at.error((*path, i), str(err)) from None


def check_models(names: tuple[str, ...], at: Located) -> None:
    from transferlab.models import resolve

    for i, name in enumerate(names):
        try:
            resolve(name)
        except TransferlabError as err:
            raise at.error(("models", i), str(err)) from None


def coerce_numbers(item: dict[str, Any], config_class: type) -> dict[str, Any]:
    """YAML 1.1 reads `2e-4` as a string; accept it as the number the user meant."""
    defaults = {f.name: f.default for f in dataclasses.fields(config_class)}
    out = dict(item)
    for key, value in item.items():
        if isinstance(defaults.get(key), float) and isinstance(value, str):
            try:
                out[key] = float(value)
            except ValueError:
                pass
    return out




def checked(data: dict[str, Any], constraints: dict[str, Any], at: Located,
            path: tuple[Any, ...] = ()) -> dict[str, Any]:
    """`data` with each field `constraints` declares (`transferlab.constraints`) checked and
    normalised; the first bad one is an error at its line."""
    out = dict(data)
    for key, constraint in constraints.items():
        if key in data:
            try:
                out[key] = constraint.normalise(key, data[key])
            except TransferlabError as err:
                raise at.error((*path, key), str(err)) from None
    return out


def config_from(config_class: type, item: dict[str, Any], path: tuple[Any, ...], at: Located) -> Any:
    """A training config built from a spec's mapping: unknown keys and bad values are errors at
    their line (an error that names one field, e.g. "rank must be ...", points at that field)."""
    check_keys(item, {f.name for f in dataclasses.fields(config_class)}, path, at)
    item = coerce_numbers(item, config_class)
    try:
        return config_class(**item)
    except (TransferlabError, TypeError) as err:
        named = next((k for k in item if str(err).startswith(f"{k} ")), None)
        raise at.error((*path, named) if named else path, str(err)) from None


# The fields every study's spec shares, with their declared types and bounds.
COMMON_FIELDS: dict[str, Any] = {"name": Text(empty=False), "output": Text(empty=False), "artifacts": Text(empty=False),
                                 "bootstrap": Interval(int, 1, 100_000), "device": DEVICE, "dtype": DTYPE}


def parse_budgets(data: Any, at: Located) -> Budgets:
    """The `budgets:` mapping: each a non-negative integer (0 = all / the task's own), eval_batch_size >= 1."""
    data = data or {}
    if not isinstance(data, dict):
        raise at.error(("budgets",), "expected a mapping such as {train_examples: 256, eval_examples: 200}")
    check_keys(data, {f.name for f in dataclasses.fields(Budgets)}, ("budgets",), at)
    for key, value in data.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise at.error(("budgets", key), f"expected a non-negative integer, got {value!r}")
    if data.get("eval_batch_size") == 0:
        raise at.error(("budgets", "eval_batch_size"), "expected a positive integer, got 0")
    return Budgets(**data)
