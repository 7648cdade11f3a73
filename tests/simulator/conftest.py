"""Fixtures of the simulator tests."""

from __future__ import annotations

import pytest

from simulator.loader import load_scenario
from simulator.scenario import Scenario


@pytest.fixture
def small() -> Scenario:
    """A short, small run of the 1,000-tenant preset (model defaults)."""
    return load_scenario("plan-b-1000").updated(
        {
            "population.tenants": 400,
            "run.horizon_s": 1800.0,
            "run.warmup_s": 300.0,
            "run.replications": 2,
        }
    )
