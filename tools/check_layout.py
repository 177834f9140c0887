"""Check that the source tree keeps the layout README's "Layout" section describes.

    python tools/check_layout.py          # prints every problem; exit 1 if there is one

Four rules, over every import in `src/transferlab` (module level and inside functions alike):
1. no import circle;
2. imports point down the layers only: the command line (`cli`, `__main__`) -> a study
   (`transfer`, `probes`, `translation`) -> `engine` -> `learn` -> the shared modules
   (everything else); `engine.studies` names the study runners as strings and imports them
   only when a spec asks for one;
3. a study imports no other study;
4. no module is over 400 lines.

An import of `a.b.c` counts as an edge to `a.b.c` only (not to the packages `a` and `a.b`
that Python also initialises), as import linters count them.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "transferlab"
STUDIES = ("transfer", "probes", "translation")
TOP = ("cli", "__main__")  # the command line may import every study
LAYERS = ("shared", "learn", "engine", "study", "top")  # a module may import its own layer and those before it
MAX_LINES = 400


@dataclass(frozen=True)
class Module:
    name: str  # dotted, e.g. transferlab.engine.jobs
    path: Path
    is_package: bool


def modules(root: Path = ROOT) -> dict[str, Module]:
    found = {}
    for path in sorted((root / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        found[".".join(parts)] = Module(".".join(parts), path, is_package)
    return found


def imports_of(module: Module, known: dict[str, Module]) -> Iterator[tuple[str, int]]:
    """(imported module, line) for every import of a transferlab module in `module`."""
    tree = ast.parse(module.path.read_text(), str(module.path))
    package = module.name if module.is_package else module.name.rsplit(".", 1)[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == PACKAGE:
                    yield _existing(alias.name, known), node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            if source.split(".")[0] != PACKAGE:
                continue
            for alias in node.names:
                candidate = f"{source}.{alias.name}"
                yield (candidate if candidate in known else _existing(source, known)), node.lineno


def _existing(name: str, known: dict[str, Module]) -> str:
    while name not in known and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def graph(known: dict[str, Module]) -> dict[str, dict[str, int]]:
    """module -> {imported module: first line}."""
    edges: dict[str, dict[str, int]] = {}
    for name, module in known.items():
        out = edges.setdefault(name, {})
        for target, line in imports_of(module, known):
            if target != name:
                out.setdefault(target, line)
    return edges


def cycles(edges: dict[str, dict[str, int]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(10_000, sys.getrecursionlimit()))
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def study_of(name: str) -> str | None:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in STUDIES else None


def layer_of(name: str) -> str:
    part = name.split(".")[1] if "." in name else ""
    if part in TOP:
        return "top"
    if part in STUDIES:
        return "study"
    return part if part in ("learn", "engine") else "shared"


def problems(root: Path = ROOT) -> list[str]:
    known = modules(root)
    edges = graph(known)
    out = []
    for component in cycles(edges):
        out.append("import circle: " + " -> ".join(component))
    for source, targets in sorted(edges.items()):
        mine = study_of(source)
        for target, line in sorted(targets.items()):
            where = f"{known[source].path.relative_to(root.parent)}:{line}"
            theirs = study_of(target)
            if mine is not None and theirs is not None and theirs != mine:
                out.append(f"{where}: study {mine!r} imports study {theirs!r} ({target})")
            elif LAYERS.index(layer_of(target)) > LAYERS.index(layer_of(source)):
                out.append(f"{where}: {source} ({layer_of(source)}) imports {target} ({layer_of(target)}): "
                           "imports point down the layers only")
    for module in known.values():
        lines = len(module.path.read_text().splitlines())
        if lines > MAX_LINES:
            out.append(f"{module.path.relative_to(root.parent)}: {lines} lines (more than {MAX_LINES}): "
                       "split it by concept")
    return out


def main() -> int:
    found = problems()
    for problem in found:
        print(problem)
    count = len(modules())
    print(f"{count} modules: " + (f"{len(found)} problems" if found else "no circle, every import points down "
                                  f"the layers, no cross-study import, none over {MAX_LINES} lines"))
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())
