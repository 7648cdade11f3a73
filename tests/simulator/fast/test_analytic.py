"""The fast path on its own: vectorised shapes, limits and monotonicity."""

from __future__ import annotations

import numpy as np
import pytest

from simulator.fast.analytic import JobProfile, evaluate, job_profile, largest_interval
from simulator.inputs.loader import load_scenario
from simulator.inputs.scenario import Scenario

Pair = tuple[Scenario, JobProfile]


@pytest.fixture(scope="module")
def planb() -> Pair:
    s = load_scenario("plan-b-1000")
    return s, job_profile(s)


def test_grid_shapes_and_monotone_load(planb: Pair) -> None:
    s, p = planb
    tenants = np.array([100.0, 1000.0, 5000.0, 20_000.0, 40_000.0])
    out = evaluate(s, p, tenants, np.ones_like(tenants))
    assert out["throughput_per_min"].shape == tenants.shape
    assert np.all(np.diff(out["demand_per_min"]) > 0)
    # One plan-b process claims at most batch_size per cycle: 1,200/min.
    assert out["x_max_per_min"].max() <= 200 * 6 + 1e-9
    assert not out["stable"][-1] and out["stable"][0]
    assert np.isinf(out["wait_mean"][-1])


def test_more_processes_raise_capacity_and_cost(planb: Pair) -> None:
    s, p = planb
    k = np.array([1.0, 2.0, 4.0])
    out = evaluate(s, p, np.full(3, 20_000.0), k)
    assert np.all(np.diff(out["x_max_per_min"]) > 0)
    assert np.all(np.diff(out["cost_month"]) > 0)


def test_plan_job_time_limits_plan_b_to_its_high_workers() -> None:
    from simulator.inputs.scenario import plan_job_time

    s = load_scenario("plan-b-1000").updated(
        {**plan_job_time(10.0), "daemon.cursor_expiry_per_sync": 0.0}
    )
    p = job_profile(s)
    out = evaluate(s, p, np.array([1000.0]), np.array([1.0]))
    high = s.profile().concurrency.high
    assert float(out["x_max_per_min"][0]) == pytest.approx(high * 60 / p.s_inc, rel=1e-6)
    assert p.s_inc == pytest.approx(10.0, rel=0.01)


def test_largest_interval_meets_the_operational_reading(planb: Pair) -> None:
    s, p = planb
    ops = s.updated({"criteria.fresh_quantile": 0.99})
    best = largest_interval(ops, p, 1000, 1)
    assert 250 < best < 300
    # The strict reading fails whenever a full sync after an expired cursor is expected.
    assert np.isnan(largest_interval(s, p, 1000, 1))
