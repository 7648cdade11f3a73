"""Requests per sync as the provider runtime builds them from the daemon's call model."""

from __future__ import annotations

import random

import numpy as np
import pytest

from daemon import policy
from daemon.policy import SyncKind
from simulator.inputs.loader import load_scenario
from simulator.model.gate import LOGIN, NOOP, REUSE, Latency, ProviderRuntime

MODES = ("qresync", "condstore", "plain")
# (kind, messages, added, changed, deleted): quiet, busy, large and empty mailboxes.
SYNCS = [
    (SyncKind.INCREMENTAL, 12_000, 0, 0, 0),
    (SyncKind.INCREMENTAL, 12_000, 3, 5, 1),
    (SyncKind.INCREMENTAL, 40_000, 1200, 0, 7),
    (SyncKind.INCREMENTAL, 800, 0, 4, 0),
    (SyncKind.FULL, 0, 0, 0, 0),
    (SyncKind.FULL, 12_345, 0, 0, 0),
]


def _imap(mode: str, folders: int) -> ProviderRuntime:
    s = load_scenario(
        "mixed-imap", {"providers.imap.mode": mode, "providers.imap.folders": folders}
    )
    rng = np.random.default_rng(1)
    return ProviderRuntime(
        "imap", s.providers.imap, s.enforced("imap"), None, 4, rng, random.Random(1)
    )


@pytest.mark.parametrize("folders", [1, 3])
@pytest.mark.parametrize("mode", MODES)
def test_imap_requests_are_the_policy_calls_of_the_mode(mode: str, folders: int) -> None:
    pv = _imap(mode, folders)
    shape = policy.FetchShape(imap_mode=mode, imap_folders=folders)
    for kind, messages, added, changed, deleted in SYNCS:
        calls = policy.sync_calls("imap", kind, messages, added, changed, deleted, shape)
        reqs = pv.requests(kind, messages, added, changed, deleted)
        # One command per round trip; no quota units.
        assert len(reqs) == sum(c.requests for c in calls) == sum(c.count for c in calls)
        assert all(r[1] == 1 and r[2] == 0 for r in reqs)


def test_imap_modes_differ_where_the_daemon_does() -> None:
    busy = (SyncKind.INCREMENTAL, 12_000, 3, 5, 1)
    counts = {m: len(_imap(m, 1).requests(*busy)) for m in MODES}
    # docs/imap.md: QRESYNC SELECT + FETCH; CONDSTORE adds CHANGEDSINCE and a SEARCH;
    # plain adds a flag scan of 12,000 UIDs in chunks of 5,000.
    assert counts == {"qresync": 2, "condstore": 4, "plain": 5}


@pytest.mark.parametrize(("mode", "commands"), [("qresync", 2), ("condstore", 1), ("plain", 1)])
def test_connection_setup_round_trips(mode: str, commands: int) -> None:
    pv = _imap(mode, 1)
    assert pv.setup[REUSE] == ()
    assert pv.setup_calls(NOOP) == 1 and len(pv.setup[NOOP]) == 1
    # TCP and TLS handshakes, then LOGIN (+ ENABLE QRESYNC).
    assert len(pv.setup[LOGIN]) == 2 + commands
    assert pv.setup_calls(LOGIN) == commands
    assert pv.setup_mean_s(LOGIN) == pytest.approx((2 + commands) * 0.08)


@pytest.mark.parametrize(("preset", "batch"), [("documented-2026", 5), ("documented-legacy", 50)])
def test_gmail_batches_are_sized_like_the_daemons(preset: str, batch: int) -> None:
    s = load_scenario("plan-b-1000", {"daemon.quota_preset": preset})
    pv = ProviderRuntime(
        "gmail",
        s.providers.gmail,
        s.enforced("gmail"),
        None,
        4,
        np.random.default_rng(1),
        random.Random(1),
    )
    assert pv.shape == policy.fetch_shape_for(policy.get_quota_preset(preset))
    reqs = pv.requests(SyncKind.FULL, 123, 0, 0, 0)
    # getProfile, one messages.list page, then the batches of gets.
    gets = [r[1] for r in reqs[2:]]
    assert len(gets) == -(-123 // batch) and sum(gets) == 123 and max(gets) == batch


def test_latency_take_is_the_draws_calls_would_make() -> None:
    # Across block refills too: the same values from the same generator, in the same order.
    d = load_scenario("plan-b-1000").providers.graph.latency_s
    one, many = (Latency(d, np.random.default_rng(3), block=16) for _ in range(2))
    calls = [one() for _ in range(100)]
    taken = many.take(5) + many.take(30) + many.take(1) + many.take(64)
    assert taken == calls


def test_runs_and_prefixes_walk_the_same_requests() -> None:
    s = load_scenario("plan-b-1000")
    pv = ProviderRuntime(
        "graph",
        s.providers.graph,
        s.enforced("graph"),
        None,
        4,
        np.random.default_rng(1),
        random.Random(1),
    )
    reqs = pv.requests(SyncKind.INCREMENTAL, 500, 3, 1, 0)
    expanded = [
        (sampler, inner, u, extra)
        for sampler, inner, u, extra, k in pv.runs(reqs)
        for _ in range(k)
    ]
    assert expanded == [(r[0], r[1], r[2], r[4]) for r in reqs]
    assert pv.runs(reqs) is pv.runs(reqs)
    assert pv.with_token(reqs) == (pv.token_request, *reqs)
    assert pv.with_token(reqs) is pv.with_token(reqs)
