"""Writing a report's tidy tables (`<report>/tables/*.csv`): atomically, rounded, and small.

A report ships the numbers it shows as tidy CSVs beside its Markdown, so a reader can check
them with any tool. Floats are rounded to `DIGITS` decimals (scores are proportions over at
most a few thousand examples: more digits are noise and size), and a table too large for a
CSV a reader opens goes to Parquet instead (`write_table`), never silently truncated.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from transferlab.errors import TransferlabError

DIGITS = 4
MAX_CSV_BYTES = 1_000_000


def _rounded(frame: pd.DataFrame) -> pd.DataFrame:
    floats = frame.select_dtypes("float").columns
    return frame.assign(**{c: frame[c].round(DIGITS) for c in floats}) if len(floats) else frame


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    """`frame` as CSV at `path` (temp file + rename: a reader never sees half a table)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        _rounded(frame).to_csv(tmp, index=False)
        os.replace(tmp, path)
    except OSError as err:
        raise TransferlabError(f"cannot write {path}: {err.strerror or err}; free space or choose another "
                               "report directory") from None
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_table(frame: pd.DataFrame, directory: Path, stem: str) -> Path:
    """`directory/stem.csv`, or `stem.parquet` when the CSV would pass MAX_CSV_BYTES (e.g. every
    probe x dataset x layer cell of a large sweep); the other of the two is removed, so a
    redraw never leaves a stale copy beside the new one."""
    text = _rounded(frame).to_csv(index=False)
    csv, parquet = directory / f"{stem}.csv", directory / f"{stem}.parquet"
    if len(text.encode()) <= MAX_CSV_BYTES:
        parquet.unlink(missing_ok=True)
        return write_csv(frame, csv)
    directory.mkdir(parents=True, exist_ok=True)
    tmp = parquet.with_name(f".{parquet.name}.{os.getpid()}.tmp")
    try:
        _rounded(frame).to_parquet(tmp, index=False)
        os.replace(tmp, parquet)
    except OSError as err:
        raise TransferlabError(f"cannot write {parquet}: {err.strerror or err}; free space or choose another "
                               "report directory") from None
    finally:
        tmp.unlink(missing_ok=True)
    csv.unlink(missing_ok=True)
    return parquet


def read_table(path: Path) -> pd.DataFrame:
    """A table `write_table` wrote, whichever format it chose."""
    return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
