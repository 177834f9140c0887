"""The checks every import applies to a number, a seed or a key, with the row it came from.

    from transferlab.engine.import_checks import integer, number, read_records
    columns, records = read_records(Path("results.csv"))      # [(row number, {column: cell}), ...]
    seed = integer(record["seed"], "seed", "results.csv row 4")

A blank cell (an empty CSV field, a Parquet null, a missing JSON field) reads as None: the
table's own way to say "no value" (`results export` writes an undefined ratio that way).
A cell that spells a number badly is refused: NaN, inf, "1.7" where an integer belongs, a
word where a number belongs. Each refusal is one line naming the file and row
(`TransferlabError`), raised before anything is written.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from transferlab.errors import TransferlabError

FIX = "fix it and import again (nothing was imported)"


def refuse(where: str, problem: str) -> TransferlabError:
    return TransferlabError(f"{where}: {problem}; {FIX}")


def blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def number(value: Any, column: str, where: str, missing_ok: bool = False) -> float | None:
    """A finite float; None for a blank cell when `missing_ok`."""
    if blank(value):
        if missing_ok:
            return None
        raise refuse(where, f"{column} is missing")
    if isinstance(value, bool):
        raise refuse(where, f"{column} is {value!r}, not a number")
    try:
        result = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise refuse(where, f"{column} is {value!r}, not a number") from None
    if not math.isfinite(result):
        raise refuse(where, f"{column} is {value!r}: NaN and infinite values are not results (leave the cell "
                            "blank for an undefined value)")
    return result


def integer(value: Any, column: str, where: str) -> int:
    """An integer; "3" and 3.0 are 3, while 1.7, NaN or a word are refused."""
    if isinstance(value, bool):
        raise refuse(where, f"{column} is {value!r}, not an integer")
    if isinstance(value, int):
        return value
    result = number(value, column, where)
    assert result is not None
    if not result.is_integer():
        raise refuse(where, f"{column} is {value!r}, not an integer")
    return int(result)


def label(value: Any, column: str, where: str) -> str:
    """A non-blank name (model, task, metric, ...), stripped."""
    if blank(value) or (isinstance(value, float) and math.isnan(value)):
        raise refuse(where, f"{column} is missing")
    return str(value).strip()


def unique(keys: Iterable[tuple[tuple, str]], what: str, name: str) -> None:
    """Refuse two entries with the same key; `keys` yields (key, where it came from), `what`
    names the key ("key", "doc_id and filter", ...)."""
    seen: dict[tuple, str] = {}
    for key, where in keys:
        if key in seen:
            shown = ", ".join(map(str, key))
            raise TransferlabError(f"{name}: {seen[key]} and {where} have the same {what} ({shown}); {FIX}")
        seen[key] = where


def read_records(path: Path) -> tuple[list[str], list[tuple[int, dict[str, Any]]]]:
    """(columns, [(row number, record)]) of a CSV, TSV or Parquet file, cells as written.

    CSV cells stay strings (blank = None), so "nan" is seen as written rather than turned
    into a missing value; Parquet keeps null (None) apart from NaN. Row numbers count the
    header as row 1, as a spreadsheet shows them.
    """
    if path.suffix.lower() == ".parquet" or _is_parquet(path):
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except Exception as err:  # pyarrow raises several types for a damaged file
            raise TransferlabError(f"{path.name}: cannot read it as Parquet ({err})") from None
        return list(table.column_names), list(enumerate(table.to_pylist(), start=2))
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise TransferlabError(f"{path.name}: not a text table (it is not UTF-8)") from None
    first = text.split("\n", 1)[0]
    reader = csv.reader(io.StringIO(text), delimiter="\t" if "\t" in first and "," not in first else ",")
    rows = list(reader)
    if not rows:
        return [], []
    columns = [c.strip() for c in rows[0]]
    records = []
    for number_, cells in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in cells):
            continue
        if len(cells) > len(columns):
            raise refuse(f"{path.name} row {number_}", f"{len(cells)} cells under {len(columns)} column names")
        records.append((number_, {c: (v if v.strip() else None) for c, v in zip(columns, cells)}))
    return columns, records


def _is_parquet(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(4) == b"PAR1"
