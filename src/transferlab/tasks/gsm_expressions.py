"""A safe compiler for template expressions (`range(2, 20)`, `is_int(y / d)`).

Template expressions are Python-like but come from third-party data, so they are never
passed to `eval`, nor is the package's own code imported (it needs dependencies we do not
install). The compiler accepts a whitelist of AST nodes and turns an expression into a
closure over a `Scope`; it can call only the functions the scope hands it. Which
functions those are is `gsm_template_functions`' business, not this module's.
"""
from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from transferlab.tasks.gsm_text import ascii_digits

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
        return ast.parse(ascii_digits(source).strip(), mode="eval").body
    except (SyntaxError, ValueError, RecursionError):
        raise TemplateError(f"cannot parse {source!r}") from None


def compile_expression(source: str) -> Compiled:
    """Compile a template expression into a closure, rejecting anything off the whitelist."""
    return compile_tree(parse_expression(source))


def compile_tree(tree: ast.expr) -> Compiled:
    """Compile an expression already parsed by `parse_expression` (to inspect its tree first)."""
    return _compile(tree)


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


__all__ = ["Compiled", "Scope", "TemplateError", "compile_expression", "compile_tree", "parse_expression"]
