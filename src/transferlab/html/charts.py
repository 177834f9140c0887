"""Plotly figures as plain dicts: the annotated heatmap every study draws, and line traces.

The page stores these as JSON and Plotly draws them in the browser, so nothing here imports
plotly. A heatmap cell has a value (its colour), a label (the text drawn on it: value and
marks, as in the PNGs) and a hover text (value, CI, n, q-value, ...).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from transferlab.html.page import esc

# Plotly's RdBu runs blue -> red, matplotlib's (the PNGs') red -> blue: reversed, losses are red, gains blue.
DIVERGING = "RdBu"
SEQUENTIAL = "Viridis"
MAGMA = [[0.0, "#000004"], [0.13, "#1c1044"], [0.25, "#4f127b"], [0.38, "#812581"], [0.5, "#b5367a"],
         [0.63, "#e55064"], [0.75, "#fb8761"], [0.88, "#fec287"], [1.0, "#fcfdbf"]]  # matplotlib's, as the PNGs


@dataclass(frozen=True)
class HeatCell:
    value: float | None
    label: str
    hover: str


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def heatmap(rows: list[str], cols: list[str], cells: dict[tuple[str, str], HeatCell], *, title: str,
            diverging: bool, center: float = 0.0, zmin: float | None = None, zmax: float | None = None,
            colorscale: str | None = None, colorbar: str = "") -> tuple[list[dict], dict]:
    """(data, layout) of an annotated heatmap; rows top to bottom in the order given."""
    z = [[_finite(cells[r, c].value) if (r, c) in cells else None for c in cols] for r in rows]
    text = [[cells[r, c].label if (r, c) in cells else "" for c in cols] for r in rows]
    hover = [[cells[r, c].hover if (r, c) in cells else f"trained on {esc(r)}<br>evaluated on {esc(c)}<br>no value"
              for c in cols] for r in rows]
    trace: dict[str, Any] = {
        "type": "heatmap", "x": cols, "y": rows, "z": z, "text": text, "customdata": hover,
        "texttemplate": "%{text}", "hovertemplate": "%{customdata}<extra></extra>", "xgap": 1, "ygap": 1,
        "colorscale": colorscale or (DIVERGING if diverging else SEQUENTIAL), "hoverongaps": True,
        "colorbar": {"title": {"text": colorbar}, "thickness": 14},
    }
    values = [v for row in z for v in row if v is not None]
    if diverging:
        bound = max((abs(v - center) for v in values), default=1.0) or 1.0
        trace.update(zmin=center - bound, zmax=center + bound, zmid=center, reversescale=colorscale is None)
    elif zmin is not None or zmax is not None:
        trace.update(zmin=zmin, zmax=zmax)
    layout: dict[str, Any] = {
        "title": {"text": title, "font": {"size": 14}},
        "xaxis": {"title": {"text": "evaluated on"}, "type": "category", "tickangle": -30},
        "yaxis": {"title": {"text": "trained on"}, "type": "category", "autorange": "reversed"},
        "height": max(300, 58 * len(rows) + 170), "margin": {"l": 130, "r": 20, "t": 50, "b": 100},
    }
    return [trace], layout


def line(x: list[Any], y: list[Any], name: str, *, hover: list[str] | None = None, low: list[Any] | None = None,
         high: list[Any] | None = None, dash: str = "solid", color: str | None = None, yaxis: str = "y",
         legendgroup: str = "", showlegend: bool = True, width: float = 2.0, mode: str = "lines+markers") -> dict:
    """One line trace; `low`/`high` draw asymmetric error bars (a CI) at each point."""
    trace: dict[str, Any] = {"type": "scatter", "mode": mode, "x": x, "y": [_finite(v) for v in y], "name": name,
                             "line": {"dash": dash, "width": width}, "yaxis": yaxis, "showlegend": showlegend}
    if color:
        trace["line"]["color"] = color
        trace["marker"] = {"color": color, "size": 5}
    if legendgroup:
        trace["legendgroup"] = legendgroup
    if hover is not None:
        trace.update(customdata=hover, hovertemplate="%{customdata}<extra></extra>")
    if low is not None and high is not None:
        up = [None if _finite(h) is None or _finite(v) is None else max(0.0, _finite(h) - _finite(v))
              for v, h in zip(y, high)]
        down = [None if _finite(lo) is None or _finite(v) is None else max(0.0, _finite(v) - _finite(lo))
                for v, lo in zip(y, low)]
        trace["error_y"] = {"type": "data", "symmetric": False, "array": up, "arrayminus": down,
                            "thickness": 1, "width": 3}
    return trace


PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf"]


def colour(i: int) -> str:
    return PALETTE[i % len(PALETTE)]
