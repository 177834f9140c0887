"""An index page over many runs: one card per run with its headline numbers, linking to its report.html.

    transferlab report --index docs/results     # writes docs/results/index.html, and nothing else

The index reads what each run's report left behind, never a results database: a folder with
`report.json` (written beside every `report.html` by `transferlab report RUN`) is a card with
that file's title, kind and headline numbers, linking to the page. A folder that holds only
published Markdown (`summary.md`, `translation.md`, or a `README.md` with figures, as the
shipped studies under `docs/results/` do: their run stores are not in git) is a card too, whose
headline numbers are read from the Markdown (a "Headline" table, the bold-led bullets, the
"Findings" list) or, for a translation run, from `tables/summary.json`; it links to a section
of the index itself where that Markdown is rendered (tables sortable and filterable, figures
linked beside it, `tables/*.csv` as tables). A run folder with a results.sqlite and no report
yet gets a card saying which command draws it.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pandas as pd

from transferlab.html.markdown import inline, markdown_section
from transferlab.html.page import SUMMARY, Page, esc, write_page
from transferlab.html.tables import frame_table
from transferlab.html.translation import headline as translation_headline

SKIP = {"artifacts", "__pycache__", "node_modules", "tables"}
MARKDOWN = ("README.md", "summary.md", "translation.md")
MAX_DEPTH = 4
MOST = 5  # headline lines per card


def _kind(folder: Path) -> str:
    if (folder / "tables" / "summary.json").is_file() or (folder / "translation.md").is_file():
        return "translation"
    if (folder / "r3b_matrix.png").is_file() or (folder / "probes_run.json").is_file():
        return "probes"
    return "transfer"


def _title(folder: Path) -> str:
    for name in MARKDOWN:
        path = folder / name
        if path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return folder.name


def markdown_headline(text: str, most: int = MOST) -> list[tuple[str, str]]:
    """Headline lines of a Markdown report: its "Headline" table, else its bold-led bullets, else its findings."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if re.match(r"^#+\s*headline", line, re.I):
            rows = [row for row in lines[i + 1:] if row.startswith("|")]
            pairs = []
            for row in rows[2:]:
                cells = [c.strip() for c in row.strip().strip("|").split("|")]
                if len(cells) >= 2:
                    pairs.append((cells[0], cells[1]))
            if pairs:
                return pairs[:most]
    bold = [m.group(1).strip().rstrip(".:") for line in lines if (m := re.match(r"^[-*]\s+\*\*(.+?)\*\*", line))]
    if bold:
        return [(b, "") for b in bold[:most]]
    if "Findings:" in lines:
        start = lines.index("Findings:") + 1
        found = []
        for line in lines[start:]:
            if not line.startswith("- "):
                break
            found.append((line[2:].strip(), ""))
        return found[:most]
    return []


def _static_headline(folder: Path) -> list[tuple[str, str]]:
    summary = folder / "tables" / "summary.json"
    if summary.is_file():
        try:
            return translation_headline(json.loads(summary.read_text()))
        except ValueError:
            pass
    for name in MARKDOWN:
        if (folder / name).is_file() and (found := markdown_headline((folder / name).read_text(encoding="utf-8"))):
            return found
    return []


def static_section(folder: Path, anchor: str, base: Path) -> str:
    """The published Markdown of FOLDER (and its tables/*.csv) as a section of a page in BASE."""
    prefix = os.path.relpath(folder, base).replace(os.sep, "/") + "/"
    parts = [f'<h2 id="{esc(anchor)}">{esc(_title(folder))}</h2>',
             f'<p class="tl-note">Rendered from the published Markdown in {esc(prefix)} (no run store here): '
             "<code>transferlab report RUN</code> on the run's store writes its interactive report.html.</p>"]
    for name in MARKDOWN:
        if (folder / name).is_file():
            parts.append(markdown_section(folder / name, summary=f"{prefix}{name}", open_=name == "README.md",
                                          prefix=prefix, shift=2))
    csvs = sorted((folder / "tables").glob("*.csv")) if (folder / "tables").is_dir() else []
    for path in csvs:
        parts.append(f'<details class="tl-md"><summary>{esc(prefix)}tables/{esc(path.name)}</summary>'
                     f"{frame_table(pd.read_csv(path), filterable=True)}</details>")
    return "\n".join(parts)


def _is_markdown_study(folder: Path) -> bool:
    if (folder / "summary.md").is_file() or (folder / "translation.md").is_file():
        return True
    return (folder / "README.md").is_file() and any(folder.glob("*.png"))


def _unreported_run(folder: Path) -> bool:
    """A run whose report predates report.html: its card says how to draw one (not its Markdown twice)."""
    return (folder / "results.sqlite").is_file() and not (folder / "report" / SUMMARY).is_file()


def discover(root: Path) -> list[dict[str, Any]]:
    """Every run under ROOT: its folder and report.json record, or the record read from its Markdown."""
    root = Path(root)
    found = []
    for here, dirs, _ in os.walk(root):
        folder = Path(here)
        depth = len(folder.relative_to(root).parts)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in SKIP and depth < MAX_DEPTH)
        record = None
        if (folder / SUMMARY).is_file():
            try:
                record = json.loads((folder / SUMMARY).read_text())
            except ValueError:
                record = None
        if record is not None:
            found.append({"folder": folder, **record})
        elif folder != root and _is_markdown_study(folder) and not _unreported_run(folder.parent):
            found.append({"folder": folder, "kind": _kind(folder), "title": _title(folder), "page": None,
                          "headline": _static_headline(folder), "static": True})
        elif _unreported_run(folder):
            found.append({"folder": folder, "kind": "run", "title": folder.name, "page": None, "headline": [],
                          "pending": f"no report.html yet: transferlab report {folder}"})
    return found


def _card(entry: dict[str, Any], base: Path) -> str:
    folder = entry["folder"]
    link = os.path.relpath(folder / entry["page"], base) if entry.get("page") else entry.get("anchor")
    title = esc(entry.get("title") or folder.name)
    head = f'<a href="{esc(link)}">{title}</a>' if link else title
    items = "".join(f"<li>{inline(label)}{': <b>' + inline(value) + '</b>' if value else ''}</li>"
                    for label, value in entry.get("headline", []))
    links = [f'<a href="{esc(link)}">{"report.html" if entry.get("page") else "rendered below"}</a>'] if link else []
    for name in ("summary.md", "translation.md", "README.md"):
        if (folder / name).is_file():
            links.append(f'<a href="{esc(os.path.relpath(folder / name, base))}">{name}</a>')
    notes = []
    if entry.get("static"):
        notes.append("published Markdown only (the run store is not here): rendered below")
    if entry.get("pending"):
        notes.append(entry["pending"])
    where = esc(os.path.relpath(folder, base)) + (f" · {esc(entry['written'])}" if entry.get("written") else "")
    return (f'<div class="tl-card"><h3>{head}</h3><span class="tl-kind">{esc(entry.get("kind", "?"))}</span> '
            f'<span class="tl-note">{where}</span>'
            f"<ul>{items}</ul>" + "".join(f'<p class="tl-note">{esc(n)}</p>' for n in notes)
            + f'<div class="tl-links">{" ".join(links)}</div></div>')


def write_index(root: Path, out: Path | None = None, title: str = "transferlab results") -> Path:
    """Write ROOT/index.html (or OUT): one card per run found under ROOT; returns its path."""
    root = Path(root)
    out = Path(out) if out else root / "index.html"
    entries = discover(root)
    for i, entry in enumerate(entries):
        if entry.get("static"):
            entry["anchor"] = f"#study-{i}"
    page = Page(title, subtitle=f"{len(entries)} runs under {root}", contained=False)
    page.text("One card per run: its headline numbers and a link to its self-contained report.html (or, for a study "
              "published as Markdown only, to its rendering further down this page). Regenerate with "
              f"`transferlab report --index {root}`.", note=True)
    page.raw('<div class="tl-cards">' + "".join(_card(e, out.parent) for e in entries) + "</div>")
    if not entries:
        page.text("No runs found: a run's folder holds report.json once `transferlab report RUN` has drawn it.")
    for entry in entries:
        if entry.get("static"):
            page.raw(static_section(entry["folder"], entry["anchor"][1:], out.parent))
    return write_page(page, out)
