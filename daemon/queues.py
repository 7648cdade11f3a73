"""The three tier queues on Redis, through bullmq (the engine the replaced service ran).

bullmq gives per-queue worker concurrency, job-id dedup, per-state counts and lock-renewing
crash recovery: a job whose process dies is moved back to waiting by another process's
stalled-job check within ``lock_duration + stalled_interval``. Its built-in rate limiter is
not used (see docs/queue-engine.md); provider quotas are enforced in ``ratelimit.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from bullmq import Queue, Worker

from daemon.policy import TIERS, Profile, Tier
from daemon.store.mailboxes import Claimed

JOB_NAME = "sync"
STATES = ("waiting", "active", "completed", "failed", "delayed", "prioritized")
# Attempts cover infrastructure failures only (database or Redis down mid-job); provider
# errors are recorded and rescheduled by the policy and complete the job normally.
INFRA_ATTEMPTS = 6
INFRA_BACKOFF_MS = 2000

Processor = Callable[[Any, str], Awaitable[Any]]


def queue_name(tier: Tier) -> str:
    """Redis queue name of a tier."""
    return f"sync-{tier}"


class TierQueues:
    """Producer side: enqueue claimed mailboxes, read counts."""

    def __init__(self, redis_url: str, prefix: str, keep_completed: int, keep_failed: int) -> None:
        opts = {"connection": redis_url, "prefix": prefix}
        self._queues: dict[Tier, Queue] = {t: Queue(queue_name(t), opts) for t in TIERS}
        self._job_opts: dict[str, Any] = {
            "removeOnComplete": keep_completed if keep_completed else True,
            "removeOnFail": keep_failed if keep_failed else True,
            "attempts": INFRA_ATTEMPTS,
            "backoff": {"type": "exponential", "delay": INFRA_BACKOFF_MS},
        }

    async def enqueue(self, claimed: Iterable[Claimed], delay_s: float = 0.0) -> int:
        """Add one job per claimed mailbox on its tier's queue; re-adding an id is a no-op.

        With ``delay_s`` the jobs wait in bullmq's delayed set until then (a chunked full
        sync resuming once its quota has refilled).
        """
        opts = {**self._job_opts, "delay": int(delay_s * 1000)} if delay_s > 0 else self._job_opts
        by_tier: dict[Tier, list[dict[str, Any]]] = {}
        for c in claimed:
            by_tier.setdefault(c.tier, []).append(
                {
                    "name": JOB_NAME,
                    "data": {
                        "mailbox_id": c.mailbox_id,
                        "run_seq": c.run_seq,
                        "tier": str(c.tier),
                        "kind": str(c.kind),
                    },
                    "opts": {**opts, "jobId": c.job_id},
                }
            )
        total = 0
        for tier, jobs in by_tier.items():
            await self._queues[tier].addBulk(jobs)
            total += len(jobs)
        return total

    async def job_state(self, claimed: Claimed) -> str:
        """bullmq state of a claimed mailbox's job (``unknown`` when Redis lost it)."""
        state: str = await self._queues[claimed.tier].getJobState(claimed.job_id)
        return state

    async def counts(self) -> dict[str, dict[str, int]]:
        """Jobs per state per tier queue."""
        out: dict[str, dict[str, int]] = {}
        for tier, q in self._queues.items():
            raw: Mapping[str, int] = await q.getJobCounts(*STATES)
            counts = {s: int(raw.get(s, 0)) for s in STATES}
            # Prioritized jobs are waiting too; bullmq keeps them in a separate set.
            counts["waiting"] += counts.pop("prioritized")
            out[str(tier)] = counts
        return out

    async def waiting_total(self) -> int:
        """Jobs waiting across all tiers."""
        counts = await self.counts()
        return sum(c["waiting"] for c in counts.values())

    async def obliterate(self) -> None:
        """Remove every job of every tier queue (tests and resets)."""
        for q in self._queues.values():
            await q.obliterate(force=True)

    async def close(self) -> None:
        """Close Redis connections."""
        for q in self._queues.values():
            await q.close()


class TierWorkers:
    """Consumer side: one bullmq worker per tier with the profile's concurrency."""

    def __init__(
        self,
        redis_url: str,
        prefix: str,
        profile: Profile,
        processor: Processor,
        lock_duration_s: float,
        stalled_interval_s: float,
        name: str,
    ) -> None:
        self._workers: dict[Tier, Worker] = {}
        for tier in TIERS:
            concurrency = profile.concurrency.for_tier(tier)
            if concurrency <= 0:
                continue
            self._workers[tier] = Worker(
                queue_name(tier),
                processor,
                {
                    "connection": redis_url,
                    "prefix": prefix,
                    "concurrency": concurrency,
                    "lockDuration": int(lock_duration_s * 1000),
                    "stalledInterval": int(stalled_interval_s * 1000),
                    # A crash-looping job must not stall forever; the reaper catches the rest.
                    "maxStalledCount": 5,
                    # Short idle poll so a job added right after a drain starts at once.
                    "drainDelay": 1,
                    "name": f"{name}:{tier}",
                },
            )

    @property
    def tiers(self) -> list[Tier]:
        """Tiers this process works on."""
        return list(self._workers)

    async def close(self, timeout_s: float) -> bool:
        """Stop taking jobs and wait for running ones; force after ``timeout_s``.

        Returns ``True`` when every running job finished. Jobs cut off by the timeout keep
        their lock until it expires, then another process's stalled check re-queues them.
        """
        closing = [asyncio.ensure_future(w.close()) for w in self._workers.values()]
        if not closing:
            return True
        _, pending = await asyncio.wait(closing, timeout=timeout_s)
        if not pending:
            return True
        for w in self._workers.values():
            await w.close(force=True)
        return False
