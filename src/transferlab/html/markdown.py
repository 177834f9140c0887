"""The Markdown our reports write, as HTML: headings, paragraphs, lists, code, pipe tables, images.

Not a general Markdown parser: it reads what `summary.md`, `translation.md` and the shipped
READMEs contain. Tables become the page's sortable, filterable tables; an image a Markdown file
links beside it is inlined as a data URI, so the page stays one file; links to other files stay
relative links (`prefix` re-roots them for a page in another folder, e.g. the index, which
then links figures instead of inlining them). Text is escaped before any inline markup is applied.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from pathlib import Path

from transferlab.html.page import esc

MIME = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".svg": "image/svg+xml", ".gif": "image/gif"}
_TABLE_ROW = re.compile(r"^\s*\|.*\|\s*$")
_RULE = re.compile(r"^\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$")
_LIST = re.compile(r"^(\s*)([-*]|\d+\.)\s+(.*)$")


@dataclass(frozen=True)
class Where:
    """Where a Markdown file lives (`base`), whether its images are inlined, and the prefix
    that makes its relative links work from the page's folder."""
    base: Path | None = None
    inline_images: bool = True
    prefix: str = ""


def _relative(url: str) -> bool:
    return not re.match(r"^([a-z][a-z0-9+.-]*:|#|/)", url, re.I)


def _image(alt: str, src: str, where: Where) -> str:
    path = (where.base / src) if where.base is not None and _relative(src) else None
    if where.inline_images and path is not None and path.suffix.lower() in MIME and path.is_file():
        data = base64.b64encode(path.read_bytes()).decode()
        return (f'<figure class="tl-figure"><img alt="{alt}" src="data:{MIME[path.suffix.lower()]};base64,{data}">'
                f"<figcaption>{alt or path.name}</figcaption></figure>")
    src = where.prefix + src if _relative(src) else src
    return (f'<figure class="tl-figure"><img alt="{alt}" src="{src}">'
            f"<figcaption>{alt or src}</figcaption></figure>")


def inline(text: str, where: Where | None = None) -> str:
    """Inline markup of one escaped line: code spans first (kept verbatim), then images, links, bold, italics."""
    where = where or Where()
    codes: list[str] = []

    def keep(match: re.Match) -> str:
        codes.append(f"<code>{match.group(1)}</code>")
        return f"\x00{len(codes) - 1}\x00"

    def link(match: re.Match) -> str:
        url = match.group(2)
        return f'<a href="{where.prefix + url if _relative(url) else url}">{match.group(1)}</a>'

    out = re.sub(r"`([^`]+)`", keep, esc(text))
    out = re.sub(r"!\[([^\]]*)\]\(([^)\s]+)\)", lambda m: _image(m.group(1), m.group(2), where), out)
    out = re.sub(r"(?<![\w\"])\[([^\]]+)\]\(([^)\s]+)\)", link, out)
    out = re.sub(r"\*\*(?=\S)(.+?)(?<=\S)\*\*", r"<strong>\1</strong>", out)
    out = re.sub(r"(?<![\w*])\*(?=[^\s*])(.+?)(?<=[^\s*])\*(?![\w*])", r"<em>\1</em>", out)
    return re.sub(r"\x00(\d+)\x00", lambda m: codes[int(m.group(1))], out)


def _cells(line: str) -> list[str]:
    body = line.strip()
    body = body[1:] if body.startswith("|") else body
    body = body[:-1] if body.endswith("|") else body
    return [c.strip() for c in re.split(r"(?<!\\)\|", body)]


def _table(lines: list[str], where: Where) -> str:
    head, rows = _cells(lines[0]), [_cells(line) for line in lines[2:]]
    th = "".join(f"<th>{inline(c, where)}</th>" for c in head)
    body = []
    for row in rows:
        row = (row + [""] * len(head))[: len(head)]
        body.append("<tr>" + "".join(f"<td>{inline(c, where)}</td>" for c in row) + "</tr>")
    return (f'<div class="tl-table-wrap"><table class="tl-table"><thead><tr>{th}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table></div>")


def _list(lines: list[str], where: Where) -> str:
    """A list, nested by indentation; a continuation line joins the item above it."""
    out: list[str] = []
    depth: list[tuple[int, str]] = []  # (indent, tag) of the open lists
    for line in lines:
        match = _LIST.match(line)
        if not match:
            if out:
                out[-1] = out[-1] + " " + inline(line.strip(), where)
            continue
        indent, marker, text = len(match.group(1)), match.group(2), match.group(3)
        tag = "ol" if marker[0].isdigit() else "ul"
        while depth and indent < depth[-1][0]:
            out.append(f"</li></{depth.pop()[1]}>")
        if not depth or indent > depth[-1][0]:
            out.append(f"<{tag}>")
            depth.append((indent, tag))
        elif out and not out[-1].endswith(f"<{tag}>"):
            out.append("</li>")
        out.append(f"<li>{inline(text, where)}")
    while depth:
        out.append(f"</li></{depth.pop()[1]}>")
    return "".join(out)


def to_html(text: str, where: Where | None = None, *, shift: int = 0) -> str:
    """HTML of a Markdown text (`where`: its folder and how links resolve); `shift` lowers every
    heading level (1 makes `#` an h2)."""
    where = where or Where()
    lines = text.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.strip().startswith("```"):
            end = i + 1
            while end < len(lines) and not lines[end].strip().startswith("```"):
                end += 1
            out.append(f"<pre><code>{esc(chr(10).join(lines[i + 1:end]))}</code></pre>")
            i = end + 1
            continue
        if heading := re.match(r"^(#{1,6})\s+(.*)$", line):
            level = min(6, len(heading.group(1)) + shift)
            out.append(f"<h{level}>{inline(heading.group(2), where)}</h{level}>")
            i += 1
            continue
        if _TABLE_ROW.match(line) and i + 1 < len(lines) and _RULE.match(lines[i + 1]):
            end = i + 2
            while end < len(lines) and _TABLE_ROW.match(lines[end]):
                end += 1
            out.append(_table(lines[i:end], where))
            i = end
            continue
        if _LIST.match(line):
            end = i + 1
            while end < len(lines) and lines[end].strip() and (_LIST.match(lines[end]) or lines[end].startswith(" ")):
                end += 1
            out.append(_list(lines[i:end], where))
            i = end
            continue
        if not line.strip():
            i += 1
            continue
        end = i + 1
        while end < len(lines) and lines[end].strip() and not (
                lines[end].startswith(("#", "```")) or _LIST.match(lines[end]) or _TABLE_ROW.match(lines[end])):
            end += 1
        paragraph = "<br>".join(inline(part.rstrip(), where) for part in
                                " ".join(x.strip() if not x.endswith("  ") else x.strip() + "\x01"
                                         for x in lines[i:end]).split("\x01"))
        if paragraph.startswith("<figure") and paragraph.endswith("</figure>"):
            out.append(paragraph)
        else:
            out.append(f"<p>{paragraph}</p>")
        i = end
    return "\n".join(out)


def markdown_section(path: Path, *, summary: str = "", open_: bool = False, shift: int = 1,
                     prefix: str | None = None) -> str:
    """A Markdown file as a collapsible section of a page (open when `open_`); with `prefix`,
    its figures are linked (relative to the page, through `prefix`) instead of inlined."""
    where = Where(path.parent, inline_images=prefix is None, prefix=prefix or "")
    body = to_html(path.read_text(encoding="utf-8"), where, shift=shift)
    label = summary or f"The full Markdown report ({path.name}), with its PNG figures"
    return (f'<details class="tl-md"{" open" if open_ else ""}><summary>{esc(label)}</summary>'
            f'<div class="tl-markdown">{body}</div></details>')
