"""The scheduler loop: claim due mailboxes in batches and enqueue them on their tier's queue.

The decisions (which mailboxes, which tier, which kind) are ``policy.plan_cycle``, applied
inside the claiming transaction. This module holds the steps the daemon's supervisor runs
on their intervals (``supervise.py``): the claim cycle, the repair of what a crash, an
outage or a Redis restart left behind, and the trim of old run records.
"""

from __future__ import annotations

from collections.abc import Callable

import redis.asyncio as aioredis

from daemon.logs import get_logger
from daemon.metrics import Metrics
from daemon.policy import Profile, sync_now_assignment
from daemon.queues import TierQueues
from daemon.store.mailboxes import MailboxStore
from daemon.store.records import Claimed, ts

log = get_logger("scheduler")
# A run younger than this is not checked for a job that gave up (it has just started).
RUNNING_GRACE_S = 5.0
_LIVE_STATES = {"waiting", "active", "delayed", "prioritized", "waiting-children"}
# Old run records are deleted in batches this big, each its own short transaction.
TRIM_BATCH = 10_000
# Any number, the same in every process: one process trims at a time.
_TRIM_LOCK = 0x6D61696C73796E63


class Scheduler:
    """Claims and enqueues; safe to run in every daemon process at once."""

    def __init__(
        self,
        store: MailboxStore,
        queues: TierQueues,
        redis_client: aioredis.Redis,
        profile: Profile,
        clock: Callable[[], float],
        metrics: Metrics,
        requeue_after_s: float,
        max_run_s: float,
        retention_days: float,
    ) -> None:
        self.store = store
        self.queues = queues
        self.redis = redis_client
        self.profile = profile
        self.clock = clock
        self.metrics = metrics
        self.requeue_after_s = requeue_after_s
        self.max_run_s = max_run_s
        self.retention_s = retention_days * 86400
        self._redis_run_id: str | None = None
        self.cycles = 0

    async def cycle(self) -> list[Claimed]:
        """One cycle: claim up to a batch of due mailboxes and enqueue them."""
        claimed = await self.store.claim_due(self.clock(), self.profile)
        if claimed:
            await self.queues.enqueue(claimed)
            for c in claimed:
                self.metrics.scheduler_claimed.labels(str(c.tier)).inc()
        self.cycles += 1
        self.metrics.scheduler_cycles.inc()
        return claimed

    async def sync_now(self, mailbox_id: int) -> Claimed | None:
        """Queue a mailbox at high priority at once; ``None`` when it is already running
        (it is then flagged to sync again right after)."""
        due = await self.store.due_snapshot(mailbox_id)
        now = self.clock()
        claimed = await self.store.claim_now(
            mailbox_id, sync_now_assignment(due, now, self.profile), now
        )
        if claimed is not None:
            await self.queues.enqueue([claimed])
        return claimed

    async def repair(self) -> dict[str, int]:
        """Re-add jobs Redis lost and free runs whose job is gone or whose process died."""
        now = self.clock()
        restarted = await self._redis_restarted()
        cutoff = now if restarted else now - self.requeue_after_s
        stale = await self.store.stale_queued(cutoff, limit=2000)
        requeued = 0
        lost: list[Claimed] = []
        for c in stale:
            state = await self.queues.job_state(c)
            if state == "unknown":
                lost.append(c)
            elif state not in _LIVE_STATES:
                # The id is taken by a finished job record: a new run number, a new id.
                fresh = await self.store.renumber_queued(c)
                if fresh is not None:
                    lost.append(fresh)
        if lost:
            # Same job ids: if a job reappears meanwhile, adding it again is a no-op.
            requeued = await self.queues.enqueue(lost)
            log.warning("re-queued lost jobs", count=requeued, redis_restarted=restarted)
        stranded = await self._release_stranded(now)
        released = await self.store.release_lost_runs(now - self.max_run_s, now)
        if released:
            log.warning("released runs presumed lost", count=released)
        return {"requeued": requeued, "stranded": stranded, "released": released}

    async def _release_stranded(self, now: float) -> int:
        """Make a running mailbox due again once its job has given up (its infrastructure
        retries ran out during an outage) or is gone; a job still active, waiting or
        retrying keeps its run. The release is fenced on the run's start, so a retry that
        started meanwhile keeps it."""
        running = await self.store.running_before(now - RUNNING_GRACE_S, limit=2000)
        given_up = []
        for run in running:
            if await self.queues.job_state(run.claimed) not in _LIVE_STATES:
                given_up.append(run)
        if not given_up:
            return 0
        released = await self.store.release_runs(given_up, now)
        if released:
            log.warning("released runs whose job gave up", count=released)
        return released

    async def _redis_restarted(self) -> bool:
        info = await self.redis.info("server")
        run_id = str(info.get("run_id", ""))
        restarted = self._redis_run_id is not None and run_id != self._redis_run_id
        self._redis_run_id = run_id
        return restarted

    async def trim(self) -> int:
        """Delete every run record past the retention, in batches; returns the count.

        Called every ``trim_interval_s``, it removes all that expired since its last call,
        however many syncs per minute wrote them. One process at a time: another process
        finding the lock taken skips its turn.
        """
        cutoff = ts(self.clock() - self.retention_s)
        total = 0
        while True:
            async with self.store.pool.acquire() as conn, conn.transaction():
                if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", _TRIM_LOCK):
                    return total
                status = await conn.execute(
                    """DELETE FROM sync_runs WHERE id IN (
                           SELECT id FROM sync_runs WHERE finished_at < $1
                           ORDER BY finished_at LIMIT $2)""",
                    cutoff,
                    TRIM_BATCH,
                )
            deleted = int(status.rsplit(" ", 1)[-1])
            total += deleted
            if deleted < TRIM_BATCH:
                return total
