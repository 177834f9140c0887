"""`transferlab results import`: results from other tools, by format, detected from content.

    transferlab results import RUN lm-eval-out/                    # results_*.json and samples_*.jsonl inside
    transferlab results import RUN results_2025-01-01T00-00-00.json --trained-on arc_easy
    transferlab results import RUN main_table.md --columns base=base_Y,oracle=oracle   # a wide table
    transferlab results import RUN other-tool.csv                  # the tidy table (or .parquet)

`FORMATS` names what exists; `detect` picks one from a file's content (or takes --format):
- lm-eval-json, lm-eval-samples: lm-evaluation-harness 0.4's results JSON and --log_samples
  JSONL (`engine.lm_eval`);
- wide: one row per task and one column per method plus base and oracle, seed 000's main
  table (Markdown, CSV, TSV or Parquet). The translation study reads it
  (`translation.wide_table`); `import_any` hands it over by module name (`WIDE_TABLES`),
  as `engine.studies` names the study runners, so the engine imports no study;
- tidy: the results table itself, CSV or Parquet (`store.read_results`).
Every file is read and checked before anything is written (NaN, inf, a seed of 1.7, two rows
with the same key: one line naming the file and row, and nothing imported). Rows of a
samples file replace the same rows of its results JSON: a bootstrap over the documents
beats a CI from a standard error.
"""

from __future__ import annotations

import importlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transferlab.engine.import_checks import read_records, unique
from transferlab.engine.lm_eval import Labels, Samples, read_results_json, read_samples, sample_rows, store_samples
from transferlab.engine.store import RESULT_KEY, ResultRow, Store, read_results
from transferlab.errors import TransferlabError, unknown_name

FORMATS = {
    "lm-eval-json": "lm-eval's results_<date>.json",
    "lm-eval-samples": "lm-eval's --log_samples samples_<task>_<date>.jsonl",
    "wide": "a row per task, a column per method plus base and oracle, as seed 000's main table",
    "tidy": "transferlab's results table, .csv or .parquet",
}
WIDE_ROLES = ("base", "oracle")  # columns a wide table needs (named so, as base_Y, or mapped with --columns)
WIDE_NAMES = {"base": ("base", "base_y"), "oracle": ("oracle",)}
WIDE_TABLES = "transferlab.translation.wide_table"  # the study module that reads wide tables
PIPE_TABLE = re.compile(r"\|(?:\s*:?-{3,}:?\s*\|){2,}")  # a Markdown table's header separator


def parse_columns(options: list[str] | None) -> list[tuple[str, str]]:
    """`--columns base=Base,oracle=Oracle` (repeatable) as (name, column) pairs."""
    pairs = []
    for option in options or []:
        for part in filter(None, (p.strip() for p in option.split(","))):
            name, sep, column = part.partition("=")
            if not sep or not name.strip() or not column.strip():
                raise TransferlabError(f"--columns {part!r}: write name=Column, e.g. base=Base,oracle=Oracle "
                                       f"(roles: task, domain, base, oracle, n, gap_recovered, drop; any other name "
                                       "renames a method column)")
            pairs.append((name.strip(), column.strip()))
    return pairs


def formats_line() -> str:
    return ", ".join(f"{name} ({what})" for name, what in FORMATS.items())


def unsupported(path: Path, why: str) -> TransferlabError:
    return TransferlabError(f"{path.name}: {why}, not a format transferlab imports; it imports {formats_line()}")


def expand(paths: list[Path]) -> list[Path]:
    """Files to import: a directory stands for the lm-eval outputs under it."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            inside = sorted([*path.rglob("results_*.json"), *path.rglob("samples_*.jsonl")])
            if not inside:
                raise TransferlabError(f"{path} holds no lm-eval results_*.json or samples_*.jsonl: give the files "
                                       "to import")
            found += inside
        elif not path.exists():
            raise TransferlabError(f"no such file: {path}")
        else:
            found.append(path)
    return list(dict.fromkeys(found))


def detect(path: Path, columns: dict[str, str] | None = None) -> str:
    """The format of a file, from its content: JSON with `results`, JSONL records with doc_id,
    a Markdown pipe table, or a CSV/Parquet header (tidy columns, else base and oracle)."""
    with open(path, "rb") as handle:
        head = handle.read(1 << 16)
    if head.startswith(b"PAR1"):
        return _by_columns(path, read_records(path)[0], columns)
    if b"\0" in head:
        raise unsupported(path, "binary content")
    text = head.decode("utf-8-sig", errors="replace")
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")):
        with open(path, "rb") as handle:
            first = next((line for line in handle if line.strip()), b"")
        try:
            record = json.loads(first)
        except (ValueError, RecursionError):
            record = None
        if isinstance(record, dict) and "doc_id" in record:
            return "lm-eval-samples"
        if stripped.startswith("{") and '"results"' in text:
            return "lm-eval-json"
        raise unsupported(path, "JSON without lm-eval's `results` object or per-document `doc_id` records")
    if any(line.lstrip().startswith("|") for line in text.splitlines()) or PIPE_TABLE.search(text):
        return "wide"  # a Markdown pipe table, also one flattened onto a line of text
    return _by_columns(path, read_records(path)[0] if text.strip() else [], columns)


def _by_columns(path: Path, found: list[str], columns: dict[str, str] | None) -> str:
    if all(c in found for c in RESULT_KEY):
        return "tidy"
    names = {c.strip().lower() for c in found}
    mapped = {k: v.strip().lower() for k, v in (columns or {}).items()}
    if all(mapped.get(role) in names or any(n in names for n in WIDE_NAMES[role]) for role in WIDE_ROLES):
        return "wide"
    if len(found) < 2:
        raise unsupported(path, "text that is neither JSON nor a table")
    raise unsupported(path, f"a table with the columns {', '.join(found[:12])}: neither tidy (it lacks "
                            f"{', '.join(c for c in RESULT_KEY if c not in found)}) nor wide (no base and oracle "
                            "columns: name yours with --columns base=...,oracle=...)")


def formats_of(paths: list[Path], chosen: str | None, columns: dict[str, str] | None = None) -> list[tuple[Path, str]]:
    """(file, format) for every file to import; `chosen` (--format) applies to all."""
    if chosen is not None and chosen not in FORMATS:
        raise unknown_name("import format", chosen, FORMATS, formats_line())
    return [(p, chosen or detect(p, columns)) for p in expand(paths)]


def import_any(run_dir: Path, paths: list[Path], chosen: str | None = None, columns: list[str] | None = None,
               labels: Labels = Labels(), **wide: Any) -> Imported:
    """Detect each file's format and import it: a wide table goes to the translation study's
    reader (`WIDE_TABLES`, by name: the engine imports no study), the others to `import_files`."""
    pairs = parse_columns(columns)
    found = formats_of(paths, chosen, dict(pairs))
    if not any(kind == "wide" for _, kind in found):
        return import_files(run_dir, found, labels)
    if len(found) > 1:
        raise TransferlabError("a wide table is imported on its own: give one table per command")
    summary = importlib.import_module(WIDE_TABLES).import_wide(run_dir, found[0][0], pairs, model=labels.model,
                                                               seed=labels.seed, **wide)
    return Imported(rows=summary["rows"], files={"wide": 1}, notes=[], wide=summary, run_dir=run_dir)


@dataclass
class Imported:
    """What one import wrote, for the command line to say."""

    rows: int = 0
    files: dict[str, int] = field(default_factory=dict)  # format -> files
    evaluations: int = 0  # per-example records stored
    notes: list[str] = field(default_factory=list)
    wide: dict[str, Any] | None = None  # a wide table's summary (`translation.wide_table`)
    run_dir: Path | None = None

    def describe(self) -> str:
        if self.wide is not None:
            s = self.wide
            return (f"imported {s['tasks']} tasks x {len(s['methods'])} methods ({self.rows} rows): gap_recovered NA "
                    f"on {len(s['gap_na'])} tasks, unstable on {len(s['gap_unstable'])}; `transferlab report "
                    f"{self.run_dir}` shows the flagged table")
        kinds = ", ".join(f"{n} {kind}" for kind, n in self.files.items())
        stored = f"; {self.evaluations} per-example evaluations stored" if self.evaluations else ""
        return f"imported {self.rows} rows from {sum(self.files.values())} file(s) ({kinds}){stored}"


def import_files(run_dir: Path, found: list[tuple[Path, str]], labels: Labels = Labels()) -> Imported:
    """Read and check every file, then write: rows in one transaction, samples as artifacts."""
    if any(fmt == "wide" for _, fmt in found):
        raise TransferlabError("a wide table is imported by the translation study (`transferlab results import RUN "
                               "TABLE`), one table per command")
    done = Imported()
    json_rows: list[tuple[ResultRow, str]] = []
    tidy_rows: list[tuple[ResultRow, str]] = []
    batch: list[Samples] = []
    for path, fmt in found:
        done.files[fmt] = done.files.get(fmt, 0) + 1
        if fmt == "tidy":
            tidy_rows += [(r, path.name) for r in read_results(path)]
        elif fmt == "lm-eval-json":
            json_rows += [(r, path.name) for r in read_results_json(path, labels)]
        else:
            batch.append(read_samples(path, labels))
    for tagged, what in ((json_rows, "lm-eval results"), (tidy_rows, "tidy tables")):  # files that overlap
        unique(((tuple(getattr(r, c) for c in RESULT_KEY), source) for r, source in tagged), "key", what)
    unique(((s.cell, s.source) for s in batch), "cell", "lm-eval samples")
    for s in batch:
        if s.skipped:
            done.notes.append(f"{s.source}: {', '.join(s.skipped)} left out (per-document values that are not numbers, "
                              "a corpus-level metric: its results JSON row carries it)")
    rows = [r for r, _ in json_rows + tidy_rows]
    if not rows and not batch:
        names = ", ".join(path.name for path, _ in found)
        raise TransferlabError(f"{names}: no result rows to import (a header alone, or no numeric metrics); "
                               "nothing was imported")
    store = Store(run_dir)
    if batch:
        index = store_samples(store, run_dir, batch)
        rows += sample_rows(store, index, labels.resamples)
        done.evaluations = len(batch)
    by_key = {tuple(getattr(r, c) for c in RESULT_KEY): r for r in rows}  # later (samples) rows win
    done.rows = store.add_results(by_key.values())
    return done
