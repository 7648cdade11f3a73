"""Fixtures of the simulator tests."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from simulator.inputs.loader import load_scenario
from simulator.inputs.scenario import Scenario
from simulator.report.plan_b import Options, plan_b_report


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


@pytest.fixture(scope="session")
def quick_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One quick Plan B report shared by every test that reads it."""
    t0 = time.perf_counter()
    index = plan_b_report(
        Options(out=tmp_path_factory.mktemp("report"), quick=True, progress=False)
    )
    print(f"quick report written in {time.perf_counter() - t0:.0f} s: {index}")
    return index
