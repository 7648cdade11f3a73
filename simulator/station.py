"""A multi-server station: ``servers`` workers, FIFO per class, classes served by priority.

The daemon's tiers are three stations of one class each (a worker pool pulls only its own
queue); the textbook checks use one station with three classes (non-preemptive priority).
Time integrals of queue length and busy servers are kept for Little's law and utilisation.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

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
