"""Quota gates over the real Redis: the GCRA bucket shared by every process."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import pytest
from throttled.asyncio import Quota as TQuota
from throttled.asyncio import Rate, RateLimiterType, RedisStore, Throttled

from daemon.errors import QuotaDeferred
from daemon.gcra import Gcra
from daemon.policy import ProviderLimits, Quota, QuotaScope
from daemon.ratelimit import QuotaLimiters

Limiters = Callable[..., QuotaLimiters]


@pytest.fixture
async def limiters_of(redis_url: str) -> AsyncIterator[Limiters]:
    """Builds gates' limiters on the test's Redis; each is closed after the test."""
    made: list[QuotaLimiters] = []

    def make(prefix: str, limits: Any, **kwargs: Any) -> QuotaLimiters:
        made.append(QuotaLimiters(redis_url, prefix, limits, **kwargs))
        return made[-1]

    yield make
    for limiters in made:
        await limiters.aclose()


def _limits(limit: int, period: int, burst: int) -> dict[str, ProviderLimits]:
    return {
        "gmail": ProviderLimits(
            provider="gmail",
            quotas=(Quota("gmail.user", QuotaScope.MAILBOX, limit, period, burst),),
            costs={"history.list": 2},
        )
    }


async def test_burst_is_held_to_the_quota_across_gates(
    limiters_of: Limiters, redis_url: str, redis_prefix: str
) -> None:
    limiters = limiters_of(redis_prefix, _limits(limit=20, period=2, burst=5))
    times: list[float] = []

    async def caller(n: int) -> None:
        # Two gates of the same mailbox (two processes would share the key the same way).
        gate = limiters.gate("gmail", "mbx-1")
        for _ in range(n):
            await gate.acquire("messages.get")
            times.append(time.monotonic())

    t0 = time.monotonic()
    await asyncio.gather(caller(15), caller(15))
    elapsed = time.monotonic() - t0
    times.sort()
    # 30 units: 5 at once, then 25 at 15 per 2 s -> about 3.33 s.
    assert elapsed == pytest.approx(25 / 7.5, abs=0.5)
    for i, t in enumerate(times):
        assert sum(1 for u in times[i:] if u < t + 2.0) <= 20
    # The pure arithmetic the simulator uses agrees on the schedule's length.
    g = Gcra.for_quota(_limits(20, 2, 5)["gmail"].quotas[0])
    last = 0.0
    for _ in range(30):
        last = g.reserve(last)
    assert elapsed == pytest.approx(last, abs=0.5)
    assert limiters.stats.waits["gmail"] > 0


async def test_other_mailboxes_have_their_own_bucket(
    limiters_of: Limiters, redis_url: str, redis_prefix: str
) -> None:
    limiters = limiters_of(redis_prefix, _limits(limit=10, period=60, burst=3))
    t0 = time.monotonic()
    for mbx in range(5):
        gate = limiters.gate("gmail", f"m{mbx}")
        for _ in range(3):
            await gate.acquire("x")
    assert time.monotonic() - t0 < 0.5
    assert "gmail" not in limiters.stats.waits


async def test_costs_and_oversized_calls_are_split(
    limiters_of: Limiters, redis_url: str, redis_prefix: str
) -> None:
    limiters = limiters_of(redis_prefix, _limits(limit=40, period=1, burst=10))
    gate = limiters.gate("gmail", "m")
    t0 = time.monotonic()
    await gate.acquire("history.list", count=5)  # 10 units: the whole burst
    await gate.acquire("messages.get", count=25)  # 25 units > capacity: admitted in pieces
    elapsed = time.monotonic() - t0
    assert gate.calls == 30
    assert elapsed == pytest.approx(25 / 30, abs=0.3)


async def test_a_chunked_gate_defers_a_wait_past_its_budget(
    limiters_of: Limiters, redis_url: str, redis_prefix: str
) -> None:
    slept: list[float] = []

    async def sleep(s: float) -> None:
        slept.append(s)
        await asyncio.sleep(s)

    # 3 units at once, then one every 2 s (33 per 60 s).
    limiters = limiters_of(redis_prefix, _limits(limit=33, period=60, burst=3), sleep=sleep)
    gate = limiters.gate("gmail", "mbx-1", chunk_wait_s=0.5)
    with gate.chunked():
        for _ in range(3):
            await gate.acquire("x")
        with pytest.raises(QuotaDeferred) as exc:
            await gate.acquire("x")
    # The wait for the next unit (2 s) is the delay; nothing was admitted or waited for.
    assert exc.value.delay_s == pytest.approx(2.0, abs=0.1)
    assert (gate.calls, gate.waited_s) == (3, 0.0)
    assert slept == []
    # Outside ``chunked()`` (an incremental sync) the same gate waits as before.
    await gate.acquire("x")
    assert gate.calls == 4 and sum(slept) == pytest.approx(2.0, abs=0.1)


async def test_a_gate_without_a_budget_never_defers(
    limiters_of: Limiters, redis_url: str, redis_prefix: str
) -> None:
    limiters = limiters_of(redis_prefix, _limits(limit=65, period=60, burst=5))
    gate = limiters.gate("gmail", "mbx-2")
    with gate.chunked():
        for _ in range(6):
            await gate.acquire("x")
    assert gate.calls == 6 and gate.waited_s == pytest.approx(1.0, abs=0.1)


async def test_one_bucket_decides_as_throttled_py_does(
    limiters_of: Limiters, redis_url: str, redis_prefix: str
) -> None:
    """The gates run throttled-py's GCRA arithmetic over all of a call's buckets in one Lua
    call; on one bucket every decision and wait must be throttled-py's own."""
    quota = Quota("gmail.user", QuotaScope.MAILBOX, 30, 600, 10)  # slow: no refill in the test
    ours = limiters_of(f"{redis_prefix}-ours", {"gmail": _limits(30, 600, 10)["gmail"]})
    theirs = Throttled(
        using=RateLimiterType.GCRA.value,
        quota=TQuota(Rate(period=timedelta(seconds=600), limit=quota.rate_limit), burst=10),
        store=RedisStore(server=redis_url),
        key_prefix=f"{redis_prefix}-theirs:quota",
    )

    def refused(waited: float, delay: float) -> float:
        return delay

    decisions = []
    for cost in (3, 3, 3, 2, 1, 1, 4):
        try:
            await ours.admit("gmail", "mbx", cost, defer=refused)
            our_wait = None
        except QuotaDeferred as exc:
            our_wait = exc.delay_s
        result = await theirs.limit("gmail.user:mbx", cost=cost)
        decisions.append(result.limited)
        if result.limited:
            assert our_wait == pytest.approx(result.state.retry_after, abs=0.5), cost
        else:
            assert our_wait is None, cost
    # 3 + 3 + 3 fit the burst of 10, 2 does not, 1 does, then nothing more.
    assert decisions == [False, False, False, True, False, True, True]


async def test_a_reservation_admits_a_syncs_calls_in_one_admission(
    limiters_of: Limiters, redis_prefix: str
) -> None:
    # Burst 10, then one unit every 6 s: nothing refills during the test.
    limiters = limiters_of(redis_prefix, _limits(limit=20, period=60, burst=10))
    gate = limiters.gate("gmail", "mbx-r")
    await gate.reserve({"history.list": 2, "messages.get": 3, "unused": 0})
    # history.list costs 2: 2 * 2 + 3 units taken at once.
    assert limiters.stats.admitted_units["gmail"] == 7
    assert gate.calls == 0
    for method in ("history.list", "messages.get", "history.list", "messages.get"):
        await gate.acquire(method)
    # Reserved calls pass without another admission; calls are counted as they are made.
    assert (limiters.stats.admitted_units["gmail"], gate.calls) == (7, 4)
    await gate.acquire("messages.get", count=2)  # one left reserved, two wanted: admitted
    assert (limiters.stats.admitted_units["gmail"], gate.calls) == (9, 6)
    await gate.acquire("messages.get")  # the reservation's last one
    assert (limiters.stats.admitted_units["gmail"], gate.calls) == (9, 7)


async def test_reserved_units_never_used_stay_spent(
    limiters_of: Limiters, redis_prefix: str
) -> None:
    limiters = limiters_of(redis_prefix, _limits(limit=13, period=60, burst=3))
    await limiters.gate("gmail", "mbx-s").reserve({"x": 3})
    # Another sync of the same account (another process) finds the burst taken.
    other = limiters.gate("gmail", "mbx-s", chunk_wait_s=0.5)
    with other.chunked(), pytest.raises(QuotaDeferred) as exc:
        await other.acquire("x")
    assert exc.value.delay_s == pytest.approx(6.0, abs=0.2)
    assert other.calls == 0
