"""Concrete problems from a parsed template: sampling its variables under its conditions, and rendering.

`VariantGenerator` searches for an assignment that satisfies a `Template`'s conditions
(deterministically from a seed), then renders question and solution and keeps the result
only if it is a clean GSM8K problem whose `####` answer agrees with the template's own.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from random import Random
from typing import Any

from transferlab.tasks.gsm_expressions import Scope, TemplateError
from transferlab.tasks.gsm_template_functions import (
    CANDIDATE_FUNCTIONS,
    Combinations,
    parse_value,
    pick_functions,
    show,
)
from transferlab.tasks.gsm_templates import EXPRESSION_FIELD, PLACEHOLDER, Expression, InitLine, Template
from transferlab.tasks.gsm_text import (
    answer_line,
    capitalize_sentences,
    localize_numbers,
    numbers_equal,
    strip_calculations,
)


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
        question = PLACEHOLDER.sub(
            lambda m: show(raw[m.group(1)]) if m.group(1) in raw else m.group(0), template.question_template
        )
        if "{" in question or "}" in question:
            return None
        parts = {e.source: show(e.evaluate(scope)) for e in template.solution_expressions}
        solution = EXPRESSION_FIELD.sub(lambda m: parts[m.group(1)], template.solution_template)
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


__all__ = ["EVALUATION_ERRORS", "Variant", "VariantGenerator"]
