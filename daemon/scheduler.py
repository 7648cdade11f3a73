"""The scheduler loop: claim due mailboxes in batches and enqueue them on their tier's queue.

The decisions (which mailboxes, which tier, which kind) are ``policy.plan_cycle``, applied
inside the claiming transaction; this module only paces the cycles and repairs what a
crash or a Redis restart left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import asyncpg
import redis.asyncio as aioredis
import redis.exceptions

from daemon.logs import get_logger
from daemon.metrics import Metrics
from daemon.policy import Profile, sync_now_assignment
from daemon.queues import TierQueues
from daemon.store.mailboxes import Claimed, MailboxStore, ts

log = get_logger("scheduler")
_LIVE_STATES = {"waiting", "active", "delayed", "prioritized", "waiting-children"}
_INFRA_ERRORS = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    redis.exceptions.RedisError,
    OSError,
    TimeoutError,
)


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
        self._last_cleanup = 0.0
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
        """Re-add jobs Redis lost, free runs whose process died, trim old run records."""
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
        released = await self.store.release_lost_runs(now - self.max_run_s, now)
        if released:
            log.warning("released runs presumed lost", count=released)
        trimmed = 0
        if now - self._last_cleanup > 600:
            self._last_cleanup = now
            trimmed = await self._trim_runs(now)
        return {"requeued": requeued, "released": released, "trimmed": trimmed}

    async def _redis_restarted(self) -> bool:
        info = await self.redis.info("server")
        run_id = str(info.get("run_id", ""))
        restarted = self._redis_run_id is not None and run_id != self._redis_run_id
        self._redis_run_id = run_id
        return restarted

    async def _trim_runs(self, now: float) -> int:
        status = await self.store.pool.execute(
            """DELETE FROM sync_runs WHERE id IN (
                   SELECT id FROM sync_runs WHERE finished_at < $1 LIMIT 50000)""",
            ts(now - self.retention_s),
        )
        return int(status.rsplit(" ", 1)[-1])

    async def run(self, stop: asyncio.Event) -> None:
        """Cycle every ``scheduler_interval_s`` until ``stop`` is set; survive outages."""
        interval = self.profile.scheduler_interval_s
        while not stop.is_set():
            started = self.clock()
            try:
                await self.cycle()
                await self.repair()
            except _INFRA_ERRORS as exc:
                log.warning(
                    "scheduler cycle failed; will retry", error=f"{type(exc).__name__}: {exc}"
                )
            delay = max(0.0, interval - (self.clock() - started))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay)
