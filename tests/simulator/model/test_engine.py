"""The event model of the daemon: batch release, Little's law, quotas, failures, pushes."""

from __future__ import annotations

import pytest

from daemon import policy
from simulator.fast.closed_forms import batch_drain_mean, mmc_wait
from simulator.inputs.loader import load_scenario
from simulator.inputs.scenario import Scenario
from simulator.model.engine import Simulation
from simulator.runs.runner import run_many
from tests.simulator.builders import NO_ERRORS, TIGHTER_REAL_GMAIL, deterministic


def test_batch_release_waits_as_the_drain_formula_not_as_mmc() -> None:
    # 600 mailboxes every 300 s: a cycle releases 20 jobs of 2 s onto 5 workers.
    s = deterministic(
        2.0,
        population__tenants=600,
        daemon__overrides={"concurrency.high": 5},
        run__horizon_s=3600.0,
        run__warmup_s=600.0,
        run__replications=3,
    )
    r = run_many([s], progress=False)[0]
    drain = float(batch_drain_mean(20, 5, 2.0))
    assert r.get("wait_mean_high") == pytest.approx(drain, rel=0.05)
    # M/M/c would promise a third of it.
    assert float(mmc_wait(5, 2.0, 0.5)) < 0.4 * drain
    # The cycle adds its own wait: due -> claimed is up to one scheduler interval.
    assert r.get("lag_mean") == pytest.approx(drain + 2.0 + 5.0, rel=0.1)


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"daemon.processes": 3, "daemon.hosts": 3},
        # Stable: with 12-request Graph syncs 1,000 tenants saturate the five high workers,
        # and a queue still settling breaks Little's law over a finite window.
        {"population.tenants": 600, "daemon.profile": "original"},
        {"population.initial": "stale", "population.stale_h": 8.0},
        {"daemon.profile": "plan-b-wc", "population.initial": "stale", "population.stale_h": 8.0},
    ],
)
def test_littles_law_holds_on_every_queue(small: Scenario, changes: dict[str, object]) -> None:
    r = Simulation(small.updated(changes), seed=3).run().scalars
    for tier in policy.TIERS:
        if r[f"jobs_{tier}"] > 100 and r[f"queue_mean_{tier}"] > 0.01:
            assert r[f"little_err_{tier}"] < 0.02, tier


def test_work_conserving_pools_the_idle_workers_for_the_high_queue() -> None:
    # The original profile (5 + 3 + 2 workers) at 2 s per job: every on-schedule job is a
    # high one, so off a batch drains on the 5 high workers while the others idle; on, it
    # drains on all 10 (``policy.workers_serving``), exactly as 10 high workers would.
    base = deterministic(
        2.0,
        population__tenants=600,
        run__horizon_s=3600.0,
        run__warmup_s=600.0,
    )
    off = Simulation(base, seed=2).run().scalars
    on = Simulation(base.updated({"daemon.overrides": {"work_conserving": True}}), seed=2)
    on_s = on.run().scalars
    ten = base.updated({"daemon.overrides": {"concurrency.high": 10}})
    ten_s = Simulation(ten, seed=2).run().scalars
    assert off["util_normal"] == off["util_low"] == 0.0
    assert on_s["util_normal"] > 0.05 and on_s["util_low"] > 0.05
    for key in ("wait_mean_high", "wait_p95_high", "lag_p95", "throughput_per_min"):
        assert on_s[key] == pytest.approx(ten_s[key], rel=1e-9), key
    # Twice the workers: the batch drains in about half the time.
    assert on_s["wait_mean_high"] < 0.6 * off["wait_mean_high"]
    assert off["wait_mean_high"] == pytest.approx(float(batch_drain_mean(20, 5, 2.0)), rel=0.1)
    # The same jobs ran, their busy time spread over the three pools.
    busy_on = sum(on_s[f"util_{t}"] * c for t, c in zip(policy.TIERS, (5, 3, 2), strict=True))
    assert busy_on == pytest.approx(ten_s["util_high"] * 10, rel=1e-6)
    assert on_s["util_serving_high"] == pytest.approx(ten_s["util_high"], rel=1e-6)
    assert off["util_serving_high"] == off["util_high"]


def test_same_seed_same_run_other_seed_other_run(small: Scenario) -> None:
    a = Simulation(small, seed=5).run().scalars
    b = Simulation(small, seed=5).run().scalars
    c = Simulation(small, seed=6).run().scalars
    assert {k: v for k, v in a.items() if v == v} == {k: v for k, v in b.items() if v == v}
    assert a["wait_mean_high"] != c["wait_mean_high"]


def _busiest(log: list[tuple[float, float]], period_s: float) -> float:
    """Most units in any window (t - period_s, t] of a sorted admission log."""
    best = units = 0.0
    left = 0
    for t, u in log:
        units += u
        while log[left][0] <= t - period_s:
            units -= log[left][1]
            left += 1
        best = max(best, units)
    return best


@pytest.mark.parametrize("margin", [policy.QUOTA_MARGIN_DEFAULT, 1.0])
def test_a_saturated_app_quota_delivers_its_margin_and_not_one_call_more(margin: float) -> None:
    # Gmail only, the plan's app budget of 100 requests/s (burst 10): demand far above it.
    s = load_scenario("plan-b-1000").updated(
        {
            "population.tenants": 3000,
            "population.providers": {"gmail": 1.0},
            "population.sync_interval_s": {"kind": "constant", "value": 30},
            "daemon.quota_preset": "as-planned",
            "daemon.quota_margin": margin,
            "daemon.overrides": {"concurrency.high": 400, "batch_size": 2000},
            # Jobs start at the claim, so the gate's arithmetic is all there is.
            "resources.dispatch_ms": 0.0,
            "resources.enqueue_ms_per_job": 0.0,
            "run.horizon_s": 300.0,
            "run.warmup_s": 0.0,
            "run.drain": False,
        }
    )
    sim = Simulation(s, seed=1)
    gmail = sim.prov[0]
    assert gmail is not None
    gmail.app_log = []
    sim.run()
    # The bucket the daemon enforces: the provider's 100 per second under the margin.
    provider = policy.get_quota_preset("as-planned")["gmail"].quotas[0]
    enforced = s.enforced("gmail")
    assert enforced is not None
    q = enforced.quotas[0]
    assert (q.limit, q.burst) == (int(provider.limit * margin + 1e-9), provider.burst)
    horizon = sim.env.now
    # Every window [0, t] admits at most burst + rate x t, and the saturated gate uses it all.
    log = sorted(gmail.app_log)
    admitted = 0
    for t, units in log:
        admitted += units
        if t <= horizon:
            assert admitted <= q.burst + q.sustained_per_s * t + 1e-6
    # From the first claim on (schedulers start at a random phase) nothing is left unused.
    first = log[0][0]
    in_horizon = sum(u for t, u in log if t <= horizon)
    assert in_horizon >= q.sustained_per_s * (horizon - first) - q.burst
    # The provider's busiest second holds the margin's share of its limit, less at most
    # one request (a piece of at most a burst), and never more.
    busiest = _busiest(log, provider.period_s)
    assert q.limit - q.burst <= busiest <= margin * provider.limit


def test_drain_of_1000_is_claim_bound_under_fast_jobs() -> None:
    # Fast jobs: Graph narrowed to two folders (no folder lists), two requests per sync. With
    # the whole mailbox (12 requests per incremental sync) the high tier's workers bind.
    s = load_scenario("plan-b-1000").updated(
        {
            "providers.graph.folders": 2,
            "providers.graph.parent_folders": 0,
            "providers.graph.list_folders": False,
        }
    )
    r = Simulation(s, seed=2, mode="drain").run().scalars
    prof = s.profile()
    cycles = -(-950 // prof.batch_size)  # batches needed for 95 %
    assert r["drain95_s"] <= cycles * prof.scheduler_interval_s + 5
    assert r["capacity_per_min"] > 500


def test_revoked_credentials_park_every_mailbox() -> None:
    revoked = {**NO_ERRORS, "auth_revoked": 1.0}
    s = deterministic(
        0.1,
        **{
            "providers.gmail.errors": revoked,
            "providers.graph.errors": revoked,
            "run.horizon_s": 900.0,
            "run.warmup_s": 1.0,
        },
    )
    r = Simulation(s, seed=1).run().scalars
    assert r["error_rate"] == 1.0
    assert r["parked"] + r["throughput_per_min"] >= 1


def test_random_429s_retry_in_sync_then_fail_rate_limited() -> None:
    s = deterministic(
        0.1,
        **{
            "providers.graph.rate_429": 0.5,
            "providers.graph.retry_after_s": {"kind": "constant", "value": 1},
            "population.providers": {"graph": 1.0},
            "run.horizon_s": 1800.0,
            "run.warmup_s": 300.0,
        },
    )
    r = Simulation(s, seed=1).run().scalars
    assert r["throttled_graph"] > 0
    # n requests per incremental sync (folder lists and a delta page per folder; 12 by
    # default, sent as 3 HTTP requests: one JSON batch of the root list and the delta pages,
    # whose inner requests Graph throttles one by one and the daemon resends alone, and the
    # two child lists), each failing after 4 answers of 429 with probability 1/16.
    calls = policy.sync_calls("graph", policy.SyncKind.INCREMENTAL, 0)
    assert sum(c.requests for c in calls) == 3
    n = sum(c.count for c in calls)
    assert n == 12
    assert r["rate_limited_share"] == pytest.approx(1 - (1 - 0.5**4) ** n, abs=0.03)


def test_a_tighter_real_quota_answers_429_and_the_sync_waits_it_out() -> None:
    s = deterministic(0.1, **{**TIGHTER_REAL_GMAIL, "run.horizon_s": 1800.0, "run.warmup_s": 1.0})
    throttled = Simulation(s, seed=1).run().scalars
    unthrottled = Simulation(s.updated({"providers.gmail.actual_quotas": None}), seed=1).run()
    assert throttled["throttled_gmail"] > 0
    assert unthrottled.scalars["throttled_gmail"] == 0
    # The Retry-After waits (each within the in-sync cap) stretch every full sync.
    assert throttled["rate_limited_share"] == 0
    assert throttled["duration_mean_full"] > 2 * unthrottled.scalars["duration_mean_full"]


def test_push_notifications_enqueue_syncs_on_the_high_queue() -> None:
    s = deterministic(
        0.2, **{"daemon.push_share": 1.0, "run.horizon_s": 1800.0, "run.warmup_s": 300.0}
    )
    r = Simulation(s, seed=4).run().scalars
    assert r["push_per_min"] > 0
    # Syncs right after mail arrives pull the typical staleness well below the interval.
    assert r["staleness_p50_all"] < 150


def test_an_outage_past_normal_after_h_demotes_everyone() -> None:
    s = load_scenario("plan-b-1000").updated(
        {
            "population.tenants": 200,
            "population.initial": "stale",
            "population.stale_h": load_scenario("plan-b-1000").profile().normal_after_h + 1,
            "run.horizon_s": 1200.0,
            "run.warmup_s": 1.0,
            "run.drain": False,
        }
    )
    r = Simulation(s, seed=1).run().scalars
    # Every claimed mailbox went to the normal queue for a full sync; the high workers idle.
    assert r["tier_share_normal"] > 0.5
    assert r["jobs_normal"] >= 20
    assert r["util_high"] < 0.1 < r["util_normal"]
