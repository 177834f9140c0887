"""Study kinds: which runner a spec file goes to, picked by its top-level `study:` field.

`transfer` (the default) is the train-on-A, test-on-B matrix; other kinds (probes,
translation) live in their own packages and register a runner here, so `transferlab run`
stays one command for every study.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Protocol

from transferlab import safe_yaml
from transferlab.errors import TransferlabError, closest

# kind -> module that defines `run_spec(path, output, dry_run, console, executor=None) -> Path | None`
STUDY_RUNNERS = {
    "transfer": "transferlab.transfer.study",
    "probes": "transferlab.probes.study",
    "translation": "transferlab.translation.study",
}


class StudyRunner(Protocol):
    def __call__(self, path: Path, output: Path | None, dry_run: bool, console: Any,
                 executor: Any = None, **options: Any) -> Path | None: ...


def study_kind(path: Path) -> str:
    """The `study:` field of a spec file ('transfer' when absent), checked against the known kinds."""
    text = safe_yaml.read_text(path, "spec file")
    try:
        data = safe_yaml.load(text, str(path))[1] or {}
    except TransferlabError:
        return "transfer"  # the transfer spec parser reports the YAML error with its line
    kind = data.get("study", "transfer") if isinstance(data, dict) else "transfer"
    if kind not in STUDY_RUNNERS:
        near = closest(str(kind), STUDY_RUNNERS)
        hint = f"did you mean {near[0]!r}?" if near else f"valid: {', '.join(STUDY_RUNNERS)}"
        raise TransferlabError(f"{path}: study: unknown study kind {kind!r}: {hint}")
    return kind


def runner(kind: str) -> StudyRunner:
    return importlib.import_module(STUDY_RUNNERS[kind]).run_spec
