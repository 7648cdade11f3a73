"""IMAP connection pools: per-process bookkeeping, the event model's IMAP syncs, the closed form."""

from __future__ import annotations

import math

import numpy as np
import pytest

from daemon import policy
from daemon.policy import SyncKind
from simulator.inputs.loader import load_scenario
from simulator.inputs.scenario import Scenario
from simulator.model.engine import JobTrace, Simulation
from simulator.model.gate import LOGIN, NOOP, REUSE
from simulator.model.imap_pool import ConnectionPools, pool_odds
from tests.simulator.builders import NO_ERRORS

KEEPALIVE, MAX_IDLE = 300.0, 1500.0


def test_one_process_logs_in_once_then_reuses_and_checks_idle_connections() -> None:
    pools = ConnectionPools(np.array([False, True]), 1, KEEPALIVE, MAX_IDLE, seed=1)
    got = []
    for start in (0.0, 100.0, 250.0, 700.0, 900.0, 3000.0):
        p, how = pools.take(1, start, counting=True)
        got.append(how)
        pools.give_back(1, p, start + 2.0, broken=False)
    # Idle 98 s and 148 s: reused; 448 s: NOOP; 198 s: reused; 2098 s: closed, log in.
    assert got == [LOGIN, REUSE, REUSE, NOOP, REUSE, LOGIN]
    p, how = pools.take(1, 3100.0, counting=True)
    pools.give_back(1, p, 3101.0, broken=True)
    assert pools.take(1, 3102.0, counting=True)[1] == LOGIN
    assert pools.account_peak == 1


def test_each_process_pays_its_own_login_while_others_are_pooled() -> None:
    pools = ConnectionPools(np.array([True]), 3, KEEPALIVE, MAX_IDLE, seed=4)
    last: dict[int, float] = {}
    for i in range(200):
        now = 60.0 * i
        p, how = pools.take(0, now, counting=True)
        idle = now - last[p] if p in last else math.inf
        expected = LOGIN if idle > MAX_IDLE else NOOP if idle > KEEPALIVE else REUSE
        assert how == expected, (i, p)
        pools.give_back(0, p, now + 1.0, broken=False)
        last[p] = now + 1.0
    # Every 60 s on one of 3 processes: each logged in once and stayed pooled.
    assert pools.takes[LOGIN] == 3 and pools.account_peak == 3
    pools.sample(200 * 60.0)
    assert pools.held_sum.tolist() == [1.0, 1.0, 1.0]


def test_the_closed_form_is_exact_for_one_process_and_bounded_for_many() -> None:
    one = pool_odds(310.0, 0.2, 1, KEEPALIVE, MAX_IDLE)
    assert (float(one["login"]), float(one["noop"]), float(one["held"])) == (0.0, 1.0, 1.0)
    fast = pool_odds(120.0, 0.2, 1, KEEPALIVE, MAX_IDLE)
    assert float(fast["noop"]) == 0.0
    four = pool_odds(310.0, 0.2, 4, KEEPALIVE, MAX_IDLE)
    # Four earlier syncs within max_idle, each elsewhere with probability 3/4.
    assert float(four["login"]) == pytest.approx(0.75**4)
    assert float(four["noop"]) == pytest.approx(1 - 0.75**4)
    assert float(four["account_peak"]) == 4.0
    many = pool_odds(310.0, 0.2, 32, KEEPALIVE, MAX_IDLE)
    assert float(many["account_peak"]) == 5.0


def _imap_only(mode: str, processes: int, **changes: object) -> Scenario:
    return load_scenario("mixed-imap").updated(
        {
            "population.tenants": 60,
            "population.providers": {"imap": 1.0},
            "providers.imap.mode": mode,
            "providers.imap.folders": 2,
            "providers.imap.errors": NO_ERRORS,
            "daemon.processes": processes,
            "daemon.hosts": 1,
            "daemon.cursor_expiry_per_sync": 0.0,
            "run.horizon_s": 1800.0,
            "run.warmup_s": 0.0,
            **changes,
        }
    )


def _trace(s: Scenario) -> list[JobTrace]:
    sim = Simulation(s, seed=2)
    sim.trace = []
    sim.run()
    return sim.trace


@pytest.mark.parametrize("mode", ["qresync", "condstore", "plain"])
def test_event_model_imap_calls_are_the_policy_calls_plus_setup(mode: str) -> None:
    s = _imap_only(mode, 2)
    shape = s.providers.imap.fetch_shape()
    setup = {REUSE: 0, NOOP: 1, LOGIN: s.providers.imap.logins}
    jobs = _trace(s)
    assert len(jobs) > 300 and {j.provider for j in jobs} == {"imap"}
    assert any(j.added and j.changed and j.deleted for j in jobs)
    for j in jobs:
        calls = policy.sync_calls("imap", j.kind, j.messages, j.added, j.changed, j.deleted, shape)
        assert j.calls == sum(c.count for c in calls) + setup[j.setup], j


def test_event_model_logs_in_at_every_scheduled_sync() -> None:
    # Every 60 s on two processes: a pooled login is trusted for 54 s (0.9 x the interval),
    # so each scheduled sync logs in again, as the daemon does.
    s = _imap_only("qresync", 2, **{"population.initial": "stale", "population.stale_h": 0.0})
    s = s.updated({"population.sync_interval_s": {"kind": "constant", "value": 60}})
    jobs = _trace(s)
    assert len(jobs) > 300 and {j.setup for j in jobs} == {LOGIN}
    one = _trace(s.updated({"daemon.processes": 1}))
    assert {j.setup for j in one} == {LOGIN}
    assert {j.kind for j in one} == {SyncKind.INCREMENTAL}


def test_pooled_login_is_reused_only_within_its_reauth_bound() -> None:
    pools = ConnectionPools(np.array([True]), 1, KEEPALIVE, MAX_IDLE, seed=1, reauth_s=100.0)
    got = []
    for start in (0.0, 40.0, 99.0, 101.0, 150.0, 400.0):
        p, how = pools.take(0, start, counting=True)
        got.append(how)
        pools.give_back(0, p, start + 0.5, broken=False)
    # Logged in at 0: reused at 40 and 99; 101 is past the bound. 150 reuses the login of
    # 101; at 400 it is 299 s old (and idled past keepalive): a new login, not a NOOP.
    assert got == [LOGIN, REUSE, REUSE, LOGIN, REUSE, LOGIN]
    assert pools.account_peak == 1  # a replaced login is not a second connection


def test_closed_form_with_a_reauth_bound() -> None:
    # Syncs farther apart than the bound: every one logs in, whatever the pool holds.
    on_schedule = pool_odds(300.0, 0.2, 4, KEEPALIVE, MAX_IDLE, reauth_s=270.0)
    assert (float(on_schedule["login"]), float(on_schedule["noop"])) == (1.0, 0.0)
    # One process, syncs every 40 s, bound 100 s: a login serves 3 syncs.
    one = pool_odds(40.0, 0.2, 1, KEEPALIVE, MAX_IDLE, reauth_s=100.0)
    assert float(one["login"]) == pytest.approx(1 / 3)
    # Without a bound the closed form is the idle-only one.
    assert float(pool_odds(310.0, 0.2, 4, KEEPALIVE, MAX_IDLE)["login"]) == pytest.approx(0.75**4)
