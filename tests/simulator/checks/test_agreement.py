"""The fast-path agreement check can fail: relative tolerances, the simulation's CI, errors
shown (issue 9, item 4)."""

from __future__ import annotations

import numpy as np
import pytest

from simulator.checks import validation
from simulator.inputs.loader import load_scenario
from simulator.report.plan_sections import agreement_html
from simulator.runs.results import Estimate, ScenarioResult

FAST = {
    "stable": 1.0,
    "throughput_per_min": 200.0,
    "capacity_per_min": 900.0,
    "wait_mean": 0.3,
    "staleness_p50": 155.0,
    "staleness_p95": 296.0,
    "util_workers": 0.25,
    "cpu_pct_host": 0.8,
    "ram_gb_host": 0.085,
    "cost_month": 215.0,
}
EVENT_KEY = {fk: ek for fk, ek, *_ in validation.CHECKS}


def _result(event: dict[str, tuple[float, float]]) -> ScenarioResult:
    metrics = {EVENT_KEY[k]: Estimate(m, h, 5) for k, (m, h) in event.items()}
    s = load_scenario("plan-b-1000")
    return ScenarioResult(s, metrics, [], "none", {}, np.zeros(0))


@pytest.fixture
def fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(validation, "fast_for", lambda s, as_run=False: dict(FAST))


@pytest.mark.usefixtures("fast")
def test_small_figures_off_by_a_lot_do_not_agree() -> None:
    # A wait of 0.2 s against the fast path's 0.3 s, and CPU of 0.6 % against 0.8 %, both
    # measured to 1 %: the old absolute floors (1 s, 0.5 points) called these agreement.
    rows = validation.compare(_result({"wait_mean": (0.2, 0.002), "cpu_pct_host": (0.6, 0.006)}))
    by = {a.metric: a for a in rows}
    assert not by["wait_mean"].ok and by["wait_mean"].resolved
    assert not by["cpu_pct_host"].ok and by["cpu_pct_host"].resolved


@pytest.mark.usefixtures("fast")
def test_errors_are_relative_and_judged_against_the_tolerance_when_resolved() -> None:
    rows = validation.compare(
        _result(
            {
                "throughput_per_min": (196.0, 1.0),  # +2.0 %: agrees
                "staleness_p95": (280.0, 1.0),  # +5.7 %: outside 5 %
                "ram_gb_host": (0.085, 0.0),  # exact, CI of zero width
            }
        )
    )
    by = {a.metric: a for a in rows}
    assert by["throughput_per_min"].error == pytest.approx(4 / 196)
    assert by["throughput_per_min"].ok
    assert by["staleness_p95"].error == pytest.approx(16 / 280)
    assert not by["staleness_p95"].ok
    assert by["ram_gb_host"].ok and by["ram_gb_host"].error == 0


@pytest.mark.usefixtures("fast")
def test_an_unresolved_figure_is_held_to_the_confidence_interval() -> None:
    # 10 % apart with a CI of ±20 %: the simulation cannot tell; with ±3 % it can.
    wide = validation.compare(_result({"capacity_per_min": (1000.0, 200.0)}))[0]
    assert not wide.resolved and wide.ok
    narrow = validation.compare(_result({"capacity_per_min": (1000.0, 30.0)}))[0]
    assert narrow.resolved and not narrow.ok
    # 40 % apart with the same wide CI: outside it.
    far = validation.compare(_result({"capacity_per_min": (1500.0, 200.0)}))[0]
    assert not far.resolved and not far.ok


@pytest.mark.usefixtures("fast")
def test_the_report_shows_errors_and_counts_only_resolved_figures() -> None:
    rows = validation.compare(
        _result(
            {
                "throughput_per_min": (196.0, 1.0),
                "wait_mean": (0.2, 0.002),
                "capacity_per_min": (1000.0, 200.0),
            }
        )
    )
    page = agreement_html(rows)
    assert "1 of 2 figures the simulation resolves agree" in page
    assert "+50 %" in page.replace("\u00a0", " ")  # the wait's error
    assert "within CI" in page
