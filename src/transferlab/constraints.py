"""Declared types and bounds of hyper-parameters, checked in one place.

As scikit-learn's `_parameter_constraints`: a config class declares what each field takes,

    PARAMS: ClassVar = {"rank": Interval(int, 1, 4096), "dropout": Interval(float, 0, 1, closed="left"),
                        "target_modules": Names(), "normalize_advantages": Flag()}

and its `__post_init__` calls `check_params(self, self.PARAMS)`. A value of the wrong type is
refused, never coerced (8.5 is not a rank, "no" is not a boolean, NaN is not a learning rate);
a single name where a list of names is expected becomes a one-element tuple, never its letters.
Each error starts with the field's name, so a spec parser can point at that field's line.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from transferlab.errors import TransferlabError


@dataclass(frozen=True)
class Interval:
    """An integer (`int`) or a finite number (`float`, which takes integers too) within bounds."""

    type: type
    low: float | None = None
    high: float | None = None
    closed: str = "both"  # which bounds are allowed values: both, left, right, neither

    def describe(self) -> str:
        kind = "an integer" if self.type is int else "a number"
        low, high = _shown(self.low), _shown(self.high)
        left, right = self.closed in ("both", "left"), self.closed in ("both", "right")
        if self.low is not None and self.high is not None:
            return f"{kind} in {'[' if left else '('}{low}, {high}{']' if right else ')'}"
        if self.low is not None:
            return f"{kind} {'>=' if left else '>'} {low}"
        if self.high is not None:
            return f"{kind} {'<=' if right else '<'} {high}"
        return kind

    def accepts(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float) if self.type is float else int):
            return False
        if not math.isfinite(value):
            return False
        left, right = self.closed in ("both", "left"), self.closed in ("both", "right")
        if self.low is not None and (value < self.low or (value == self.low and not left)):
            return False
        return not (self.high is not None and (value > self.high or (value == self.high and not right)))

    def normalise(self, name: str, value: Any) -> Any:
        if not self.accepts(value):
            raise TransferlabError(f"{name} must be {self.describe()}, got {value!r}")
        return value


def _shown(bound: float | None) -> str:
    """A bound as people write it: 4096, 100,000, 0.5."""
    if bound is None:
        return ""
    if not float(bound).is_integer():
        return f"{bound:g}"
    return f"{int(bound):,}" if abs(bound) >= 10_000 else str(int(bound))


@dataclass(frozen=True)
class Flag:
    """true or false (not the strings 'yes' / 'no', not 0 / 1)."""

    def normalise(self, name: str, value: Any) -> Any:
        if not isinstance(value, bool):
            raise TransferlabError(f"{name} must be true or false, got {value!r}")
        return value


@dataclass(frozen=True)
class Options:
    """One of a fixed set of strings."""

    values: tuple[str, ...]

    def normalise(self, name: str, value: Any) -> Any:
        if value not in self.values:
            from transferlab.errors import closest

            near = closest(str(value), self.values)
            hint = f": did you mean {near[0]!r}?" if near else ""
            raise TransferlabError(f"{name} must be one of {', '.join(self.values)}, got {value!r}{hint}")
        return value


@dataclass(frozen=True)
class Text:
    """A string (a non-empty one unless `empty`)."""

    empty: bool = True

    def normalise(self, name: str, value: Any) -> Any:
        if not isinstance(value, str) or (not self.empty and not value.strip()):
            raise TransferlabError(f"{name} must be {'a' if self.empty else 'a non-empty'} string, got {value!r}")
        return value


@dataclass(frozen=True)
class Matches:
    """A string matching a pattern, e.g. a device name (cpu, cuda, cuda:1)."""

    pattern: str
    description: str

    def normalise(self, name: str, value: Any) -> Any:
        if not isinstance(value, str) or not re.fullmatch(self.pattern, value):
            raise TransferlabError(f"{name} must be {self.description}, got {value!r}")
        return value


NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")


@dataclass(frozen=True)
class Names:
    """A non-empty list of names (module names, task names...): one name is a one-element tuple.
    With `empty`, an empty list (or nothing) is allowed too."""

    pattern: re.Pattern[str] | None = NAME  # None: any non-empty string (stop sequences)
    empty: bool = False

    def normalise(self, name: str, value: Any) -> tuple[str, ...]:
        if self.empty and value in (None, [], ()):
            return ()
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)) or not items or not all(isinstance(v, str) for v in items):
            raise TransferlabError(f"{name} must be a name or a non-empty list of names, got {value!r}")
        for item in items:
            if not item or (self.pattern is not None and not self.pattern.match(item)):
                hint = ": write a list, e.g. [q_proj, v_proj]" if "," in item else ""
                raise TransferlabError(f"{name} must be a list of names, got {item!r}{hint}")
        return tuple(items)


@dataclass(frozen=True)
class Many:
    """A non-empty list of values, each meeting `item` (e.g. the weight decays a search tries)."""

    item: Interval

    def normalise(self, name: str, value: Any) -> tuple[Any, ...]:
        if not isinstance(value, (list, tuple)) or not value or not all(self.item.accepts(v) for v in value):
            raise TransferlabError(f"{name} must be a non-empty list, each {self.item.describe()}, got {value!r}")
        return tuple(value)


Constraint = Interval | Flag | Options | Text | Names | Matches | Many


def validate(values: Mapping[str, Any], constraints: Mapping[str, Constraint]) -> dict[str, Any]:
    """`values` with each constrained one checked and normalised (in the order of `values`)."""
    return {k: constraints[k].normalise(k, v) if k in constraints else v for k, v in values.items()}


def check_params(config: Any, constraints: Mapping[str, Constraint]) -> None:
    """Check a (frozen) dataclass's fields against `constraints` and store the normalised values."""
    for name, constraint in constraints.items():
        value = getattr(config, name)
        normalised = constraint.normalise(name, value)
        if normalised is not value:
            object.__setattr__(config, name, normalised)
