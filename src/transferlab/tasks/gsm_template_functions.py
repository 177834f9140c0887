"""The functions template expressions may call, and how sampled values become numbers and text.

This is the whitelist the expression compiler's `Scope` is filled with: pure helpers
(`is_int`, `plural`, `Fraction`...) and the samplers (`range`, `arange`, `sample`...)
that give an init line's candidate values. `parse_value` and `show` convert between a
sampled value (often a string from the template's data) and the number or text that
expressions compute with and questions display.
"""
from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from decimal import Decimal
from fractions import Fraction
from random import Random
from typing import Any

from transferlab.tasks.gsm_expressions import TemplateError
from transferlab.tasks.gsm_text import ascii_digits

# The functions templates may call. Sampling functions come in two forms, as in the package:
# "candidates" (every value an init line can take, to sample from) and, for lines that
# depend on other variables, a "pick" form that draws one value with the variant's rng.

_MAX_CANDIDATES = 1_000_000


def is_int(value: Any) -> bool:
    if isinstance(value, Fraction):
        return value.denominator == 1
    if isinstance(value, float):
        return math.isfinite(value) and abs(value - round(value)) < 1e-6
    return isinstance(value, int)


def divides(a: Any, b: Any) -> bool:
    """True when `b` divides `a` (the package's argument order)."""
    return b != 0 and a % b == 0


def ensure_int(value: Any) -> int:
    if not is_int(value):
        raise TemplateError(f"{value!r} is not a whole number")
    return round(value)


def fraction_text(value: Any) -> str:
    """`Fraction(x)` in templates: a float written as the fraction it is (`0.25` -> `1/4`)."""
    if isinstance(value, float):
        value = Fraction(value).limit_denominator()
    if isinstance(value, Fraction):
        return str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"
    return str(value)


def plural(n: Any, *forms: str) -> str:
    """The word form agreeing with `n`: (singular, plural) or Slavic (one, few, many)."""
    if len(forms) == 2:
        return forms[0] if abs(n) == 1 else forms[1]
    if len(forms) == 3:
        m = abs(int(n))
        if m % 10 == 1 and m % 100 != 11:
            return forms[0]
        if m % 10 in (2, 3, 4) and m % 100 not in (12, 13, 14):
            return forms[1]
        return forms[2]
    raise TemplateError(f"plural() takes 2 or 3 forms, got {len(forms)}")


def _ukr_weekday_to_when(weekday: str) -> str:
    """Ukrainian "on <weekday>": the accusative of the feminine weekdays."""
    accusative = {"середа": "середу", "п’ятниця": "п’ятницю", "субота": "суботу", "неділя": "неділю"}
    return accusative.get(weekday, weekday)


def _int_arg(value: Any) -> int:
    if isinstance(value, bool) or not is_int(value):
        raise TemplateError(f"expected a whole number, got {value!r}")
    return round(value)


def _checked(values: list[Any]) -> list[Any]:
    if not values:
        raise TemplateError("empty sampling range")
    if len(values) > _MAX_CANDIDATES:
        raise TemplateError(f"sampling range of {len(values)} values is too large")
    return values


def range_candidates(start: Any, end: Any, step: Any = 1) -> list[int]:
    """`range(a, b, step)`: end exclusive, as the package's generator enumerates it."""
    start, end, step = _int_arg(start), _int_arg(end), _int_arg(step)
    if step <= 0 or (end - start) // step > _MAX_CANDIDATES:
        raise TemplateError(f"bad range({start}, {end}, {step})")
    return _checked(list(range(start, end, step)))


def arange_candidates(start: Any, end: Any, step: Any = 1) -> list[float]:
    """`arange(a, b, step)`: evenly spaced decimals, both ends included, rounded to the step's precision."""
    start, end, step = float(start), float(end), float(step)
    if step <= 0 or end < start or (end - start) / step > _MAX_CANDIDATES:
        raise TemplateError(f"bad arange({start}, {end}, {step})")
    count = round((end - start) / step) + 1
    decimals = max(0, -Decimal(str(step)).as_tuple().exponent)  # type: ignore[operator]
    spacing = (end - start) / (count - 1) if count > 1 else 0.0
    return _checked([round(start + i * spacing, decimals) for i in range(count)])


def range_str_candidates(start: Any, end: Any, step: Any, words: Sequence[Any]) -> list[tuple[Any, int]]:
    """`range_str(a, b, step, words)`: a number together with its spelled-out word."""
    return _checked([(words[i - 1], i) for i in range_candidates(start, end, step) if 0 < i <= len(words)])


class Combinations(Sequence[tuple[Any, ...]]):
    """Every n-item combination of `items`, in itertools order, computed on access (there may be millions)."""

    def __init__(self, items: Sequence[Any], n: int):
        self.items, self.n = tuple(items), n
        self.size = math.comb(len(self.items), n)

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self.size))]
        index = index + self.size if index < 0 else index
        if not 0 <= index < self.size:
            raise IndexError(index)
        chosen: list[Any] = []
        for position, item in enumerate(self.items):
            if len(chosen) == self.n:
                break
            starting_here = math.comb(len(self.items) - position - 1, self.n - len(chosen) - 1)
            if index < starting_here:
                chosen.append(item)
            else:
                index -= starting_here
        return tuple(chosen)


def sample_candidates(items: Sequence[Any], n: Any = 1) -> Sequence[Any]:
    """`sample(items, n)`: one item, or an n-item combination (in the list's order)."""
    n = _int_arg(n)
    if n == 1:
        return _checked(list(items))
    if not 1 < n <= len(items):
        raise TemplateError(f"cannot sample {n} of {len(items)} items")
    return Combinations(items, n)


def sample_sequential_candidates(items: Sequence[Any], n: Any) -> list[list[Any]]:
    """`sample_sequential(items, n)`: n consecutive items (wrapping around), e.g. weekdays."""
    n = _int_arg(n)
    return _checked([[items[(i + j) % len(items)] for j in range(n)] for i in range(len(items))])


_PURE_HELPERS: dict[str, Callable[..., Any]] = {
    "is_int": is_int, "divides": divides, "ensure_int": ensure_int, "Fraction": fraction_text,
    "int": int, "float": float, "round": round, "str": str, "len": len,
    "list": lambda items: _checked(list(items)),
    "plural": plural, "to_title": lambda text: text[:1].upper() + text[1:],
    "ukr_plural_measurements": plural,
    "ukr_month_form_on_number": lambda n: plural(n, "місяць", "місяці", "місяців"),
    "ukr_weekday_to_when": _ukr_weekday_to_when,
}
_SAMPLERS: dict[str, Callable[..., Sequence[Any]]] = {
    "range": range_candidates, "range_list": range_candidates, "arange": arange_candidates,
    "range_str": range_str_candidates, "sample": sample_candidates,
    "sample_sequential": sample_sequential_candidates,
}
CANDIDATE_FUNCTIONS: dict[str, Callable[..., Any]] = _PURE_HELPERS | _SAMPLERS
SUPPORTED_FUNCTIONS = frozenset(CANDIDATE_FUNCTIONS)


def pick_functions(rng: Random) -> dict[str, Callable[..., Any]]:
    """The helpers with each sampler drawing a single value from its candidates."""

    def picker(candidates: Callable[..., Sequence[Any]]) -> Callable[..., Any]:
        return lambda *args: rng.choice(candidates(*args))

    return _PURE_HELPERS | {name: picker(fn) for name, fn in _SAMPLERS.items()}


_INTEGER = re.compile(r"-?[0-9]+")
_DECIMAL = re.compile(r"-?[0-9]*\.[0-9]+")
_FRACTION = re.compile(r"-?[0-9]+/[1-9][0-9]*")


def parse_value(value: Any) -> Any:
    """A sampled value as templates compute with it: numeric strings (`"12"`, `"0.5"`, `"1/2"`,
    `"१०"`) become numbers and whole floats ints; anything else (a name, `"Nan"`) stays as is."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if not isinstance(value, str):
        return value
    text = ascii_digits(value.strip())
    if _INTEGER.fullmatch(text):
        return int(text)
    if _DECIMAL.fullmatch(text):
        return parse_value(float(text))
    if _FRACTION.fullmatch(text):
        return Fraction(text)
    return value


def show(value: Any) -> str:
    """A value as it appears in question or solution text (no float noise, `24` not `24.0`)."""
    if isinstance(value, bool) or isinstance(value, str):
        return str(value)
    if isinstance(value, Fraction):
        return fraction_text(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise TemplateError(f"non-finite value {value}")
        rounded = round(value, 9)
        return str(int(rounded)) if rounded.is_integer() else format(rounded, ".9f").rstrip("0")
    return str(value)


__all__ = [
    "CANDIDATE_FUNCTIONS", "SUPPORTED_FUNCTIONS", "Combinations", "fraction_text", "is_int", "parse_value",
    "pick_functions", "show",
]
