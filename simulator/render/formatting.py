"""Numbers for people: the one place the report (and the notebooks) turn figures into text.

Rules: thousands separators, three significant digits (two for a confidence interval's
half-width), the unit in the text, a confidence interval as ``1,140 ± 50`` with the mean
rounded to the interval's resolution (so a mean below it reads 0), shares as percentages,
and never scientific notation. The CSV and JSON files keep full precision; only what a
person reads goes through here. Pure functions of floats.
"""

from __future__ import annotations

import math
from typing import Protocol

# Finer than this many decimal places a value reads as 0 (e.g. a Little's-law error of
# 3e-17 is rounding noise, not a figure).
MAX_DECIMALS = 6
NBSP = "\u00a0"
MISSING = "n/a"

# Units for ``quantity``: these two are converted, every other string is appended as is.
DURATION = "duration"  # seconds in, shown in s, min or h
SHARE = "share"  # a fraction in, shown as a percentage


class HasCI(Protocol):
    """A mean with the half-width of its confidence interval over ``n`` replications."""

    @property
    def mean(self) -> float: ...

    @property
    def half(self) -> float: ...

    @property
    def n(self) -> int: ...


def decimals(x: float, digits: int = 3) -> int:
    """Decimal places that show ``x`` with ``digits`` significant digits (negative: the
    number is rounded to tens, hundreds, ...)."""
    if x == 0 or not math.isfinite(x):
        return 0
    return digits - 1 - math.floor(math.log10(abs(x)))


def _fixed(x: float, dec: int) -> str:
    # ``dec`` decimal places, or rounded to 10**-dec when negative; no "-0".
    dec = min(dec, MAX_DECIMALS)
    text = f"{round(x, dec):,.0f}" if dec <= 0 else f"{x:,.{dec}f}"
    if _is_zero(text):
        return "0" if dec <= 0 else "0." + "0" * dec
    return text


def _is_zero(text: str) -> bool:
    return all(c in "-0.,+" for c in text)


def _strip(text: str) -> str:
    # Trailing zeros after the decimal point carry no information in a lone number.
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if _is_zero(text) else text


def _with_unit(text: str, unit: str) -> str:
    if not unit or text == MISSING:
        return text
    if unit.startswith("/"):
        return f"{text}{unit}"
    return f"{text}{NBSP}{unit}"


def _special(x: float) -> str | None:
    if math.isnan(x):
        return MISSING
    if math.isinf(x):
        return "∞" if x > 0 else "−∞"
    return None


def num(x: float, unit: str = "", digits: int = 3) -> str:
    """``x`` with ``digits`` significant digits and thousands separators: 2345.6 → "2,350",
    0.01234 → "0.0123", 60.0 → "60", 3e-17 → "0"; NaN → "n/a"."""
    special = _special(float(x))
    if special is not None:
        return _with_unit(special, unit)
    return _with_unit(_strip(_fixed(float(x), decimals(x, digits))), unit)


def ci(mean: float, half: float | None, unit: str = "", digits: int = 3) -> str:
    """A mean with its 95 % confidence interval, ``1,140 ± 50``: the half-width with two
    significant digits, the mean to the same resolution (so a mean below it reads 0). A
    half-width below the mean's third digit reads ``± 0``."""
    special = _special(float(mean))
    if special is not None:
        return _with_unit(special, unit)
    if half is None or math.isnan(half) or math.isinf(half) or half < 0:
        return num(mean, unit, digits)
    dm = decimals(mean, digits) if mean != 0 else None
    dh = decimals(half, 2) if half > 0 else None
    if dm is None and dh is None:
        return _with_unit("0 ± 0", unit)
    dec = min(d for d in (dm, dh, MAX_DECIMALS) if d is not None)
    m_text, h_text = _fixed(mean, dec), _fixed(half, dec)
    if _is_zero(m_text) or _is_zero(h_text):
        # Nothing to line up: a mean below the interval's resolution, or an interval below
        # the mean's, reads as 0.
        return _with_unit(f"{_strip(m_text)} ± {_strip(h_text)}", unit)
    return _with_unit(f"{m_text} ± {h_text}", unit)


def pct(fraction: float, half: float | None = None, digits: int = 3) -> str:
    """A share as a percentage: 0.5772 → "57.7 %", 0.0017 → "0.17 %"."""
    return ci(fraction * 100, None if half is None else half * 100, "%", digits)


def duration_unit(seconds: float) -> tuple[str, float]:
    """The unit a duration reads best in: seconds below 2 minutes, minutes below 2 hours,
    hours above; with the divisor."""
    a = abs(seconds)
    if not math.isfinite(a) or a < 120:
        return "s", 1.0
    if a < 7200:
        return "min", 60.0
    return "h", 3600.0


def duration(seconds: float, half: float | None = None, digits: int = 3) -> str:
    """A duration in s, min or h: 62 → "62 s", 569 → "9.48 min", 9000 → "2.5 h"."""
    unit, div = duration_unit(seconds)
    return ci(seconds / div, None if half is None else half / div, unit, digits)


def usd_month(x: float, digits: int = 3) -> str:
    """Monthly cost: 145 → "145 USD/month", 0.00725 → "0.00725 USD/month"."""
    return num(x, "USD/month", digits)


def quantity(mean: float, half: float | None = None, unit: str = "", digits: int = 3) -> str:
    """A figure in ``unit``: ``DURATION`` (seconds), ``SHARE`` (fraction) or a unit string
    that is appended (``/min``, ``MB``, ``GB``, ``%``, ``USD/month``...)."""
    if unit == DURATION:
        return duration(mean, half, digits)
    if unit == SHARE:
        return pct(mean, half, digits)
    return ci(mean, half, unit, digits)


def estimate(e: HasCI | None, unit: str = "", digits: int = 3) -> str:
    """A replicated estimate in ``unit`` (see ``quantity``); the interval only when there
    were at least two replications."""
    if e is None:
        return MISSING
    return quantity(e.mean, e.half if e.n >= 2 else None, unit, digits)
