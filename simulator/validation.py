"""The fast path checked against the event simulation on the same scenarios."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from simulator.analytic import evaluate, job_profile
from simulator.results import ScenarioResult
from simulator.scenario import Scenario

# (fast-path key, event key, relative tolerance, absolute tolerance). A figure agrees when
# |fast - event| <= max(rel * |event|, abs). Waits are the loosest: with several schedulers
# the batches interact in ways the closed form only approximates.
CHECKS: list[tuple[str, str, float, float]] = [
    ("throughput_per_min", "throughput_per_min", 0.03, 1.0),
    ("capacity_per_min", "capacity_per_min", 0.20, 5.0),
    ("wait_mean", "wait_mean_high", 0.50, 1.0),
    ("staleness_mean", "staleness_p50_all", 0.08, 5.0),
    ("staleness_p95", "staleness_p95_all", 0.05, 5.0),
    ("util_workers", "util_high", 0.20, 0.10),
    ("cpu_pct_host", "cpu_pct_host", 0.35, 0.5),
    ("ram_gb_host", "ram_gb_host", 0.10, 0.01),
    ("cost_month", "cost_month", 0.0, 0.01),
]


@dataclass(frozen=True)
class Agreement:
    """One figure, by both methods."""

    scenario: str
    metric: str
    fast: float
    event: float
    event_ci: float
    tolerance: float
    ok: bool


def fast_for(s: Scenario) -> dict[str, float]:
    """The fast path's figures for the scenario's own configuration."""
    p = job_profile(s)
    out = evaluate(
        s,
        p,
        np.array([s.population.tenants]),
        np.array([s.daemon.processes]),
        hosts=np.array([s.daemon.hosts]),
    )
    return {k: float(np.asarray(v).ravel()[0]) for k, v in out.items()}


def compare(result: ScenarioResult) -> list[Agreement]:
    """Agreement rows for one event-simulated scenario (skipped when it is overloaded)."""
    s = result.scenario
    f = fast_for(s)
    rows = []
    for fk, ek, rel, abs_tol in CHECKS:
        e = result.metrics.get(ek)
        if e is None or math.isnan(e.mean) or not f["stable"]:
            continue
        tol = max(rel * abs(e.mean), abs_tol)
        ok = abs(f[fk] - e.mean) <= tol
        rows.append(Agreement(s.name, fk, f[fk], e.mean, e.half, tol, ok))
    return rows
