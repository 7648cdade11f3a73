"""The fast path agrees with the event simulation on the same scenarios (stated tolerances)."""

from __future__ import annotations

import pytest

from simulator.checks.validation import CHECKS, compare
from simulator.inputs.loader import load_scenario
from simulator.runs.runner import run_many
from tests.simulator.builders import deterministic


def test_fast_path_agrees_with_the_event_simulation() -> None:
    scenarios = [
        load_scenario("plan-b-1000").updated(
            {
                "name": "default-1000",
                "run.horizon_s": 2400.0,
                "run.warmup_s": 600.0,
                "run.replications": 2,
            }
        ),
        # Loaded: 2 s jobs keep the 17 high workers ~70 % busy with visible batch waits.
        deterministic(
            2.0,
            population__tenants=1500,
            daemon__profile="plan-b",
            run__horizon_s=2400.0,
            run__warmup_s=600.0,
            run__replications=2,
            run__drain=True,
            name="loaded-1500",
        ),
    ]
    results = run_many(scenarios, progress=False)
    rows = [a for r in results for a in compare(r)]
    checked = {(a.scenario, a.metric) for a in rows}
    assert len(checked) == len(CHECKS) * len(scenarios)
    # The mean wait with model latencies is a known gap (docs/simulator.md, "Where the fast
    # path is not expected to agree"): held to its old 50 %, and the row says why.
    bad = [a for a in rows if not a.ok and not (a.metric == "wait_mean" and a.note)]
    assert bad == []
    assert all(abs(a.error) <= 0.5 for a in rows if a.metric == "wait_mean")


def test_an_overloaded_scenario_is_reported_unstable_not_compared() -> None:
    s = deterministic(
        10.0,
        population__tenants=2000,
        run__horizon_s=1200.0,
        run__warmup_s=300.0,
        run__replications=1,
    )
    r = run_many([s], progress=False)[0]
    assert compare(r) == []
    assert r.get("util_high") == pytest.approx(1.0, abs=0.01)


def test_fast_path_agrees_on_a_mixed_imap_scenario() -> None:
    # A third of the tenants on IMAP, two processes: pooled connections are a visible part
    # of the RAM figure, and the set-up round trips of the job time.
    s = load_scenario("mixed-imap").updated(
        {
            "population.tenants": 900,
            "run.horizon_s": 2400.0,
            "run.warmup_s": 600.0,
            "run.replications": 2,
        }
    )
    r = run_many([s], progress=False)[0]
    rows = compare(r)
    assert {a.metric for a in rows} == {fk for fk, *_ in CHECKS}
    assert [a for a in rows if not a.ok] == []
    # A session outlives its sync by max_idle_s (90 s) plus half a sweep period (15 s) on
    # average, and the next sync is an interval (300 s) later, so each process holds about
    # 270 IMAP mailboxes / 2 x 105 / 300 = 47.
    assert r.get("imap_conn_process_mean") == pytest.approx(47, rel=0.15)
    # The session is closed long before the account's next sync, whichever process runs it,
    # so an account never has two.
    assert r.get("imap_conn_account_peak") == 1
