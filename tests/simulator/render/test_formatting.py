"""Numbers for people (``simulator.render.formatting``), with values the report really shows."""

from __future__ import annotations

import re

import pytest

from simulator.render import formatting as fm
from simulator.runs.results import Estimate

NB = "\u00a0"
SCIENTIFIC = re.compile(r"\d[eE][+-]?\d")


@pytest.mark.parametrize(
    ("x", "text"),
    [
        (2345.6, "2,350"),
        (123_456_789.0, "123,000,000"),
        (999.7, "1,000"),
        (60.0, "60"),
        (1.0, "1"),
        (0.01234, "0.0123"),
        (0.09996, "0.1"),
        (2.69e-17, "0"),  # a Little's-law error: rounding noise
        (-0.0, "0"),
        (-1234.5, "-1,230"),
        (float("nan"), "n/a"),
        (float("inf"), "∞"),
    ],
)
def test_num_has_three_significant_digits_and_separators(x: float, text: str) -> None:
    assert fm.num(x) == text


def test_num_digits_and_units() -> None:
    assert fm.num(0.145, "USD/month") == f"0.145{NB}USD/month"
    assert fm.num(915.3, "/min") == "915/min"
    assert fm.num(37.61, "%", digits=2) == f"38{NB}%"
    assert fm.num(float("nan"), "GB") == "n/a"


@pytest.mark.parametrize(
    ("mean", "half", "text"),
    [
        (2340.0, 246.0, "2,340 ± 250"),  # was "2.34e+03 ± 246"
        (1140.0, 49.6, "1,140 ± 50"),
        (60.0, 9.86e-15, "60 ± 0"),  # was "60 ± 9.86e-15"
        (1950.0, 9410.0, "2,000 ± 9,400"),  # the mean to the interval's resolution
        (0.0003, 0.02, "0 ± 0.02"),  # a mean below the interval's resolution reads 0
        (0.0, 0.0, "0 ± 0"),
        (1.5, 0.12, "1.50 ± 0.12"),
        (915.0, float("nan"), "915"),  # one replication: no interval
        (float("nan"), 3.0, "n/a"),
    ],
)
def test_confidence_intervals(mean: float, half: float, text: str) -> None:
    assert fm.ci(mean, half) == text


def test_percentages() -> None:
    assert fm.pct(0.5772) == f"57.7{NB}%"
    assert fm.pct(0.0017) == f"0.17{NB}%"
    assert fm.pct(0.00278, 0.00046) == f"0.278 ± 0.046{NB}%"
    assert fm.pct(0.05) == f"5{NB}%"


@pytest.mark.parametrize(
    ("seconds", "half", "text"),
    [
        (62.0, None, f"62{NB}s"),
        (0.15, None, f"0.15{NB}s"),
        (569.0, None, f"9.48{NB}min"),
        (2260.0, 239.0, f"37.7 ± 4.0{NB}min"),
        (9000.0, None, f"2.5{NB}h"),
        (72 * 3600.0, None, f"72{NB}h"),
    ],
)
def test_durations_pick_their_unit(seconds: float, half: float | None, text: str) -> None:
    assert fm.duration(seconds, half) == text


def test_quantity_and_estimates() -> None:
    assert fm.quantity(0.0861, 0.0279, "GB") == f"0.086 ± 0.028{NB}GB"
    assert fm.quantity(0.749, 0.837, "%") == f"0.75 ± 0.84{NB}%"
    assert fm.quantity(0.25, None, fm.SHARE) == f"25{NB}%"
    assert fm.estimate(Estimate(2340.0, 246.0, 2), "/min") == "2,340 ± 250/min"
    # One replication has no interval even when a half-width is present.
    assert fm.estimate(Estimate(2340.0, 246.0, 1), "/min") == "2,340/min"
    assert fm.estimate(None) == "n/a"
    assert fm.usd_month(0.00725) == f"0.00725{NB}USD/month"


def test_no_value_ever_reads_in_scientific_notation() -> None:
    values = [10.0**k * m for k in range(-20, 16) for m in (1.0, 2.345, -9.87)]
    for x in values:
        assert not SCIENTIFIC.search(fm.num(x)), x
        for half in (abs(x) * 1e-16, abs(x) * 0.1, abs(x) * 50):
            assert not SCIENTIFIC.search(fm.ci(x, half)), (x, half)
