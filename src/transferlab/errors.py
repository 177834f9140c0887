"""User-facing errors: one line that names the problem and the fix."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class TransferlabError(Exception):
    """An error caused by the user's input or environment, shown as one line without a traceback."""

    exit_code = 2  # the command line's exit status (`transferlab.entry`)


class JobsFailed(TransferlabError):
    """A run finished, but some of its jobs failed: what finished is kept, and the exit status is 1."""

    exit_code = 1

    def __init__(self, message: str, run_dir: object = None):
        super().__init__(message)
        self.run_dir = run_dir


def closest(name: str, options: Iterable[str], n: int = 3) -> list[str]:
    """The valid names most similar to `name`, best first."""
    return difflib.get_close_matches(name, list(options), n=n, cutoff=0.5)


def unknown_name(kind: str, name: str, options: Iterable[str], hint: str = "") -> TransferlabError:
    """Build the error for an unknown name, suggesting the closest valid ones."""
    options = sorted(options)
    near = closest(name, options)
    if near:
        suggestion = f"did you mean {', '.join(repr(n) for n in near)}?"
    else:
        shown = ", ".join(options[:8]) + (", ..." if len(options) > 8 else "")
        suggestion = f"valid names: {shown}"
    tail = f" ({hint})" if hint else ""
    return TransferlabError(f"unknown {kind} {name!r}: {suggestion}{tail}")


def missing_package(package: str, purpose: str, install: str | None = None) -> TransferlabError:
    """Build the error for an optional dependency that is not installed."""
    install = install or f"pip install {package}"
    return TransferlabError(f"{purpose} needs the package {package!r}, which is not installed: run `{install}`")
