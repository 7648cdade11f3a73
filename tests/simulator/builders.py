"""Scenario builders shared by the simulator tests."""

from __future__ import annotations

from typing import Any

from simulator.inputs.loader import load_scenario
from simulator.inputs.scenario import Scenario, plan_job_time

NO_ERRORS = {"transient": 0.0, "auth_revoked": 0.0, "permanent": 0.0}
NO_CPU = {
    "resources.cpu_ms_per_call": 0.0,
    "resources.cpu_ms_per_message": 0.0,
    "resources.cpu_ms_per_job": 0.0,
    "resources.db_commit_ms": 0.0,
    "resources.db_ms_per_message": 0.0,
    # Jobs start at the claim instant: the textbook's batch arrivals.
    "resources.dispatch_ms": 0.0,
    "resources.enqueue_ms_per_job": 0.0,
}


def deterministic(job_s: float, **changes: Any) -> Scenario:
    """The 300-tenant preset with constant job time, no failures, no cursor expiry."""
    s = load_scenario("plan-b-300-original")
    return s.updated(
        {
            **plan_job_time(job_s),
            **NO_CPU,
            "daemon.cursor_expiry_per_sync": 0.0,
            "providers.gmail.errors": NO_ERRORS,
            "providers.graph.errors": NO_ERRORS,
            "run.drain": False,
            **{k.replace("__", "."): v for k, v in changes.items()},
        }
    )


# Gmail onboarding whose enforced quotas are the plan's but whose real provider is
# Google's 2026 documentation: the real window answers 429 (``actual_quotas``).
TIGHTER_REAL_GMAIL = {
    "population.providers": {"gmail": 1.0},
    "population.tenants": 50,
    "population.initial": "never_synced",
    "daemon.quota_preset": "as-planned",
    "providers.gmail.actual_quotas": "documented-2026",
}
