"""A multi-server station: ``servers`` workers, FIFO per class, classes served by priority.

The daemon's tiers are ``TierPools``: three queues and three worker pools, each pool pulling
the queues ``policy.serving_order`` allows (its own only, unless work conserving); the
textbook checks use one ``Station`` with three classes (non-preemptive priority).
Time integrals of queue length and busy servers are kept for Little's law and utilisation.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from daemon import policy

# on_start(item, now, waited, cls): a server takes ``item``.
StartFn = Callable[[Any, float, float, int], None]


class Station:
    """c servers, non-preemptive priority between classes (0 first), FIFO within a class."""

    __slots__ = (
        "_last",
        "_on_start",
        "_queues",
        "area_busy",
        "area_queue",
        "arrivals",
        "busy",
        "queued",
        "servers",
        "since",
    )

    def __init__(self, servers: int, on_start: StartFn, classes: int = 1) -> None:
        if servers < 0 or classes < 1:
            raise ValueError("servers must be >= 0 and classes >= 1")
        self.servers = servers
        self._on_start = on_start
        self._queues: list[deque[tuple[float, Any]]] = [deque() for _ in range(classes)]
        self.busy = 0
        self.queued = 0
        self.arrivals = 0
        self.area_queue = 0.0
        self.area_busy = 0.0
        self.since = 0.0
        self._last = 0.0

    def _advance(self, now: float) -> None:
        dt = now - self._last
        if dt > 0:
            self.area_queue += self.queued * dt
            self.area_busy += self.busy * dt
            self._last = now

    def arrive(self, item: Any, now: float, cls: int = 0) -> None:
        """A job joins class ``cls``; it starts at once if a server is free."""
        # _advance() inlined: this runs once per job.
        dt = now - self._last
        if dt > 0:
            self.area_queue += self.queued * dt
            self.area_busy += self.busy * dt
            self._last = now
        self.arrivals += 1
        if self.busy < self.servers:
            self.busy += 1
            self._on_start(item, now, 0.0, cls)
        else:
            self._queues[cls].append((now, item))
            self.queued += 1

    def depart(self, now: float) -> None:
        """A server finished; it takes the oldest job of the best non-empty class."""
        dt = now - self._last
        if dt > 0:
            self.area_queue += self.queued * dt
            self.area_busy += self.busy * dt
            self._last = now
        if self.queued:
            for cls, q in enumerate(self._queues):
                if q:
                    t, item = q.popleft()
                    self.queued -= 1
                    self._on_start(item, now, now - t, cls)
                    return
        self.busy -= 1

    def reset_stats(self, now: float) -> None:
        """Start the measurement window at ``now`` (end of warm-up)."""
        self._advance(now)
        self.area_queue = 0.0
        self.area_busy = 0.0
        self.arrivals = 0
        self.since = now

    def close(self, now: float) -> None:
        """Bring the integrals up to ``now``."""
        self._advance(now)

    def waiting_since(self) -> list[float]:
        """Enqueue instants of the jobs still waiting (for wait censoring at the horizon)."""
        return [t for q in self._queues for t, _ in q]


class TierPools:
    """The daemon's worker pools and tier queues: a free worker of pool ``p`` takes the
    oldest job of the first non-empty queue of ``orders[p]``; a job arriving on queue ``q``
    starts on a free worker of the first pool of ``helpers[q]`` that has one.

    With each pool serving its own queue only this is three independent stations; with
    ``policy.serving_order`` under ``work_conserving`` idle lower pools take higher-tier
    jobs. ``views[i]`` reads like a ``Station`` for tier ``i``: its queue's length,
    arrivals and waits, and its pool's busy workers and servers (``metrics`` reads those).
    The start callback is told the pool that serves the job as ``cls``; the job's end is
    ``depart(now, pool)``. Time integrals are brought up to date only for the queue or pool
    that changes, so an event costs the same whatever the number of tiers.
    """

    __slots__ = (
        "_lb",
        "_lq",
        "_on_start",
        "area_busy",
        "area_queue",
        "arrivals",
        "busy",
        "helpers",
        "orders",
        "queues",
        "servers",
        "since",
        "views",
    )

    def __init__(
        self,
        servers: list[int],
        orders: list[tuple[int, ...]],
        helpers: list[tuple[int, ...]],
        on_start: StartFn,
    ) -> None:
        if len(servers) != len(orders) or len(orders) != len(helpers):
            raise ValueError("servers, orders and helpers need one entry per tier")
        if any(c < 0 for c in servers):
            raise ValueError("servers must be >= 0")
        for p, order in enumerate(orders):
            for q in order:
                if p not in helpers[q]:
                    raise ValueError(f"pool {p} serves queue {q} but is not among its helpers")
        n = len(servers)
        self.servers = list(servers)
        self.orders = [tuple(o) for o in orders]
        # Pools without workers never help: skipping them keeps the arrival loop short.
        self.helpers = [tuple(p for p in h if servers[p] > 0) for h in helpers]
        self._on_start = on_start
        self.queues: list[deque[tuple[float, Any]]] = [deque() for _ in range(n)]
        self.busy = [0] * n
        self.arrivals = [0] * n
        self.area_queue = [0.0] * n
        self.area_busy = [0.0] * n
        # When each queue's length and each pool's busy count last changed.
        self._lq = [0.0] * n
        self._lb = [0.0] * n
        self.since = 0.0
        self.views = [PoolView(self, i) for i in range(n)]

    def arrive(self, item: Any, now: float, queue: int) -> None:
        """A job joins ``queue``; it starts at once if an allowed pool has a free worker."""
        self.arrivals[queue] += 1
        busy = self.busy
        for p in self.helpers[queue]:
            b = busy[p]
            if b < self.servers[p]:
                self.area_busy[p] += b * (now - self._lb[p])
                self._lb[p] = now
                busy[p] = b + 1
                self._on_start(item, now, 0.0, p)
                return
        waiting = self.queues[queue]
        self.area_queue[queue] += len(waiting) * (now - self._lq[queue])
        self._lq[queue] = now
        waiting.append((now, item))

    def arrive_many(self, items: list[Any], queues: list[int], now: float) -> None:
        """``arrive(item, now, queue)`` for each item and its queue in turn (a claim's batch
        in one call)."""
        arrivals, busy, servers, helpers = self.arrivals, self.busy, self.servers, self.helpers
        area_busy, lb, on_start = self.area_busy, self._lb, self._on_start
        pending, area_queue, lq = self.queues, self.area_queue, self._lq
        for item, queue in zip(items, queues, strict=True):
            arrivals[queue] += 1
            for p in helpers[queue]:
                b = busy[p]
                if b < servers[p]:
                    # (An integral already at ``now`` would add b x 0.0: it is left as is.)
                    if lb[p] != now:
                        area_busy[p] += b * (now - lb[p])
                        lb[p] = now
                    busy[p] = b + 1
                    on_start(item, now, 0.0, p)
                    break
            else:
                waiting = pending[queue]
                if lq[queue] != now:
                    area_queue[queue] += len(waiting) * (now - lq[queue])
                    lq[queue] = now
                waiting.append((now, item))

    def depart(self, now: float, pool: int) -> None:
        """A worker of ``pool`` finished; it takes the next job its serving order allows."""
        queues = self.queues
        for q in self.orders[pool]:
            waiting = queues[q]
            if waiting:
                self.area_queue[q] += len(waiting) * (now - self._lq[q])
                self._lq[q] = now
                t, item = waiting.popleft()
                self._on_start(item, now, now - t, pool)
                return
        b = self.busy[pool]
        self.area_busy[pool] += b * (now - self._lb[pool])
        self._lb[pool] = now
        self.busy[pool] = b - 1

    def _advance(self, now: float) -> None:
        for i, waiting in enumerate(self.queues):
            self.area_queue[i] += len(waiting) * (now - self._lq[i])
            self.area_busy[i] += self.busy[i] * (now - self._lb[i])
        n = len(self.queues)
        self._lq = [now] * n
        self._lb = [now] * n

    def reset_stats(self, now: float) -> None:
        """Start the measurement window at ``now`` (end of warm-up)."""
        self._advance(now)
        n = len(self.servers)
        self.area_queue = [0.0] * n
        self.area_busy = [0.0] * n
        self.arrivals = [0] * n
        self.since = now

    def close(self, now: float) -> None:
        """Bring the integrals up to ``now``."""
        self._advance(now)

    def serving_utilisation(self, queue: int, window_s: float) -> float:
        """Busy share, over ``window_s``, of every worker that may take ``queue``'s jobs (its
        pool and its helpers); the same as the own pool's while nobody helps."""
        servers = sum(self.servers[p] for p in self.helpers[queue])
        if servers == 0 or window_s <= 0:
            return float("nan")
        return sum(self.area_busy[p] for p in self.helpers[queue]) / (servers * window_s)

    @classmethod
    def for_profile(cls, profile: policy.Profile, processes: int, on_start: StartFn) -> TierPools:
        """The pools of ``processes`` daemon processes under ``profile`` (tier ``i`` is
        ``policy.TIERS[i]``), serving in ``policy.serving_order``."""
        tiers = policy.TIERS
        index = {t: i for i, t in enumerate(tiers)}
        return cls(
            [processes * profile.concurrency.for_tier(t) for t in tiers],
            [tuple(index[q] for q in policy.serving_order(t, profile)) for t in tiers],
            [tuple(index[p] for p in policy.serving_pools(t, profile)) for t in tiers],
            on_start,
        )


class PoolView:
    """One tier of a ``TierPools`` with a ``Station``'s read-only figures: the queue's
    (length, arrivals, area) and the pool's (busy workers, servers, busy area)."""

    __slots__ = ("_i", "_pools")

    def __init__(self, pools: TierPools, i: int) -> None:
        self._pools, self._i = pools, i

    @property
    def servers(self) -> int:
        """Workers of this tier's pool."""
        return self._pools.servers[self._i]

    @property
    def busy(self) -> int:
        """Workers of this tier's pool running a job (of any tier they serve)."""
        return self._pools.busy[self._i]

    @property
    def queued(self) -> int:
        """Jobs waiting on this tier's queue."""
        return len(self._pools.queues[self._i])

    @property
    def arrivals(self) -> int:
        """Jobs that joined this tier's queue since the last reset."""
        return self._pools.arrivals[self._i]

    @property
    def area_queue(self) -> float:
        """Time integral of this tier's queue length."""
        return self._pools.area_queue[self._i]

    @property
    def area_busy(self) -> float:
        """Time integral of this tier's pool's busy workers."""
        return self._pools.area_busy[self._i]

    def waiting_since(self) -> list[float]:
        """Enqueue instants of the jobs still waiting on this tier's queue."""
        return [t for t, _ in self._pools.queues[self._i]]
