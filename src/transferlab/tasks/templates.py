"""Jinja templates of user tasks, rendered with limits on output size and time.

A task file is input, and its templates run once per row: `{{ 'x' * 10**9 }}`, a loop of
10^10 steps, `10 ** 10 ** 10` or `'x' | center(10**9)` must be refused, not computed. Jinja's
`ImmutableSandboxedEnvironment` already refuses private attributes, mutation of lists and
dicts and ranges over 100,000 items; on top of it, here:

- every `for` loop and every call counts towards a per-render budget of steps, and the clock
  is read as it goes: a render over `MAX_STEPS` steps or `MAX_SECONDS` seconds stops;
- `*`, `**`, `%`, `+` and `~` (concatenation) check the size of what they would make *before*
  making it, as do filters and methods given a large width or count;
- the output is streamed and stops at `MAX_CHARS` characters;
- a field no row has (a typo: `{{ txet }}`) is an error, not an empty string;
- the optimizer is off, so nothing is computed when the template is compiled.

    template = compile_template("Review: {{ text }}", "prompt", origin)
    template.render({"text": "great"})      # 'Review: great'
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path
from typing import Any

from transferlab.errors import TransferlabError

MAX_CHARS = 1_000_000  # one rendered prompt or target; anything a template makes is at most this long
MAX_STEPS = 1_000_000  # loop iterations and calls per render
MAX_SECONDS = 2.0  # wall time per render
MAX_POWER_BITS = 1 << 16  # `a ** b` may make a number of at most this many bits
_WIDTH = re.compile(r"\d{7,}")  # a width or precision of a million or more in a format string


class TemplateLimit(TransferlabError):
    """A template asked for more than a prompt may take."""


_state = threading.local()


def _tick(n: int = 1) -> None:
    budget = getattr(_state, "budget", None)
    if budget is None:
        return
    budget[0] += n
    if budget[0] > MAX_STEPS:
        raise TemplateLimit(f"more than {MAX_STEPS:,} loop steps and calls")
    if budget[0] % 1024 < n and time.perf_counter() > budget[1]:
        raise TemplateLimit(f"longer than {MAX_SECONDS:g} s")


def _size(value: Any, limit: int = MAX_CHARS) -> int:
    """How much a value holds: characters of strings, plus one per item of lists, tuples and dicts,
    counted through nested ones (each reference again) and stopped once over `limit`."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, dict):
        value = [*value.keys(), *value.values()]
    if not isinstance(value, (list, tuple)):
        return 0
    total = len(value)
    for item in value:
        if total > limit:
            break
        total += _size(item, limit - total) if isinstance(item, (str, list, tuple, dict)) else 0
    return total


def _expansion(name: str, subject: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    """The size `subject.name(*args)` or `subject|name(*args)` may reach, for the functions that can
    make much more than they are given: join, replace, indent."""
    if name == "join" and isinstance(subject, str) and args:  # str.join(items)
        subject, args = args[0], (subject,)
    if name == "join" and isinstance(subject, (list, tuple)):
        sep = args[0] if args and isinstance(args[0], str) else kwargs.get("d", "")
        return _size(subject) + len(subject) * len(sep if isinstance(sep, str) else "")
    if name == "replace" and isinstance(subject, str) and len(args) >= 2 and all(isinstance(a, str) for a in args[:2]):
        old, new = args[0], args[1]
        count = subject.count(old) if old else len(subject) + 1
        return len(subject) + count * max(len(new) - len(old), 0)
    if name == "indent" and isinstance(subject, str):
        width = args[0] if args else kwargs.get("width", 4)
        width = len(width) if isinstance(width, str) else width if isinstance(width, int) else 0
        return len(subject) + (subject.count("\n") + 1) * max(width, 0)
    return 0


def _check_size(size: int, what: str) -> None:
    if size > MAX_CHARS:
        raise TemplateLimit(f"{what} of {size:,} items (the limit is {MAX_CHARS:,})")


def _check_format(text: Any) -> None:
    if isinstance(text, str) and _WIDTH.search(text):
        raise TemplateLimit(f"a format with a width of a million or more ({_WIDTH.search(text).group()})")


def _guard_iter(iterable: Any) -> Any:
    """What a `for` loop iterates over, one budget step per item."""
    for item in iterable:
        _tick()
        yield item


def _bounded_join(parts: list[Any]) -> str:
    """`a ~ b`: the concatenation, if it is not too long."""
    texts = [str(p) for p in parts]
    _check_size(sum(len(t) for t in texts), "a concatenation")
    return "".join(texts)


def _environment() -> Any:
    from jinja2 import StrictUndefined
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class Bounded(ImmutableSandboxedEnvironment):
        intercepted_binops = frozenset(["*", "**", "%", "+"])

        def call_binop(self, context: Any, op: str, left: Any, right: Any) -> Any:
            _tick()
            if op == "*":
                for seq, count in ((left, right), (right, left)):
                    if isinstance(seq, (str, list, tuple)) and isinstance(count, int):
                        _check_size(_size(seq) * max(count, 0), "a repetition")
                if isinstance(left, int) and isinstance(right, int):
                    _check_bits(abs(left).bit_length() + abs(right).bit_length())
            elif op == "**" and isinstance(left, int) and isinstance(right, int) and right > 0:
                _check_bits(max(abs(left).bit_length() - 1, 1) * right)
            elif op == "%" and isinstance(left, str):
                _check_format(left)
                if "*" in left:  # '%*d' % (width, value)
                    _check_counts(right if isinstance(right, tuple) else (right,), {})
            elif op == "+":
                _check_size(_size(left) + _size(right), "a sum")
            return super().call_binop(context, op, left, right)

        def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
            _tick()
            target = getattr(__obj, "__wrapped__", __obj)
            name, subject = getattr(target, "__name__", ""), getattr(target, "__self__", None)
            if name in ("format", "format_map"):
                _check_format(subject)
            else:
                _check_counts(args, kwargs)
                _check_size(_expansion(name, subject, args, kwargs), f"the result of .{name}()")
            result = super().call(__context, __obj, *args, **kwargs)
            _check_size(_size(result), "a value")
            return result

    env = Bounded(undefined=StrictUndefined, optimized=False, autoescape=False)
    env.filters = {name: _bounded_filter(name, f) for name, f in env.filters.items()}
    env.globals.pop("lipsum", None)  # a generator of as much text as asked, in one call
    env.globals.update({_GUARD: _guard_iter, _JOIN: _bounded_join})
    return env


def _check_bits(bits: int) -> None:
    if bits > MAX_POWER_BITS:
        raise TemplateLimit(f"a number of about {bits:,} bits")


def _check_counts(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """A width, count or length argument of a million or more (`center`, `ljust`, `indent`, `batch`...)."""
    for value in (*args, *kwargs.values()):
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_CHARS:
            raise TemplateLimit(f"an argument of {value:,} (the limit is {MAX_CHARS:,})")


def _bounded_filter(name: str, func: Any) -> Any:
    import functools

    @functools.wraps(func)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        _tick()
        values = [a for a in args if not _is_context(a)]
        if name == "format":
            _check_format(values[0] if values else None)
        elif values:
            _check_counts(tuple(values[1:]), kwargs)
            _check_size(_expansion(name, values[0], tuple(values[1:]), kwargs), f"the result of |{name}")
        result = func(*args, **kwargs)
        _check_size(_size(result), f"the result of |{name}")
        return result

    return bounded


def _is_context(value: Any) -> bool:
    from jinja2.environment import Environment
    from jinja2.nodes import EvalContext
    from jinja2.runtime import Context

    return isinstance(value, (Context, EvalContext, Environment))


_GUARD, _JOIN = "transferlab_loop_guard", "transferlab_join"
_ENV: Any = None


def _guarded(tree: Any) -> Any:
    """The parsed template with every `for` loop's iterable wrapped in the step guard and every
    `~` concatenation in the bounded join."""
    from jinja2 import nodes
    from jinja2.visitor import NodeTransformer

    class Guard(NodeTransformer):
        def visit_For(self, node: Any) -> Any:  # noqa: N802
            node = self.generic_visit(node)
            node.iter = nodes.Call(nodes.Name(_GUARD, "load"), [node.iter], [], None, None, lineno=node.lineno)
            return node

        def visit_Concat(self, node: Any) -> Any:  # noqa: N802
            node = self.generic_visit(node)
            return nodes.Call(nodes.Name(_JOIN, "load"), [nodes.List(node.nodes, lineno=node.lineno)], [], None,
                              None, lineno=node.lineno)

    return Guard().visit(tree)


class BoundedTemplate:
    """A compiled task template; `render(row)` raises a one-line TransferlabError on any problem."""

    def __init__(self, source: str, field: str, origin: Path | str):
        from jinja2 import TemplateError

        global _ENV
        _ENV = _ENV or _environment()
        self.field, self.origin = field, origin
        try:
            tree = _guarded(_ENV.parse(source))
            tree.set_environment(_ENV)
            self._template = _ENV.from_string(tree)
        except TemplateError as err:
            line = getattr(err, "lineno", None)
            raise TransferlabError(f"{origin}: {field}: not a valid template"
                                   f"{f' (line {line} of it)' if line else ''}: {err}") from None
        except RecursionError:
            raise TransferlabError(f"{origin}: {field}: not a valid template: nested too deeply") from None

    def render(self, row: dict[str, Any], where: str = "") -> str:
        previous = getattr(_state, "budget", None)
        _state.budget = [0, time.perf_counter() + MAX_SECONDS]
        out: list[str] = []
        size = 0
        try:
            for chunk in self._template.generate(**row):
                size += len(chunk)
                _check_size(size, "an output")
                out.append(chunk)
                _tick()
        except TemplateLimit as err:
            raise TransferlabError(f"{self.origin}: {self.field}{where}: the template asks for too much: {err}; "
                                   "a prompt is rendered within limits of size and time") from None
        except TransferlabError:
            raise
        except Exception as err:  # undefined fields, sandbox refusals, type errors, recursion, ...
            raise TransferlabError(f"{self.origin}: {self.field}{where}: cannot render the template: "
                                   f"{type(err).__name__}: {_first_line(err)}") from None
        finally:
            _state.budget = previous
        return "".join(out)


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0][:300] if text else ""


