"""The three tier queues on Redis, through bullmq (the engine the replaced service ran).

bullmq gives per-queue worker concurrency, job-id dedup, per-state counts and lock-renewing
crash recovery: a job whose process dies is moved back to waiting by another process's
stalled-job check within ``lock_duration + stalled_interval``. Its built-in rate limiter is
not used (see docs/queue-engine.md); provider quotas are enforced in ``ratelimit.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from bullmq import DelayedError, Queue, Worker

from daemon.logs import get_logger
from daemon.policy import TIERS, Profile, Tier, serving_order
from daemon.pools import IDLE_POLL_S, Pool, hand_back
from daemon.store.records import Claimed

JOB_NAME = "sync"
log = get_logger("queues")
STATES = ("waiting", "active", "completed", "failed", "delayed", "prioritized")
# Attempts (``Settings.infra_attempts``) cover infrastructure failures only (database or
# Redis down mid-job); provider errors are recorded and rescheduled by the policy and
# complete the job normally.

Processor = Callable[[Any, str], Awaitable[Any]]


def queue_name(tier: Tier) -> str:
    """Redis queue name of a tier."""
    return f"sync-{tier}"


class TierQueues:
    """Producer side: enqueue claimed mailboxes, read counts."""

    def __init__(
        self,
        redis_url: str,
        prefix: str,
        keep_completed: int,
        keep_failed: int,
        attempts: int = 6,
        backoff_s: float = 2.0,
    ) -> None:
        opts = {"connection": redis_url, "prefix": prefix}
        self._queues: dict[Tier, Queue] = {t: Queue(queue_name(t), opts) for t in TIERS}
        self._job_opts: dict[str, Any] = {
            "removeOnComplete": keep_completed if keep_completed else True,
            "removeOnFail": keep_failed if keep_failed else True,
            "attempts": attempts,
            "backoff": {"type": "exponential", "delay": int(backoff_s * 1000)},
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
    """Consumer side: one worker pool per tier with the profile's concurrency.

    A pool that serves its own queue only (``policy.serving_order``; every pool unless the
    profile is work conserving, and the high pool always) is one bullmq worker. A pool that
    also serves higher tiers is a ``Pool``: a bullmq worker on each queue it serves (which
    keeps bullmq's locks, lock renewal and stalled checks per queue) sharing the pool's
    slots, with one dispatcher that fills a free slot from the first non-empty queue of the
    serving order.
    """

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
        # Workers keyed by the label of their fetch loop: the tier, or ``pool>queue`` for a
        # pool's worker on a higher tier's queue.
        self._workers: dict[str, Worker] = {}
        self._runs: dict[str, asyncio.Task[None]] = {}
        self._pools: list[Pool] = []
        self._tiers: list[Tier] = []
        self._processor = processor
        self._stopping = False
        self._holding = 0
        self._drained = asyncio.Event()
        self._drained.set()
        for tier in TIERS:
            concurrency = profile.concurrency.for_tier(tier)
            if concurrency <= 0:
                continue
            self._tiers.append(tier)
            order = serving_order(tier, profile)
            pool = Pool(tier, concurrency, order, self._held) if len(order) > 1 else None
            for queue in order:
                label = str(tier) if queue is tier else f"{tier}>{queue}"
                worker = CountingWorker(
                    self._held,
                    lambda: self._stopping,
                    pool,
                    queue_name(queue),
                    self._process,
                    {
                        "connection": redis_url,
                        "prefix": prefix,
                        "concurrency": concurrency,
                        "lockDuration": int(lock_duration_s * 1000),
                        "stalledInterval": int(stalled_interval_s * 1000),
                        # A crash-looping job must not stall forever; the reaper catches the
                        # rest.
                        "maxStalledCount": 5,
                        # Short idle poll so a job added right after a drain starts at once.
                        "drainDelay": IDLE_POLL_S,
                        "name": f"{name}:{label}",
                        # Started below, so that its fetch loop is a task this class can watch.
                        "autorun": False,
                    },
                )
                _log_events(worker, label)
                if pool is not None:
                    pool.workers[queue] = worker
                self._workers[label] = worker
                self._runs[label] = asyncio.create_task(worker.run(), name=f"workers-{label}")
            if pool is not None:
                self._pools.append(pool)
                self._runs[f"{tier}-dispatch"] = pool.start()

    @property
    def tiers(self) -> list[Tier]:
        """Tiers this process has workers of."""
        return list(self._tiers)

    def stopped(self) -> list[str]:
        """Fetch loops (and pool dispatchers) that ended although nobody closed the workers."""
        return [
            f"workers-{label}: not running"
            for label, run in self._runs.items()
            if run.done() and not self._stopping
        ]

    async def _process(self, job: Any, token: str) -> Any:
        if self._stopping:
            await hand_back(job, token)
            raise DelayedError  # tells bullmq the job has been moved, not completed
        return await self._processor(job, token)

    def _held(self, delta: int) -> None:
        """Count jobs between their fetch and the end of their processing."""
        self._holding += delta
        if self._holding:
            self._drained.clear()
        else:
            self._drained.set()

    async def close(self, timeout_s: float) -> bool:
        """Stop taking jobs and wait for running ones; force after ``timeout_s``.

        Returns ``True`` when every running job finished. Fetching stops first (the workers
        are paused), then running jobs get until the timeout, and only then are the Redis
        connections closed; a job fetched meanwhile is handed back. Jobs cut off by the
        timeout keep their lock until it expires, then another process's stalled check
        re-queues them.
        """
        if not self._workers:
            return True
        self._stopping = True
        deadline = time.monotonic() + timeout_s
        pausing = [asyncio.ensure_future(w.pause()) for w in self._workers.values()]
        # A pool's fetches wait on its dispatcher, not on Redis: answer them (with nothing)
        # so that the pauses, which wait for every fetch, can finish.
        for pool in self._pools:
            await pool.stop()
        _, pending = await asyncio.wait(pausing, timeout=timeout_s)
        finished = not pending
        if finished:
            try:
                left = max(0.0, deadline - time.monotonic())
                await asyncio.wait_for(self._drained.wait(), timeout=left)
            except TimeoutError:
                finished = False
        for task in pending:
            task.cancel()
        for pool in self._pools:
            await pool.finished(timeout_s=5)
        for w in self._workers.values():
            await w.started()
            await w.close(force=not finished)
        for run in self._runs.values():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(run, timeout=5)
        return finished


class CountingWorker(Worker):  # type: ignore[misc]  # bullmq ships no type hints
    """A bullmq worker that reports every job it holds, from the fetch (the job is then
    locked to this process) to the end of its processing. Pausing stops new fetches but
    cannot see a fetch that was already answered; this count can.

    A worker of a ``Pool`` asks the pool's dispatcher for its jobs instead of fetching
    them itself; the dispatcher counts them and the end of processing frees the slot."""

    def __init__(
        self,
        held: Callable[[int], None],
        stopping: Callable[[], bool],
        pool: Pool | None,
        name: str,
        processor: Processor,
        opts: Any,
    ) -> None:
        self._report_held = held
        self._stopping = stopping
        self._pool = pool
        super().__init__(name, processor, opts)

    async def getNextJob(self, token: str) -> Any:
        if self._pool is not None:
            job = await self._pool.fetch(self, token)
            if job is not None and self._stopping():
                # Given just before shutdown: hand it back here, as below.
                await hand_back(job, token)
                self._report_held(-1)
                self._pool.release()
                return None
            if job is not None:
                self.emit("active", job, "waiting")
            return job
        job = await super().getNextJob(token)
        if job is not None and self._stopping():
            # A paused worker does not collect a fetch that completes after the pause: the
            # job would stay locked until close, then be cut off. Hand it back here.
            await hand_back(job, token)
            return None
        if job is not None:
            self._report_held(1)
        return job

    async def started(self) -> None:
        """Make the Redis call ``run`` starts with (naming its connections) if it has not
        been made yet: a worker closed before it would have it reopen a closed connection,
        which then leaks. Bounded, as Redis may be down at shutdown."""
        if not self._client_name_set:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._ensure_client_names(), timeout=1)

    async def processJob(self, job: Any, token: str) -> None:
        try:
            await super().processJob(job, token)
        finally:
            self._report_held(-1)
            if self._pool is not None:
                self._pool.release()


def _log_events(worker: Worker, tier: str) -> None:
    """Log what the queue library reports only as events (it prints nothing itself)."""

    def on_error(err: BaseException, job: Any = None) -> None:
        log.error(
            "queue worker error",
            tier=tier,
            job_id=getattr(job, "id", None),
            error=f"{type(err).__name__}: {err}"[:300],
        )

    def on_failed(job: Any, err: BaseException) -> None:
        # Only infrastructure errors fail a job (provider errors complete it).
        attempts = int(job.opts.get("attempts", 1))
        log.warning(
            "job attempt failed",
            tier=tier,
            job_id=job.id,
            attempt=job.attemptsMade,
            attempts=attempts,
            gave_up=job.attemptsMade >= attempts,
            error=f"{type(err).__name__}: {err}"[:300],
        )

    worker.on("error", on_error)
    worker.on("failed", on_failed)
    worker.on("stalled", lambda job_id, *_: log.warning("job stalled", tier=tier, job_id=job_id))
    worker.on(
        "lockRenewalFailed",
        lambda job_ids: log.warning("job lock not renewed", tier=tier, job_ids=list(job_ids)),
    )
