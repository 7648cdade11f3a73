"""The capacity table: cheapest passing configuration per tenant count."""

from __future__ import annotations

import numpy as np

from simulator.inputs.loader import load_scenario
from simulator.runs.sweep import capacity_table, evaluate_grid, grid, scenario_for


def test_cheapest_row_is_the_minimum_cost_among_passing_configurations() -> None:
    s = load_scenario("plan-b-1000").updated({"criteria.fresh_quantile": 0.99})
    # 5,000 tenants need 4 processes since Graph syncs read every folder (12 requests each).
    procs = (1, 2, 4)
    g = grid(s, tenants=(500, 5000), conc=(0.5, 1.0), processes=procs, intervals=(300.0, 240.0))
    out = evaluate_grid(s, g)
    rows, n = capacity_table(s, (500, 5000), (0.5, 1.0), procs, (300.0, 240.0), verify=False)
    assert n == g.size
    for r in rows:
        assert r["feasible"]
        sel = (
            (g.tenants == r["tenants"])
            & out["passes"].astype(bool)
            & (out["bottleneck_ratio"] <= 0.85)
            & (out["staleness_q"] <= 0.97 * s.criteria.fresh_within_s)
        )
        assert r["cost_month"] == float(np.min(out["cost_month"][sel]))
        assert r["bottleneck_ratio"] <= 0.85
        assert r["staleness_q_s"] <= s.criteria.fresh_within_s
        # The row round-trips into a valid event-simulation scenario.
        e = scenario_for(s, r)
        assert e.daemon.processes == r["processes"]
        assert e.population.sync_interval_s is not None


def test_verified_rows_carry_the_event_verdict() -> None:
    s = load_scenario("plan-b-1000").updated(
        {
            "criteria.fresh_quantile": 0.99,
            "run.replications": 1,
            "run.horizon_s": 1800.0,
            "run.warmup_s": 300.0,
        }
    )
    rows, _ = capacity_table(s, (300,), (1.0,), (1,), (240.0,), progress=False, jobs=1)
    assert rows[0]["event_pass"] is True
    assert rows[0]["event_failed"] == ""


def test_event_grid_simulates_every_point() -> None:
    from simulator.runs.sweep import event_grid

    s = load_scenario("plan-b-1000").updated(
        {
            "criteria.fresh_quantile": 0.99,
            "run.replications": 1,
            "run.horizon_s": 1200.0,
            "run.warmup_s": 300.0,
            "run.drain": False,
            "population.sync_interval_s": {"kind": "constant", "value": 240},
        }
    )
    points, best = event_grid(s, (200,), (0.5, 1.0), (1,), jobs=1, progress=False)
    assert len(points) == 2
    assert {p["concurrency"] for p in points} == {"8/5/4", "17/10/7"}
    assert best[0]["feasible"] and best[0]["passes"]
