"""The real provider's limits as the simulator models them: sliding windows of admissions."""

from __future__ import annotations

from collections import deque

from daemon import policy


class RealWindow:
    """The real provider's limit: at most ``capacity`` units in any ``period`` seconds.

    A sliding window (a log of admissions), not a bucket: Google words the per-user quota as
    units per minute per user, a moving average over the minute, and Microsoft the Outlook
    limit as 10,000 requests per 10 minutes per app and mailbox without naming window edges,
    so the reading that holds for *every* span of ``period`` is the safe one. A fixed window
    would let 2 x limit through across an edge, and a GCRA bucket of burst ``limit`` (the
    earlier model) let 11,999 units of a 6,000 limit through in one minute. Units admitted
    at ``a`` count in [a, a + period); a request is admitted when they leave room for it.
    Like ``daemon.gcra.Gcra``, consult it in non-decreasing time order.
    """

    __slots__ = ("_log", "_used", "capacity", "period")

    def __init__(self, limit: int, period: float) -> None:
        self.capacity = limit
        self.period = float(period)
        self._log: deque[tuple[float, int]] = deque()  # (admitted at, units), in time order
        self._used = 0  # units in the log

    def _expire(self, now: float) -> None:
        log, p = self._log, self.period
        while log and log[0][0] + p <= now:
            self._used -= log.popleft()[1]

    def earliest(self, now: float, cost: int = 1) -> float:
        """The instant >= ``now`` at which ``cost`` units fit in the window; changes nothing."""
        if cost > self.capacity:
            raise ValueError(f"cost {cost} exceeds the window's limit {self.capacity}")
        self._expire(now)
        excess = self._used + cost - self.capacity
        if excess <= 0:
            return now
        for at, units in self._log:
            excess -= units
            if excess <= 0:
                return at + self.period
        raise AssertionError("unreachable: cost <= capacity")

    def reserve(self, now: float, cost: int = 1) -> float:
        """Admit ``cost`` units at the earliest instant >= ``now``; return that instant."""
        at = self.earliest(now, cost)
        if cost > 0:
            self._expire(at)
            self._log.append((at, cost))
            self._used += cost
        return at

    # The job walk snapshots a walk's buckets through ``tat`` and restores them when it
    # steps the job instead (``simulator.model.general_walk``); for a window that is its whole log.
    @property
    def tat(self) -> tuple[tuple[tuple[float, int], ...], int]:
        """The window's state, for a snapshot (named like ``Gcra.tat`` for the job walk)."""
        return tuple(self._log), self._used

    @tat.setter
    def tat(self, state: tuple[tuple[tuple[float, int], ...], int]) -> None:
        self._log = deque(state[0])
        self._used = state[1]


def real_bucket(q: policy.Quota) -> RealWindow:
    """The real provider's limit ``q``: a sliding window of ``limit`` units per ``period_s``."""
    return RealWindow(q.limit, q.period_s)
