"""Presentation: numbers for people, HTML building blocks and figures.

``formatting`` (the one place figures become text), ``html`` and ``figures`` (matplotlib,
embedded as base64 PNG). Callers use the modules themselves (``formatting as fm``,
``html as h``, ``figures``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from simulator.exports import lazy

if TYPE_CHECKING:
    from simulator.render import figures, formatting, html

# Where each public name lives; imported on first use (``simulator.exports``).
_WHERE = {
    "figures": "",
    "formatting": "",
    "html": "",
}

__all__ = ["figures", "formatting", "html"]

__getattr__ = lazy(__name__, _WHERE)
