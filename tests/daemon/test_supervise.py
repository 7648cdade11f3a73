"""Supervised loops: a step that raises is retried with backoff and reported, never fatal."""

from __future__ import annotations

import asyncio

import pytest

from daemon.supervise import Supervisor, retry_delay


def test_retry_delay_doubles_from_the_interval_up_to_the_cap() -> None:
    assert [retry_delay(n, 0.5, 10) for n in range(0, 8)] == [
        0.5,
        0.5,
        1.0,
        2.0,
        4.0,
        8.0,
        10.0,
        10.0,
    ]
    # A loop slower than the cap keeps its own interval.
    assert retry_delay(5, 60, 10) == 60


async def test_a_failing_step_is_retried_and_reported_until_it_recovers() -> None:
    stop = asyncio.Event()
    now = [0.0]
    calls: list[int] = []

    async def step() -> None:
        calls.append(len(calls))
        if len(calls) <= 3:
            raise RuntimeError("database is read-only")

    sup = Supervisor(stop, lambda: now[0], max_backoff_s=0.02, unhealthy_after_s=5)
    sup.start("scheduler", step, 0.005)
    while len(calls) < 3:
        await asyncio.sleep(0.001)
    state = sup.loops["scheduler"]
    assert state.failures >= 1 and state.last_error == "RuntimeError: database is read-only"
    now[0] = 6.0  # failing for longer than unhealthy_after_s
    assert sup.unhealthy() == ["scheduler: failing since 6 s (RuntimeError: database is read-only)"]
    while len(calls) < 5:
        await asyncio.sleep(0.001)
    assert sup.unhealthy() == [] and state.failures == 0
    stop.set()
    await sup.join(1)
    assert sup.unhealthy() == []  # stopped on purpose


async def test_a_loop_that_ended_while_the_daemon_runs_is_unhealthy() -> None:
    stop = asyncio.Event()

    async def step() -> None:
        raise asyncio.CancelledError  # what no `except Exception` catches

    sup = Supervisor(stop, lambda: 0.0)
    state = sup.start("trim", step, 1)
    with pytest.raises(asyncio.CancelledError):
        assert state.task is not None
        await state.task
    assert sup.unhealthy() == ["trim: not running (cancelled)"]
