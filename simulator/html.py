"""Small HTML building blocks for the self-contained report page."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

STYLE = """
body{font-family:system-ui,sans-serif;max-width:1180px;margin:2em auto;color:#222;line-height:1.45}
table{border-collapse:collapse;margin:.6em 0 1.4em;font-size:13px}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:right;vertical-align:top}
th{background:#f2f2f2}td.l,th.l{text-align:left}
.pass{background:#e5f5e5}.fail{background:#fbe3e3}.note{background:#fff7dd;padding:.6em 1em;
border-left:4px solid #e0b000}img{max-width:100%}code{background:#f4f4f4;padding:0 3px}
"""


def esc(x: Any) -> str:
    """Escaped text."""
    return html.escape(str(x))


def table(
    header: Sequence[str],
    rows: Sequence[Sequence[Any]],
    left: int = 1,
    classes: Sequence[str] | None = None,
) -> str:
    """An HTML table; the first ``left`` columns are left-aligned; optional row classes."""
    out = ["<table><tr>"]
    out += [f'<th class="{"l" if i < left else ""}">{esc(h)}</th>' for i, h in enumerate(header)]
    out.append("</tr>")
    for j, row in enumerate(rows):
        cls = f' class="{classes[j]}"' if classes and classes[j] else ""
        out.append(f"<tr{cls}>")
        out += [f'<td class="{"l" if i < left else ""}">{esc(c)}</td>' for i, c in enumerate(row)]
        out.append("</tr>")
    out.append("</table>")
    return "".join(out)


def figure(png_b64: str, caption: str) -> str:
    """An embedded PNG with a caption."""
    return (
        f'<figure><img alt="{esc(caption)}" src="data:image/png;base64,{png_b64}">'
        f"<figcaption>{esc(caption)}</figcaption></figure>"
    )


def page(title: str, body: str) -> str:
    """The whole document."""
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(title)}</title>"
        f"<style>{STYLE}</style></head><body>{body}</body></html>"
    )


def fmt(x: float, digits: int = 3) -> str:
    """A number for a table cell."""
    if x != x:  # NaN
        return "n/a"
    if x in (float("inf"), float("-inf")):
        return "∞"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.{digits}g}"
