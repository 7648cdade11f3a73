"""The tier queues on the real Redis through bullmq."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from daemon.policy import PLAN_B, SyncKind, Tier, with_overrides
from daemon.queues import TierQueues, TierWorkers
from daemon.store.mailboxes import Claimed


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
