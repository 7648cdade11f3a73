"""IMAP connection pools: per-process bookkeeping, the event model's IMAP syncs, the closed form."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from daemon import policy
from daemon.policy import SyncKind
from simulator.engine import JobTrace, Simulation
from simulator.gate import LOGIN, NOOP, REUSE
from simulator.imap_pool import ConnectionPools, pool_odds
from simulator.loader import load_scenario
from simulator.scenario import Scenario
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


def test_event_model_logs_in_once_per_process_while_the_connection_is_pooled() -> None:
    # Every 60 s on two processes, starting with empty pools: each (mailbox, process) pair
    # logs in on its first sync and never again (idling 1,500 s would take 25 syncs in a
    # row on the other process).
    s = _imap_only("qresync", 2, **{"population.initial": "stale", "population.stale_h": 0.0})
    s = s.updated({"population.sync_interval_s": {"kind": "constant", "value": 60}})
    jobs = _trace(s)
    logins = Counter((j.mailbox, j.process) for j in jobs if j.setup == LOGIN)
    used = {(j.mailbox, j.process) for j in jobs}
    assert set(logins) == used and set(logins.values()) == {1}
    first: dict[tuple[int, int], int] = {}
    for j in jobs:
        first.setdefault((j.mailbox, j.process), j.setup)
    assert set(first.values()) == {LOGIN}
    # A single process: one login per mailbox, and 60 s idles never need a NOOP.
    one = _trace(s.updated({"daemon.processes": 1}))
    assert Counter(j.setup for j in one) == {
        LOGIN: s.population.tenants,
        REUSE: len(one) - s.population.tenants,
    }
    assert {j.kind for j in one} == {SyncKind.INCREMENTAL}
