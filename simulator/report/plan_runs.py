"""What the Plan B report simulates besides the presets' own runs: the dynamics timelines,
the onboarding drains, the presets' run lengths and the capacity tables picked on the fast
path. Scenarios in, scenarios (or tables) out; ``plan_b`` runs and renders them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from simulator.inputs.scenario import Scenario, plan_job_time
from simulator.report import claims
from simulator.runs.sweep import capacity_table

# (base scenario, label, capacity table, configurations tried) of one capacity table.
CapacityTable = tuple[Scenario, str, list[dict[str, Any]], int]


def _timeline(base: Scenario, name: str, hours: float, changes: dict[str, Any]) -> Scenario:
    return base.updated(
        {
            "name": name,
            "run.horizon_s": hours * 3600,
            "run.warmup_s": 0.0,
            "run.replications": 1,
            "run.sample_interval_s": 300.0,
            "run.drain": False,
            **changes,
        }
    )


def dynamics_scenarios(presets: Sequence[Scenario], quick: bool) -> list[Scenario]:
    """Overload (10 s jobs, 2,400 tenants on ``original``) and recovery from outages just
    past and just short of the profile's ``normal_after_h``."""
    original = next(s for s in presets if s.daemon.profile == "original")
    planb = next(s for s in presets if s.name == "plan-b-1000")
    after = planb.profile().normal_after_h
    return [
        _timeline(
            original,
            "overload-2400-original",
            4.0 if quick else 12.0,
            {**plan_job_time(claims.PLAN_JOB_S), "population.tenants": 2400},
        ),
        _timeline(
            planb,
            f"outage-{after + 2:g}h-plan-b",
            18.0 if quick else 24.0,
            {"population.initial": "stale", "population.stale_h": after + 2},
        ),
        _timeline(
            planb,
            f"outage-{after - 1:g}h-plan-b",
            3.0 if quick else 6.0,
            {"population.initial": "stale", "population.stale_h": after - 1},
        ),
    ]


# "Before" chunked full syncs: a run waits for its quota however long that takes.
INLINE_WAIT = {"full_sync_quota_wait_s": 1e9}


def onboarding(base: Scenario, quick: bool) -> list[Scenario]:
    """A drain of never-synced mailboxes under each quota preset (and 2026's without
    chunked full syncs): how long onboarding takes."""
    n = 300 if quick else base.population.tenants
    variants: list[tuple[str, str, dict[str, Any]]] = [
        ("as-planned", "as-planned", {}),
        ("documented-legacy", "documented-legacy", {}),
        ("documented-2026-inline", "documented-2026", INLINE_WAIT),
        ("documented-2026", "documented-2026", {}),
    ]
    return [
        base.updated(
            {
                "name": f"onboarding-{n}-{label}",
                "population.tenants": n,
                "population.initial": "never_synced",
                "daemon.quota_preset": preset,
                "daemon.overrides": {**base.daemon.overrides, **extra},
                "run.steady": False,
                "run.drain": True,
                "run.replications": 1,
                "run.horizon_s": 72 * 3600.0,
            }
        )
        for label, preset, extra in variants
    ]


# Replications per preset in ``plan_b_report`` unless ``--replications`` says otherwise.
REPORT_REPLICATIONS = 3
# The presets' steady runs: an hour with a quarter of it warm-up, three replications and
# more (up to ``sequential.MOST``) where an interval is wider than ``sequential.TARGET``.
STEADY_HORIZON_S = 3600.0
STEADY_WARMUP_S = 900.0
# The capacity tables' event check: one run per row, 15 minutes measured after 5 minutes of
# warm-up. The populations start in their steady state (sync times spread over the interval),
# and every row's configuration keeps 3 % headroom on p99 staleness and 15 % on its busiest
# resource, so a verdict needs a few sync intervals (270-300 s), not an hour: at 300 tenants
# that is still 9,000 staleness samples for the p99.
VERIFY_HORIZON_S = 1200.0
VERIFY_WARMUP_S = 300.0


def report_presets(presets: list[Scenario], replications: int | None) -> list[Scenario]:
    """The shipped scenarios (as ``plan_b.prepare`` made them) as the report runs them;
    ``replications``: the count asked for, if any."""
    if replications is None:
        # Three replications keep every confidence interval (t with 2 degrees of freedom)
        # at 60 % of the event work of the scenarios' five.
        presets = [
            s.updated({"run.replications": min(s.run.replications, REPORT_REPLICATIONS)})
            for s in presets
        ]
    # Steady runs of an hour, with more replications where an interval is still wide
    # (``sequential``). A drain run ends when every mailbox has synced once (half an hour at
    # most for the presets); the hour caps only a drain that never ends, where a mailbox
    # failed for good.
    presets = [
        s.updated(
            {
                "run.horizon_s": min(s.run.horizon_s, STEADY_HORIZON_S),
                "run.warmup_s": min(s.run.warmup_s, STEADY_WARMUP_S),
            }
        )
        for s in presets
    ]
    return presets


def capacity_tables(presets: Sequence[Scenario], quick: bool) -> list[CapacityTable]:
    """(base scenario, label, table, configurations tried) of each capacity table, picked on
    the fast path; their event verification runs later with every other simulation."""
    # The capacity tables' event check is a verdict per row (no interval is shown): one
    # replication of 20 minutes each (``VERIFY_HORIZON_S``).
    sweep_base = next(s for s in presets if s.name == "plan-b-1000").updated(
        {
            "criteria.fresh_quantile": 0.99,
            "run.replications": 1,
            "run.horizon_s": min(VERIFY_HORIZON_S, presets[0].run.horizon_s),
            "run.warmup_s": min(VERIFY_WARMUP_S, presets[0].run.warmup_s),
        }
    )
    tenants = (300, 1000, 5000, 20_000) if quick else (300, 1000, 1500, 3000, 5000, 10_000, 20_000)
    processes = (1, 2, 4, 8) if quick else (1, 2, 4, 8, 16, 32)
    sweeps = [(sweep_base, "the model's latency defaults")]
    if not quick:
        sweeps.append(
            (
                sweep_base.updated({**plan_job_time(claims.PLAN_JOB_S), "name": "plan-b-10s-jobs"}),
                "the plan's 10 s per job",
            )
        )
    # The capacity tables' picks first (fast path), so that their verification runs in the
    # same pool as every other simulation: one queue keeps both cores busy to the end.
    tables = []
    for base, label in sweeps:
        table, n_configs = capacity_table(
            base, tenants=tenants, processes=processes, verify=False, p=claims.profile(base)
        )
        tables.append((base, label, table, n_configs))
    return tables
