"""Flag a translation table made elsewhere: seed 000's published main table, or any tidy
table of (task, method, score, base_y, oracle), gets gap_recovered's NA and unstable flags
by the same rules (`gaps`) as a run of the study.

    transferlab translation flag main_table.md --out flagged.csv --min-effect 0.05

    from transferlab.translation.imported import flag_table
    frame = flag_table("main_table.csv", "flagged.csv")

Two shapes are read, from .csv, .tsv or a Markdown pipe table (.md, as seed 000 publishes it):
- wide, seed 000's main table: `Domain | Task | base_Y | <one column per method> | oracle |
  gap_recovered`; each method column becomes one row, and the source's own gap_recovered
  (one per task, its method unstated) is kept as `published_gap_recovered` for comparison;
- tidy: columns task (or held_out), method, score, base_y (or base), oracle, and optionally
  oracle_gain_lo / oracle_gain_hi (the CI of oracle − base_Y: adds the CI rules), n, metric,
  higher_is_better, gap, gap_lo, gap_hi.
Known column names match case-insensitively; method names are kept as written. Cells such
as "NA" or "—" read as missing.
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import pandas as pd

from transferlab.errors import TransferlabError
from transferlab.translation.gaps import MIN_EFFECT, flag_gaps

ALIASES = {"held_out": "task", "base": "base_y", "gap_recovered": "published_gap_recovered"}
KNOWN = {"task", "domain", "method", "score", "base_y", "oracle", "oracle_gain", "oracle_gain_lo", "oracle_gain_hi",
         "n", "metric", "higher_is_better", "gain", "gap", "gap_lo", "gap_hi", "published_gap_recovered"}
NUMBERS = ("score", "base_y", "oracle", "oracle_gain", "oracle_gain_lo", "oracle_gain_hi", "gain", "gap", "gap_lo",
           "gap_hi", "published_gap_recovered")
FIRST = ("domain", "task", "method", "score", "base_y", "oracle", "oracle_gain", "gap", "na_rule", "na_reason",
         "unstable", "unstable_rule", "unstable_reason", "published_gap_recovered")


def _markdown(text: str, name: str, oracle: str = "oracle") -> pd.DataFrame:
    """The first pipe table of a Markdown text whose header names an oracle column (`oracle`,
    any case: `results import --columns oracle=...` names another)."""
    blocks: list[list[list[str]]] = [[]]
    for line in text.splitlines():
        if line.strip().startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if not all(re.fullmatch(r":?-+:?", c) for c in cells):
                blocks[-1].append(cells)
        elif blocks[-1]:
            blocks.append([])
    for block in blocks:
        if block and any(c.strip().lower() == oracle.strip().lower() for c in block[0]):
            return pd.DataFrame(block[1:], columns=block[0])
    raise TransferlabError(f"{name}: no Markdown table with an oracle column (expected seed 000's main table: "
                           "| Domain | Task | base_Y | <methods> | oracle | gap_recovered |)")


def read_table(path: str | Path) -> pd.DataFrame:
    """A translation table from `path` in the tidy shape `flag_gaps` reads (one row per task × method)."""
    path = Path(path)
    if not path.exists():
        raise TransferlabError(f"{path} does not exist")
    text = path.read_text()
    if path.suffix.lower() in (".md", ".markdown"):
        frame = _markdown(text, path.name)
    else:
        frame = pd.read_csv(io.StringIO(text), sep="\t" if path.suffix.lower() == ".tsv" else ",", dtype=str)
    return tidy(frame, path.name)


def tidy(frame: pd.DataFrame, name: str = "table") -> pd.DataFrame:
    """Known columns renamed to their canonical names; a wide table melted to one row per method."""
    renamed = {}
    for column in frame.columns:
        key = re.sub(r"[\s\-]+", "_", str(column).strip().lower())
        key = ALIASES.get(key, key)
        renamed[column] = key if key in KNOWN else str(column).strip()
    frame = frame.rename(columns=renamed)
    missing = [c for c in ("task", "base_y", "oracle") if c not in frame]
    if missing:
        raise TransferlabError(f"{name}: missing column(s) {', '.join(missing)}; expected seed 000's main table "
                               "(Task, base_Y, <methods>, oracle) or a tidy table (task, method, score, base_y, "
                               f"oracle); found {', '.join(map(str, frame.columns))}")
    if "method" not in frame or "score" not in frame:
        methods = [c for c in frame.columns if c not in KNOWN]
        if not methods:
            raise TransferlabError(f"{name}: no method columns between base_Y and oracle, and no method/score "
                                   "columns: nothing to compute gap_recovered for")
        ids = [c for c in frame.columns if c in KNOWN and c not in ("method", "score")]
        long = frame.assign(_row=range(len(frame))).melt(id_vars=[*ids, "_row"], value_vars=methods,
                                                          var_name="method", value_name="score")
        long["_order"] = long["method"].map({m: i for i, m in enumerate(methods)})
        frame = long.sort_values(["_row", "_order"]).drop(columns=["_row", "_order"]).reset_index(drop=True)
    for column in NUMBERS:
        if column in frame:
            frame[column] = pd.to_numeric(frame[column], errors="coerce")
    return frame


def flag_table(path: str | Path, out: str | Path | None = None, min_effect: float = MIN_EFFECT) -> pd.DataFrame:
    """Read a table (`read_table`), flag it (`gaps.flag_gaps`), write it to `out` as CSV when given."""
    frame = flag_gaps(read_table(path), min_effect)
    frame = frame[[c for c in FIRST if c in frame] + [c for c in frame.columns if c not in FIRST]]
    if out is not None:
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".tmp")
        frame.to_csv(tmp, index=False)
        os.replace(tmp, out)
    return frame
