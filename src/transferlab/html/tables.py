"""Sortable, filterable HTML tables (the page's script sorts on a header click, filters by words).

A cell is a plain value or a `Cell` with the text shown and the number it sorts by, so
"+0.025 [−0.05, +0.10]*" sorts as +0.025 and NA sorts last. Numbers are formatted here, once,
the way the Markdown reports write them (`ci_text`).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any

from transferlab.html.page import esc


@dataclass(frozen=True)
class Cell:
    text: str
    sort: float | None = None
    klass: str = ""


def missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return math.isnan(float(value))
    except (TypeError, ValueError):
        return False


def number(value: Any, digits: int = 3, signed: bool = False) -> str:
    if missing(value):
        return "NA"
    return f"{float(value):{'+' if signed else ''}.{digits}f}"


def ci_text(value: Any, low: Any, high: Any, *, signed: bool = False, digits: int = 3) -> str:
    """'value [low, high]', or the value alone when the CI is unknown, or NA."""
    if missing(value):
        return "NA"
    text = number(value, digits, signed)
    if not missing(low) and not missing(high):
        text += f" [{number(low, digits, signed)}, {number(high, digits, signed)}]"
    return text


def _cell(value: Any, digits: int) -> str:
    if isinstance(value, Cell):
        sort = "" if value.sort is None or missing(value.sort) else f' data-v="{float(value.sort):.6g}"'
        klass = f' class="tl-num {value.klass}"' if value.sort is not None else (
            f' class="{value.klass}"' if value.klass else "")
        return f"<td{klass}{sort}>{esc(value.text)}</td>"
    if value is None or isinstance(value, bool) or getattr(getattr(value, "dtype", None), "kind", "") == "b":
        return f"<td>{'' if value is None else ('yes' if value else 'no')}</td>"
    if isinstance(value, numbers.Integral):
        return f'<td class="tl-num">{int(value)}</td>'
    if isinstance(value, numbers.Real):
        if missing(value):
            return '<td class="tl-num">NA</td>'
        as_float = float(value)
        return f'<td class="tl-num" data-v="{as_float:.6g}">{as_float:.{digits}f}</td>'
    return f"<td>{esc(value)}</td>"


def table(columns: list[str], rows: list[list[Any]], *, caption: str = "", digits: int = 3,
          filterable: bool = False, table_id: str = "") -> str:
    """An HTML table; the page's script makes every header sort it and adds a filter box."""
    head = "".join(f"<th>{esc(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(_cell(v, digits) for v in row) + "</tr>" for row in rows)
    klass = "tl-table tl-filterable" if filterable else "tl-table"
    ident = f' id="{esc(table_id)}"' if table_id else ""
    cap = f'<p class="tl-note">{esc(caption)}</p>' if caption else ""
    return (f'{cap}<div class="tl-table-wrap"><table class="{klass}"{ident}><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table></div>")


def frame_table(frame: Any, *, columns: list[str] | None = None, caption: str = "", digits: int = 3,
                filterable: bool = False, limit: int = 5000, table_id: str = "") -> str:
    """A pandas DataFrame as a table (its first `limit` rows; the caption says when rows were left out)."""
    columns = [c for c in (columns or list(frame.columns)) if c in frame.columns]
    shown = frame.head(limit)
    rows = [list(r) for r in shown[columns].itertuples(index=False, name=None)]
    if len(frame) > limit:
        caption = f"{caption} (first {limit} of {len(frame)} rows)".strip()
    return table(columns, rows, caption=caption, digits=digits, filterable=filterable, table_id=table_id)
