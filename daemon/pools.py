"""A tier's worker pool when it serves several queues (``policy.serving_order`` under
``work_conserving``): bullmq workers, one per queue, sharing the pool's slots through one
dispatcher that serves the queues in order. ``daemon.queues.TierWorkers`` builds them.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from daemon.logs import get_logger
from daemon.policy import Tier

log = get_logger("queues")
# Longest wait on an idle queue before fetching again: a job added right after a drain, or a
# delayed job coming due, starts within it.
IDLE_POLL_S = 1


async def hand_back(job: Any, token: str) -> None:
    """Return a job fetched at the instant of shutdown to the queue at once (delayed by
    nothing, no attempt spent), instead of leaving it locked until its lock lapses."""
    await job.moveToDelayed(int(time.time() * 1000), token)


class PoolWorker(Protocol):
    """What the dispatcher uses of a pool's bullmq worker (``queues.CountingWorker``), so
    this module needs nothing from the module that builds the pools."""

    # bullmq's fields, untyped there: the due instant (ms) of the queue's next delayed job as
    # its last empty fetch saw it (0 or None when none), its Redis keys, its blocking client.
    blockUntil: Any
    keys: dict[str, str]
    bclient: Any

    async def moveToActive(self, token: str) -> Any:
        """The queue's next waiting job, moved to active under ``token``, or ``None``."""


class Pool:
    """One tier's workers when they serve several queues (``policy.serving_order``).

    The pool runs at most ``slots`` jobs at a time, whichever queues they come from. Each
    of its bullmq workers (one per queue) keeps fetches outstanding as usual, but a fetch
    waits here; the dispatcher answers one whenever a slot is free, with the oldest job
    of the first queue in the serving order that has one (bullmq's non-blocking
    ``moveToActive`` per queue, in order). So a free worker never starts a lower tier's job
    while a higher tier's job is waiting. When every queue is empty it blocks on the
    queues' bullmq markers (which every added or promoted job sets) for at most
    ``IDLE_POLL_S``, or until the next delayed job is due.
    """

    def __init__(
        self,
        tier: Tier,
        slots: int,
        order: tuple[Tier, ...],
        held: Callable[[int], None],
    ) -> None:
        self.tier = tier
        self.order = order
        self.free = slots
        self.workers: dict[Tier, PoolWorker] = {}
        # Outstanding fetches per queue: the fetch's lock token and the future it waits on.
        self._wanted: dict[Tier, deque[tuple[str, asyncio.Future[Any]]]] = {
            q: deque() for q in order
        }
        self._report_held = held
        self._wake = asyncio.Event()
        self._stopping = False
        self._idle: asyncio.Task[Any] | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> asyncio.Task[None]:
        """Run the dispatcher (until ``stop``)."""
        self._task = asyncio.create_task(self._dispatch(), name=f"workers-{self.tier}-dispatch")
        return self._task

    async def finished(self, timeout_s: float) -> None:
        """Wait for the stopped dispatcher to end: a job it was moving to active when
        stopped is handed back on the workers' connections, so they close after this."""
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(asyncio.shield(self._task), timeout=timeout_s)

    async def fetch(self, worker: PoolWorker, token: str) -> Any:
        """A fetch of ``worker``: the job the dispatcher gives it, or ``None`` once stopping."""
        if self._stopping:
            return None
        queue = next(q for q, w in self.workers.items() if w is worker)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        entry = (token, fut)
        self._wanted[queue].append(entry)
        self._wake.set()
        try:
            return await fut
        finally:
            # A fetch cancelled (forced close) or answered leaves the line.
            with contextlib.suppress(ValueError):
                self._wanted[queue].remove(entry)

    def release(self) -> None:
        """A job of the pool ended: its slot is free."""
        self.free += 1
        self._wake.set()

    async def stop(self) -> None:
        """Stop dispatching; outstanding fetches get ``None``."""
        self._stopping = True
        self._wake.set()
        if self._idle is not None:
            self._idle.cancel()
        for wanted in self._wanted.values():
            for _, fut in wanted:
                if not fut.done():
                    fut.set_result(None)

    def _ready(self) -> bool:
        """A slot is free and every queue's worker has a fetch outstanding. Each worker
        keeps ``slots`` minus its running jobs outstanding, so this holds a moment after a
        slot frees; the worker whose job just ended must have asked again before any
        queue is passed over, or a lower queue could be served while its queue waits."""
        if self.free <= 0:
            return False
        for wanted in self._wanted.values():
            while wanted and wanted[0][1].done():
                wanted.popleft()
            if not wanted:
                return False
        return True

    async def _dispatch(self) -> None:
        while not self._stopping:
            if not self._ready():
                self._wake.clear()
                await self._wake.wait()
                continue
            try:
                if await self._take() is False:
                    await self._wait_for_jobs()
            except asyncio.CancelledError:
                if not self._stopping:
                    raise
            except Exception as err:  # Redis down: log, wait a little (or for stop), go on
                log.error(
                    "queue worker error", tier=str(self.tier), error=f"{type(err).__name__}: {err}"
                )
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), IDLE_POLL_S)

    async def _take(self) -> bool | None:
        """Move the first waiting job of the serving order to active, for one outstanding
        fetch of its queue's worker; ``False`` when every queue is empty, ``None`` when a
        worker has no fetch outstanding any more (``_ready`` waits for it)."""
        for queue in self.order:
            wanted = self._wanted[queue]
            if not wanted or wanted[0][1].done():
                return None  # a fetch ended while an earlier queue was asked: start over
            entry = wanted[0]
            token, fut = entry
            job = await self.workers[queue].moveToActive(token)
            if job is None:
                continue
            with contextlib.suppress(ValueError):
                wanted.remove(entry)
            if self._stopping or fut.done():
                # Fetched at the instant of shutdown (or for a fetch cancelled meanwhile).
                await hand_back(job, token)
                return True
            self.free -= 1
            self._report_held(1)
            fut.set_result(job)
            return True
        return False

    async def _wait_for_jobs(self) -> None:
        """Block until a queue of the pool has a job (a marker), a delayed job is due, or
        ``IDLE_POLL_S`` has passed."""
        now_ms = time.time() * 1000
        # A delayed job's due instant, as bullmq's last empty fetch of the queue reported it
        # (an instant already past is stale: the job was promoted and taken).
        due = [w.blockUntil for w in self.workers.values() if (w.blockUntil or 0) > now_ms]
        timeout = IDLE_POLL_S
        if due:
            timeout = min(timeout, max((min(due) - now_ms) / 1000, 0.001))
        own = self.workers[self.tier]
        markers = [w.keys["marker"] for w in self.workers.values()]
        self._idle = asyncio.ensure_future(own.bclient.bzpopmin(markers, timeout))
        try:
            await self._idle
        finally:
            self._idle = None
