"""The tier queues on the real Redis through bullmq."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from daemon.policy import PLAN_B, SyncKind, Tier, with_overrides
from daemon.queues import TierQueues, TierWorkers
from daemon.store.records import Claimed


async def test_jobs_reach_their_tier_workers_and_ids_dedup(
    redis_url: str, redis_prefix: str
) -> None:
    queues = TierQueues(redis_url, redis_prefix, keep_completed=100, keep_failed=100)
    seen: list[tuple[str, int]] = []
    done = asyncio.Event()

    async def processor(job: Any, token: str) -> dict[str, Any]:
        seen.append((job.data["tier"], job.data["mailbox_id"]))
        if len(seen) == 6:
            done.set()
        return {}

    profile = with_overrides(PLAN_B, {"concurrency": {"high": 2, "normal": 1, "low": 1}})
    workers = TierWorkers(redis_url, redis_prefix, profile, processor, 5, 5, "test")
    try:
        jobs = [
            Claimed(i, 1, tier, SyncKind.FULL)
            for i, tier in enumerate(
                [Tier.HIGH, Tier.HIGH, Tier.NORMAL, Tier.LOW, Tier.LOW, Tier.HIGH]
            )
        ]
        assert await queues.enqueue(jobs) == 6
        await queues.enqueue(jobs[:2])  # same ids: not added twice
        await asyncio.wait_for(done.wait(), 10)
        await asyncio.sleep(0.3)
        assert sorted(m for _, m in seen) == list(range(6))
        assert {(t, m) for t, m in seen} == {(str(c.tier), c.mailbox_id) for c in jobs}
        counts = await queues.counts()
        assert counts["high"]["completed"] == 3 and counts["low"]["completed"] == 2
        assert all(c["waiting"] == 0 and c["active"] == 0 for c in counts.values())
    finally:
        assert await workers.close(5)
        await queues.close()


async def test_idle_worker_picks_up_a_job_after_a_long_idle(
    redis_url: str, redis_prefix: str
) -> None:
    # redis-py 8's 5 s socket timeout broke bullmq's blocking reads; keep this covered.
    queues = TierQueues(redis_url, redis_prefix, 10, 10)
    got = asyncio.Event()
    picked_at: list[float] = []

    async def processor(job: Any, token: str) -> None:
        picked_at.append(time.monotonic())
        got.set()

    profile = with_overrides(PLAN_B, {"concurrency": {"high": 1, "normal": 0, "low": 0}})
    workers = TierWorkers(redis_url, redis_prefix, profile, processor, 5, 5, "idle")
    try:
        await asyncio.sleep(6.5)
        added = time.monotonic()
        await queues.enqueue([Claimed(1, 1, Tier.HIGH, SyncKind.INCREMENTAL)])
        await asyncio.wait_for(got.wait(), 5)
        assert picked_at[0] - added < 2.0
    finally:
        await workers.close(5)
        await queues.close()


async def test_shutdown_leaves_no_job_locked_while_jobs_flow(
    redis_url: str, redis_prefix: str
) -> None:
    # Close at many instants while jobs are being fetched: a job fetched at the instant of
    # shutdown must be handed back, not left active until its lock expires.
    profile = with_overrides(PLAN_B, {"concurrency": {"high": 3, "normal": 0, "low": 0}})
    for round_ in range(8):
        prefix = f"{redis_prefix}-r{round_}"
        queues = TierQueues(redis_url, prefix, 1000, 1000)
        done: list[int] = []

        async def processor(job: Any, token: str, done: list[int] = done) -> None:
            await asyncio.sleep(0.003)
            done.append(job.data["mailbox_id"])

        await queues.enqueue([Claimed(i, 1, Tier.HIGH, SyncKind.INCREMENTAL) for i in range(300)])
        workers = TierWorkers(redis_url, prefix, profile, processor, 30, 30, "stop")
        await asyncio.sleep(0.05 + 0.013 * round_)
        assert await workers.close(5)
        counts = (await queues.counts())["high"]
        assert counts["active"] == 0, counts
        assert counts["completed"] == len(done) == len(set(done))
        assert counts["completed"] + counts["waiting"] + counts["delayed"] == 300
        await queues.obliterate()
        await queues.close()


async def _drain_high_backlog(
    redis_url: str, prefix: str, work_conserving: bool
) -> tuple[int, dict[str, int]]:
    """20 jobs on the high queue, 2 high + 2 normal + 1 low workers: the most jobs in flight
    at once and how many jobs each worker ran. The first jobs are held until as many are in
    flight as the profile allows to serve the high queue, so the peak counts workers, not
    timing."""
    queues = TierQueues(redis_url, prefix, 100, 100)
    profile = with_overrides(
        PLAN_B,
        {"concurrency": {"high": 2, "normal": 2, "low": 1}, "work_conserving": work_conserving},
    )
    expected_peak = 5 if work_conserving else 2
    in_flight = 0
    peak = 0
    by_worker: dict[str, int] = {}
    full = asyncio.Event()
    go = asyncio.Event()
    done = asyncio.Event()
    finished: list[int] = []

    async def processor(job: Any, token: str) -> None:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        worker = job.queue.opts["name"].split(":", 1)[1]
        by_worker[worker] = by_worker.get(worker, 0) + 1
        if in_flight == expected_peak:
            full.set()
        # The first wave holds its workers until every allowed worker has a job.
        await go.wait()
        in_flight -= 1
        finished.append(job.data["mailbox_id"])
        if len(finished) == 20:
            done.set()

    await queues.enqueue([Claimed(i, 1, Tier.HIGH, SyncKind.INCREMENTAL) for i in range(20)])
    workers = TierWorkers(redis_url, prefix, profile, processor, 30, 30, "wc")
    try:
        await asyncio.wait_for(full.wait(), 10)
        go.set()
        await asyncio.wait_for(done.wait(), 10)
        # Closing waits for the last jobs' completion to be written.
        assert await workers.close(5)
        counts = (await queues.counts())["high"]
        assert counts["completed"] == 20 and counts["waiting"] == 0 and counts["active"] == 0
    finally:
        await workers.close(5)
        await queues.close()
    return peak, by_worker


async def test_work_conserving_lets_idle_lower_workers_drain_the_high_queue(
    redis_url: str, redis_prefix: str
) -> None:
    peak, by_worker = await _drain_high_backlog(redis_url, f"{redis_prefix}-on", True)
    # All five workers ran high jobs at once: more in flight than the high tier's 2.
    assert peak == 5
    assert set(by_worker) == {"high", "normal>high", "low>high"}
    assert sum(by_worker.values()) == 20

    peak, by_worker = await _drain_high_backlog(redis_url, f"{redis_prefix}-off", False)
    assert peak == 2
    assert by_worker == {"high": 20}


async def test_work_conserving_pool_serves_higher_tiers_first(
    redis_url: str, redis_prefix: str
) -> None:
    # One normal worker serving high and normal: waiting high jobs go first, whatever the
    # order they were enqueued in; then its own tier.
    queues = TierQueues(redis_url, redis_prefix, 100, 100)
    order: list[tuple[str, int]] = []
    done = asyncio.Event()

    async def processor(job: Any, token: str) -> None:
        order.append((job.data["tier"], job.data["mailbox_id"]))
        if len(order) == 6:
            done.set()

    profile = with_overrides(
        PLAN_B, {"concurrency": {"high": 0, "normal": 1, "low": 0}, "work_conserving": True}
    )
    await queues.enqueue([Claimed(i, 1, Tier.NORMAL, SyncKind.INCREMENTAL) for i in range(3)])
    await queues.enqueue([Claimed(i, 1, Tier.HIGH, SyncKind.INCREMENTAL) for i in range(3, 6)])
    workers = TierWorkers(redis_url, redis_prefix, profile, processor, 30, 30, "order")
    try:
        await asyncio.wait_for(done.wait(), 10)
        assert [t for t, _ in order] == ["high"] * 3 + ["normal"] * 3
        assert [m for _, m in order] == [3, 4, 5, 0, 1, 2]
    finally:
        assert await workers.close(5)
        await queues.close()


async def test_work_conserving_shutdown_leaves_no_job_locked(
    redis_url: str, redis_prefix: str
) -> None:
    # As above, with pools that fetch through their dispatcher from two queues.
    profile = with_overrides(
        PLAN_B, {"concurrency": {"high": 1, "normal": 2, "low": 1}, "work_conserving": True}
    )
    for round_ in range(6):
        prefix = f"{redis_prefix}-r{round_}"
        queues = TierQueues(redis_url, prefix, 1000, 1000)
        done: list[int] = []

        async def processor(job: Any, token: str, done: list[int] = done) -> None:
            await asyncio.sleep(0.003)
            done.append(job.data["mailbox_id"])

        tiers = [Tier.HIGH, Tier.NORMAL, Tier.LOW]
        await queues.enqueue(
            [Claimed(i, 1, tiers[i % 3], SyncKind.INCREMENTAL) for i in range(300)]
        )
        workers = TierWorkers(redis_url, prefix, profile, processor, 30, 30, "stop")
        await asyncio.sleep(0.05 + 0.013 * round_)
        assert await workers.close(5)
        counts = await queues.counts()
        assert all(c["active"] == 0 for c in counts.values()), counts
        completed = sum(c["completed"] for c in counts.values())
        assert completed == len(done) == len(set(done))
        left = sum(c["waiting"] + c["delayed"] for c in counts.values())
        assert completed + left == 300
        await queues.obliterate()
        await queues.close()
