"""Quota gates: every provider API call passes one before it is sent."""

from __future__ import annotations


class CountingGate:
    """A gate with no quota: counts calls and throttle events (IMAP, tests, tools)."""

    def __init__(self) -> None:
        self._calls = 0
        self.throttle_events = 0
        self.by_method: dict[str, int] = {}

    async def acquire(self, method: str, count: int = 1) -> None:
        """Admit at once and count."""
        self._calls += count
        self.by_method[method] = self.by_method.get(method, 0) + count

    def throttled(self, retry_after: float | None) -> None:
        """Count a throttle answer."""
        self.throttle_events += 1

    @property
    def calls(self) -> int:
        """Calls admitted so far."""
        return self._calls
