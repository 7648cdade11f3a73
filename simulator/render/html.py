"""Small HTML building blocks for the self-contained report page."""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from typing import Any

from simulator.render import formatting

STYLE = """
body{font-family:system-ui,sans-serif;max-width:1180px;margin:1em auto;padding:0 1em;color:#222;
line-height:1.45}
h1{margin:.2em 0 .3em;font-size:1.7em}h2{font-size:1.3em;margin:.8em 0 .4em}
table{border-collapse:collapse;margin:.6em 0 1.4em;font-size:13px}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:right;vertical-align:top}
th{background:#f2f2f2}td.l,th.l{text-align:left}
.pass{background:#e5f5e5}.fail{background:#fbe3e3}.note{background:#fff7dd;padding:.6em 1em;
border-left:4px solid #e0b000}img{max-width:100%;height:auto}code{background:#f4f4f4;padding:0 3px}
nav.toc{font-size:13px;margin:.3em 0 .6em}nav.toc a{margin-right:.9em;white-space:nowrap}
.lead{margin:.2em 0}section{margin:0 0 .4em}details>summary{cursor:pointer}
details>summary>h2{display:inline-block;margin:.5em 0}
#summary-table td{white-space:nowrap}
figure{margin:.8em 0 1.4em}figcaption{font-size:13px;color:#444;max-width:60em}
"""


def esc(x: Any) -> str:
    """Escaped text."""
    return html.escape(str(x))


def cell(x: Any) -> Any:
    """A table cell's text: integers with thousands separators, other numbers through
    ``formatting.num``; anything else as it is."""
    if isinstance(x, bool) or not isinstance(x, int | float):
        return x
    return f"{x:,}" if isinstance(x, int) else formatting.num(x)


def table(
    header: Sequence[str],
    rows: Sequence[Sequence[Any]],
    left: int = 1,
    classes: Sequence[str] | None = None,
    ident: str | None = None,
) -> str:
    """An HTML table; the first ``left`` columns are left-aligned; optional row classes and
    element id."""
    out = [f'<table id="{esc(ident)}"><tr>' if ident else "<table><tr>"]
    out += [f'<th class="{"l" if i < left else ""}">{esc(h)}</th>' for i, h in enumerate(header)]
    out.append("</tr>")
    for j, row in enumerate(rows):
        cls = f' class="{classes[j]}"' if classes and classes[j] else ""
        out.append(f"<tr{cls}>")
        out += [
            f'<td class="{"l" if i < left else ""}">{esc(cell(c))}</td>' for i, c in enumerate(row)
        ]
        out.append("</tr>")
    out.append("</table>")
    return "".join(out)


def figure(png_b64: str, caption: str, read: str = "") -> str:
    """An embedded PNG with a caption: what it shows and, in ``read``, what to read from it."""
    more = f" {esc(read)}" if read else ""
    return (
        f'<figure><img alt="{esc(caption)}" src="data:image/png;base64,{png_b64}">'
        f"<figcaption><b>{esc(caption)}.</b>{more}</figcaption></figure>"
    )


def slug(title: str) -> str:
    """An element id made of a title's letters and digits."""
    return "-".join("".join(c if c.isalnum() else " " for c in title.lower()).split())


def section(title: str, body: str, folded: bool = True, anchor: str | None = None) -> str:
    """A titled section; folded ones are a ``<details>`` the reader opens."""
    ident = anchor or slug(title)
    if not folded:
        return f'<section id="{ident}"><h2>{esc(title)}</h2>{body}</section>'
    return (
        f'<section id="{ident}"><details><summary><h2>{esc(title)}</h2></summary>'
        f"{body}</details></section>"
    )


def fold(section_html: str, folded: bool = True) -> str:
    """A section that starts with its ``<h2>`` title (as the plan sections do) as a
    ``section``: the title (tags dropped) becomes the heading, the rest the body."""
    m = re.match(r"\s*<h2[^>]*>(.*?)</h2>", section_html, flags=re.S)
    if m is None:
        raise ValueError("fold: the section must start with an <h2> title")
    title = html.unescape(re.sub(r"<[^>]+>", "", m.group(1)))
    return section(title, section_html[m.end() :], folded)


def toc(sections: Sequence[str]) -> str:
    """Links to every section of the page (found by their ``<section id>``)."""
    links = []
    for part in sections:
        if not part.startswith('<section id="'):
            continue
        ident = part.removeprefix('<section id="').partition('"')[0]
        title = html.unescape(part.partition("<h2>")[2].partition("</h2>")[0])
        links.append(f'<a href="#{ident}">{esc(title)}</a>')
    return '<nav class="toc"><b>Contents:</b> ' + " ".join(links) + "</nav>"


def header(title: str, sections: Sequence[str]) -> str:
    """The page's title, its table of contents and its sections."""
    return f"<h1>{esc(title)}</h1>" + toc(sections) + "".join(sections)


def page(title: str, body: str) -> str:
    """The whole document."""
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(title)}</title>"
        f"<style>{STYLE}</style></head><body>{body}</body></html>"
    )


def fmt(x: float, digits: int = 3) -> str:
    """A number for a table cell (``formatting.num``: separators, no scientific notation)."""
    return formatting.num(x, digits=digits)
