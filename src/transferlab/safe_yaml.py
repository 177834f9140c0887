"""Reading user YAML (specs, task files) with limits: size, nesting, and alias expansion.

PyYAML's `safe_load` is safe against code execution, not against size: a 600-byte document
whose aliases refer to aliases ("billion laughs") stands for 10^9 nodes, and anything that
walks the loaded data (a line-number map, `str()`, a JSON dump) walks them all. Here the
document is composed once, its size *with aliases expanded* is counted in linear time
(each distinct node once, memoised), and a document over the limits is refused before any
of it is constructed or used:

    node, data = load(text, "spec.yaml")     # data as yaml.safe_load gives it; node for line numbers

Aliases within the limits (a shared block of learner settings, `<<: *defaults`) load as usual;
a key given twice in one mapping is an error (PyYAML would silently keep the last).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from transferlab.errors import TransferlabError

MAX_BYTES = 1_000_000  # a spec or task file; data belongs in the data files they name
MAX_NODES = 100_000  # scalars, sequences and mappings, counting each alias as the nodes it stands for
MAX_DEPTH = 64  # nesting of sequences and mappings


def read_text(path: str | Path, what: str) -> str:
    """The text of a user file, refused in one line if it is missing, a directory, too large or not UTF-8."""
    path = Path(path)
    if not path.exists():
        raise TransferlabError(f"{what} {path} does not exist")
    if not path.is_file():
        raise TransferlabError(f"{what} {path} is not a file")
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise TransferlabError(f"{what} {path} is {size:,} bytes, over the limit of {MAX_BYTES:,}: keep data in "
                               "the files it names")
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise TransferlabError(f"{what} {path} is not UTF-8 text (byte {err.start}): save it as UTF-8") from None
    except OSError as err:
        raise TransferlabError(f"cannot read {what} {path}: {err.strerror}") from None


def compose(text: str, filename: str) -> Any:
    """The document's node graph (None for an empty document), checked against the limits."""
    if len(text) > MAX_BYTES:
        raise TransferlabError(f"{filename}: {len(text):,} characters, over the limit of {MAX_BYTES:,}")
    loader = yaml.SafeLoader(text)
    try:
        _check_depth(text, filename)  # before composing, which recurses once per level
        node = loader.get_single_node()
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = mark.line + 1 if mark else 1
        raise TransferlabError(f"{filename}:{line}: not valid YAML: {getattr(err, 'problem', None) or err}") from None
    except RecursionError:
        raise TransferlabError(f"{filename}: nested more than {MAX_DEPTH} levels deep") from None
    finally:
        loader.dispose()
    if node is not None:
        _check_size(node, filename)
    return node


def load(text: str, filename: str) -> tuple[Any, Any]:
    """(node, data): the checked node graph and the Python data `yaml.safe_load` would give."""
    node = compose(text, filename)
    if node is None:
        return None, None
    constructor = yaml.SafeLoader("")
    try:
        return node, constructor.construct_document(node)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = mark.line + 1 if mark else 1
        raise TransferlabError(f"{filename}:{line}: {getattr(err, 'problem', None) or err}") from None
    finally:
        constructor.dispose()


def _children(node: Any) -> list[Any]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def _check_size(root: Any, filename: str) -> None:
    """Refuse a recursive alias, nesting over MAX_DEPTH, or more than MAX_NODES nodes once aliases
    are expanded; each distinct node is visited once, so a bomb costs what its text costs."""
    expanded: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[Any, int, bool]] = [(root, 1, False)]
    while stack:
        node, depth, done = stack.pop()
        key = id(node)
        if done:
            open_nodes.discard(key)
            expanded[key] = 1 + sum(expanded[id(c)] for c in _children(node))
            if expanded[key] > MAX_NODES:
                raise TransferlabError(f"{filename}:{node.start_mark.line + 1}: its aliases expand to more than "
                                       f"{MAX_NODES:,} values: refusing to load it (an alias bomb?)")
            continue
        if key in expanded:
            continue
        if key in open_nodes:
            raise TransferlabError(f"{filename}:{node.start_mark.line + 1}: an alias refers to the value that "
                                   "contains it: a recursive structure is not a spec")
        if depth > MAX_DEPTH:
            raise TransferlabError(f"{filename}:{node.start_mark.line + 1}: nested more than {MAX_DEPTH} levels deep")
        if isinstance(node, yaml.MappingNode):
            _check_unique_keys(node, filename)
        open_nodes.add(key)
        stack.append((node, depth, True))
        stack.extend((c, depth + 1, False) for c in _children(node) if id(c) not in expanded)


def _check_unique_keys(node: Any, filename: str) -> None:
    """A key given twice in one mapping (PyYAML would keep the last one without a word)."""
    seen: dict[str, int] = {}
    for key, _ in node.value:
        if not isinstance(key, yaml.ScalarNode) or key.tag == "tag:yaml.org,2002:merge":
            continue
        if key.value in seen:
            raise TransferlabError(f"{filename}:{key.start_mark.line + 1}: {key.value!r} is given twice in one mapping "
                                   f"(first on line {seen[key.value]}): keep one")
        seen[key.value] = key.start_mark.line + 1


def _check_depth(text: str, filename: str) -> None:
    """Refuse nesting over MAX_DEPTH from the event stream (the parser does not recurse)."""
    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            depth += 1
            if depth > MAX_DEPTH:
                raise TransferlabError(f"{filename}:{event.start_mark.line + 1}: nested more than {MAX_DEPTH} "
                                       "levels deep")
        elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
            depth -= 1
