"""The model of chunked full syncs: a Gmail full sync bound by its per-user quota gives its
worker back (``daemon.policy.quota_deferral``) as the daemon does."""

from __future__ import annotations

import numpy as np
import pytest

from daemon.policy import SyncKind, get_quota_preset, sync_calls
from simulator.inputs.loader import load_scenario
from simulator.inputs.population import Mailboxes
from simulator.inputs.scenario import Scenario
from simulator.model.engine import Simulation

BIG, SMALL = 2400, 10


def _scenario(wait_s: float) -> Scenario:
    return load_scenario("plan-b-1000").updated(
        {
            "population.tenants": 7,
            "population.initial": "never_synced",
            "daemon.quota_preset": "documented-2026",
            "daemon.overrides": {
                "concurrency": {"high": 1, "normal": 1, "low": 1},
                "full_sync_quota_wait_s": wait_s,
            },
            "daemon.cursor_expiry_per_sync": 0.0,
            "providers.gmail.latency_s": {"kind": "constant", "value": 0.05},
            "providers.gmail.errors": {"transient": 0.0, "auth_revoked": 0.0, "permanent": 0.0},
            "run.horizon_s": 7200.0,
        }
    )


def _mailboxes() -> Mailboxes:
    # One big Gmail mailbox first in the queue, six small ones behind it, no new mail.
    n = 7
    return Mailboxes(
        tenant=np.arange(n),
        provider=np.zeros(n, dtype=np.int64),
        arrivals_per_s=np.zeros(n),
        size=np.array([BIG] + [SMALL] * 6),
        interval_s=np.full(n, 300.0),
    )


def _onboard(wait_s: float) -> tuple[Simulation, dict[str, float]]:
    sim = Simulation(_scenario(wait_s), 3, mode="drain", mailboxes=_mailboxes())
    return sim, sim.run().scalars


def test_a_quota_bound_full_sync_frees_the_worker_for_small_mailboxes() -> None:
    s = _scenario(1.0)
    [user] = [q for q in s.limits()["gmail"].quotas if q.name == "gmail.user"]
    # getProfile, 5 list pages of 500 and a get (20 units) per message.
    units = 1 + 5 * 5 + 20 * BIG
    quota_bound = (units - user.burst) / user.sustained_per_s
    sim, out = _onboard(1.0)
    big, small = sim.first_done[0], sim.first_done[1:]
    # The big mailbox goes at its quota's pace, the worker freed in between ...
    assert quota_bound <= big <= 1.1 * quota_bound
    # ... and the small ones are not held behind it: they are done within seconds of one
    # another (the first waits for the scheduler's first cycle, up to 10 s).
    assert float(small.max() - small.min()) < 2.0 and float(small.max()) < 12.0
    # A batch of 5 gets is the whole burst (100 units); refilling it takes 1.13 s, more than
    # the 1 s budget, so every run makes one batch and gives the worker back.
    assert out["partial_runs"] == pytest.approx(units / user.burst, rel=0.05)

    before, out_before = _onboard(1e9)
    # Without chunking the one low-tier worker waits out the big mailbox's quota first.
    assert out_before["partial_runs"] == 0
    assert float(before.first_done[1:].min()) >= quota_bound
    assert before.first_done[0] == pytest.approx(big, rel=0.05)


@pytest.mark.parametrize("wait_s", [2.5, 6.0])
def test_a_longer_budget_makes_fewer_bigger_chunks(wait_s: float) -> None:
    s = _scenario(wait_s)
    [user] = [q for q in s.limits()["gmail"].quotas if q.name == "gmail.user"]
    units = 1 + 5 * 5 + 20 * BIG
    # The burst at once, then as many batch refills as fit in the budget.
    refill = user.burst / user.sustained_per_s
    per_run = user.burst * (1 + int(wait_s / refill))
    _, out = _onboard(wait_s)
    assert out["partial_runs"] == pytest.approx(units / per_run, rel=0.1)


def test_only_gmail_full_syncs_are_chunked() -> None:
    s = _scenario(1.0)
    sim = Simulation(s, 3, mode="drain", mailboxes=_mailboxes())
    chunked = {pv.name: pv.chunks_full for pv in sim.prov if pv is not None}
    assert chunked == {"gmail": True, "graph": False}
    # Graph's per-mailbox limit is far above what a full sync asks (a request per 100).
    graph = get_quota_preset("documented-2026")["graph"]
    assert all(q.limit >= 10_000 for q in graph.quotas)


def test_chunks_count_only_the_requests_they_make() -> None:
    # One process: each mailbox fetches its token once, in its first chunk.
    s = _scenario(1.0).updated({"daemon.processes": 1, "daemon.hosts": 1})
    sim = Simulation(s, 3, mode="drain", mailboxes=_mailboxes())
    sim.trace = []
    out = sim.run().scalars
    assert out["partial_runs"] > 100  # the big mailbox is synced in many chunks
    gmail = sim.prov[0]
    assert gmail is not None and sim.tokens is not None
    full = sum(
        c.requests
        for size in [BIG] + [SMALL] * 6
        for c in sync_calls("gmail", SyncKind.FULL, size, shape=gmail.shape)
    )
    # The small mailboxes are due again while the big one is still being synced.
    incremental = [j for j in sim.trace if j.kind is SyncKind.INCREMENTAL]
    assert incremental
    again = sum(
        c.requests
        for j in incremental
        for c in sync_calls("gmail", j.kind, j.messages, j.added, j.changed, j.deleted, gmail.shape)
    )
    # Every request of every sync once, plus one token fetch per mailbox.
    assert sim.tokens.refreshes == 7
    assert gmail.counters.requests == full + again + 7


def test_whole_syncs_walked_run_by_run_count_every_request() -> None:
    # Graph syncs are runs of equal requests, walked run by run (the same count applies).
    s = _scenario(1.0).updated({"daemon.processes": 1, "daemon.hosts": 1})
    boxes = _mailboxes()
    graph_boxes = Mailboxes(
        boxes.tenant, np.ones(7, dtype=np.int64), boxes.arrivals_per_s, boxes.size, boxes.interval_s
    )
    sim = Simulation(s, 3, mode="drain", mailboxes=graph_boxes)
    sim.trace = []
    sim.run()
    graph = sim.prov[1]
    assert graph is not None and sim.tokens is not None
    implied = sum(
        c.requests
        for j in sim.trace
        for c in sync_calls("graph", j.kind, j.messages, j.added, j.changed, j.deleted, graph.shape)
    )
    assert len(sim.trace) == 7 and implied > 7 * 3
    assert graph.counters.requests == implied + sim.tokens.refreshes
