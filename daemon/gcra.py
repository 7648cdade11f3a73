"""Generic cell rate algorithm as plain arithmetic.

The daemon enforces quotas with a GCRA Lua script over Redis (throttled-py's arithmetic,
every bucket of a request in one call: ``daemon.ratelimit``); this module is the same
arithmetic for the simulator and for tests, with time passed in. A bucket must be
consulted in non-decreasing time order: a query at a future instant would reserve capacity
that earlier callers could still have used.
"""

from __future__ import annotations

from dataclasses import dataclass

from daemon.policy import Quota


@dataclass(slots=True)
class Gcra:
    """One bucket: emission interval, capacity (burst) and the theoretical arrival time."""

    emission_interval: float
    capacity: int
    tat: float = float("-inf")

    @classmethod
    def for_quota(cls, quota: Quota) -> Gcra:
        """A bucket enforcing ``quota`` exactly as the daemon's Redis limiter does."""
        return cls(quota.emission_interval_s, quota.burst)

    def _check_cost(self, cost: int) -> None:
        if cost > self.capacity:
            raise ValueError(f"cost {cost} exceeds the bucket capacity {self.capacity}")

    def try_acquire(self, now: float, cost: int = 1) -> float:
        """Take ``cost`` units at ``now`` if allowed and return 0, else return the wait."""
        self._check_cost(cost)
        base = max(now, self.tat)
        wait = (base - now) - (self.capacity - cost) * self.emission_interval
        if wait > 0:
            return wait
        self.tat = base + cost * self.emission_interval
        return 0.0

    def reserve(self, now: float, cost: int = 1) -> float:
        """Reserve ``cost`` units at the earliest instant >= ``now``; return that instant."""
        self._check_cost(cost)
        base = max(now, self.tat)
        start = max(now, base - (self.capacity - cost) * self.emission_interval)
        self.tat = max(start, self.tat) + cost * self.emission_interval
        return start

    def earliest(self, now: float, cost: int = 1) -> float:
        """The instant >= ``now`` at which ``cost`` units would be admitted; changes nothing."""
        self._check_cost(cost)
        base = max(now, self.tat)
        return max(now, base - (self.capacity - cost) * self.emission_interval)


def split_cost(units: int, capacity: int) -> list[int]:
    """Units of one call in pieces a bucket of ``capacity`` can admit, taken one after another.

    An HTTP batch of 50 Gmail gets at 20 units is 1,000 units, more than a per-user bucket
    holds; it is admitted piecewise at the bucket's sustained rate.
    """
    if units <= 0:
        return []
    full, rest = divmod(units, capacity)
    return [capacity] * full + ([rest] if rest else [])
