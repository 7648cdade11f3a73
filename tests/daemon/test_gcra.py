"""GCRA arithmetic, as the simulator uses it."""

from __future__ import annotations

import pytest

from daemon.gcra import Gcra, split_cost
from daemon.policy import Quota, QuotaScope


def test_burst_then_sustained_rate_never_exceeds_the_window_limit() -> None:
    q = Quota("t", QuotaScope.MAILBOX, limit=20, period_s=2, burst=5)
    g = Gcra.for_quota(q)
    admitted: list[float] = []
    t = 0.0
    while len(admitted) < 60:
        start = g.reserve(t)
        admitted.append(start)
        t = start
    assert admitted[:5] == [0.0] * 5
    # Sustained: 15 units per 2 s after the burst.
    assert admitted[5 + 15 - 1] == pytest.approx(2.0)
    for i, a in enumerate(admitted):
        in_window = sum(1 for b in admitted[i:] if b < a + q.period_s)
        assert in_window <= q.limit


def test_try_acquire_reports_the_wait_and_consumes_nothing_when_refused() -> None:
    g = Gcra(emission_interval=1.0, capacity=2)
    assert g.try_acquire(0.0) == 0.0
    assert g.try_acquire(0.0) == 0.0
    wait = g.try_acquire(0.0)
    assert wait == pytest.approx(1.0)
    assert g.earliest(0.0) == pytest.approx(1.0)
    assert g.try_acquire(1.0) == 0.0
    with pytest.raises(ValueError, match="exceeds the bucket capacity"):
        g.try_acquire(5.0, cost=3)


def test_split_cost() -> None:
    assert split_cost(1000, 100) == [100] * 10
    assert split_cost(250, 100) == [100, 100, 50]
    assert split_cost(0, 100) == []
