"""One self-contained HTML page: sections of headings, text, charts, tables and inline data.

A `Page` collects blocks in order and `render`s them into one file that needs no network:
the stylesheet and our script (`assets/`) are inlined, and so is Plotly's bundled JavaScript
(from the `plotly` package) when the page holds a chart. A chart is a Plotly figure given as
plain dicts (`data`, `layout`) and stored as inline JSON; the script draws it on load and sets
`<body data-ready="1">` once every chart is drawn. `write_page` writes atomically and
`write_summary` writes `report.json` beside it: the kind, title and headline numbers an index
page shows for the run (`html.index`).
"""

from __future__ import annotations

import html
import json
import math
import os
import re
import time
from importlib import resources
from pathlib import Path
from typing import Any

SUMMARY = "report.json"  # beside report.html: what an index card shows
PAGE = "report.html"


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def plain(value: Any) -> Any:
    """`value` as JSON-safe Python: NaN and infinities become None, numpy scalars and arrays plain."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return plain(value.tolist())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (bool, int, str)) or value is None:
        return value
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    return number if math.isfinite(number) else None


def inline_json(value: Any) -> str:
    """JSON that is safe inside a <script> element (no `</script>` or `<!--` can appear)."""
    text = json.dumps(plain(value), ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _asset(name: str) -> str:
    return resources.files("transferlab.html").joinpath("assets").joinpath(name).read_text(encoding="utf-8")


def plotly_js() -> str:
    """Plotly's bundled, minified JavaScript as the `plotly` package ships it (no CDN)."""
    try:
        from plotly.offline import get_plotlyjs
    except ImportError as err:  # a dependency of transferlab: only a broken install lacks it
        raise RuntimeError("report.html needs the `plotly` package: pip install plotly") from err
    return get_plotlyjs()


class Page:
    """Blocks of one report page, in order; `toc` holds the level-2 headings for the top bar."""

    def __init__(self, title: str, subtitle: str = "", contained: bool = True):
        self.title = title
        self.subtitle = subtitle
        self.contained = contained  # False for a page that links files beside it (the index)
        self.blocks: list[str] = []
        self.toc: list[tuple[str, str]] = []
        self.data: dict[str, Any] = {}
        self._ids = 0

    def new_id(self, prefix: str) -> str:
        self._ids += 1
        return f"{prefix}-{self._ids}"

    @property
    def charts(self) -> int:
        return sum(block.count('class="tl-chart"') for block in self.blocks)

    def heading(self, text: str, level: int = 2) -> None:
        anchor = self.new_id("s")
        if level == 2:
            self.toc.append((anchor, text))
        self.blocks.append(f'<h{level} id="{anchor}">{esc(text)}</h{level}>')

    def text(self, text: str, note: bool = False) -> None:
        """A paragraph of plain text; `code` spans are shown as code."""
        klass = ' class="tl-note"' if note else ""
        body = re.sub(r"`([^`]+)`", r"<code>\1</code>", esc(text))
        self.blocks.append(f"<p{klass}>{body}</p>")

    def raw(self, markup: str) -> None:
        """Markup made by this package (tables, Markdown): trusted, already escaped."""
        self.blocks.append(markup)

    def chart(self, data: list[dict], layout: dict, *, examples: str | None = None, height: int = 0,
              caption: str = "", wide: bool = False) -> str:
        """A Plotly chart with an optional caption below it; `examples` names the changed-examples
        group a click on it opens."""
        chart_id = self.new_id("chart")
        layout = {"margin": {"l": 60, "r": 20, "t": 48, "b": 60}, "hoverlabel": {"align": "left"}, **layout}
        if height:
            layout["height"] = height
        spec_id = f"{chart_id}-spec"
        extra = f' data-examples="{esc(examples)}"' if examples else ""
        caption = f"<figcaption>{esc(caption)}</figcaption>" if caption else ""
        klass = "tl-figure tl-wide" if wide else "tl-figure"
        self.blocks.append(f'<figure class="{klass}"><script type="application/json" id="{spec_id}">'
                           f'{inline_json({"data": data, "layout": layout})}</script>'
                           f'<div class="tl-chart" id="{chart_id}" data-spec="{spec_id}"{extra}></div>'
                           f"{caption}</figure>")
        return chart_id

    def grid(self, start: bool) -> None:
        self.blocks.append('<div class="tl-grid">' if start else "</div>")

    def render(self) -> str:
        scripts = [f"<script>{plotly_js()}</script>"] if self.charts else []
        data = "".join(f'<script type="application/json" id="{esc(k)}">{inline_json(v)}</script>'
                       for k, v in self.data.items())
        toc = "".join(f'<a href="#{a}">{esc(t)}</a>' for a, t in self.toc)
        made = time.strftime("%Y-%m-%d %H:%M")
        how = "self-contained (no network)" if self.contained else "links the pages beside it"
        return "\n".join([
            "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{esc(self.title)}</title>", f"<style>{_asset('report.css')}</style>", *scripts,
            f"<script>{_asset('report.js')}</script>", "</head>", "<body>",
            f'<header class="tl-top"><h1>{esc(self.title)}</h1><div class="tl-meta">{esc(self.subtitle)}'
            f"{' · ' if self.subtitle else ''}written {made} by transferlab; {how}</div></header>",
            f'<nav class="tl-toc">{toc}</nav>' if toc else "", "<main>", *self.blocks, "</main>", data,
            "</body>", "</html>", ""])


def write_text(path: Path, text: str) -> Path:
    """Write atomically (temp file + rename): a reader never sees half a page."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


def write_page(page: Page, path: Path) -> Path:
    return write_text(path, page.render())


def write_summary(out_dir: Path, kind: str, title: str, headline: list[tuple[str, str]],
                  page: str = PAGE, **extra: Any) -> Path:
    """`report.json`: the run's kind, title and headline numbers (label, formatted value)."""
    record = {"kind": kind, "title": title, "page": page, "written": time.strftime("%Y-%m-%d %H:%M"),
              "headline": [list(pair) for pair in headline], **extra}
    return write_text(out_dir / SUMMARY, json.dumps(plain(record), indent=1, ensure_ascii=False) + "\n")
