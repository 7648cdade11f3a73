"""Presentation: numbers for people, HTML building blocks and figures.

``formatting`` (the one place figures become text), ``html`` and ``figures`` (matplotlib,
embedded as base64 PNG). Callers use the modules themselves (``formatting as fm``,
``html as h``, ``figures``). ``figures`` is not imported here: it switches matplotlib to its
Agg backend, which a notebook that only wants ``formatting`` must not inherit.
"""

from simulator.render import formatting, html

__all__ = ["formatting", "html"]
