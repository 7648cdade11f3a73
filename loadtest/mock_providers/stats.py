"""Counters the mock keeps about the traffic it served."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from loadtest.mock_providers.quotas import Peak


@dataclass(slots=True)
class Stats:
    """Requests, charged calls, throttles and injected faults since the last reset.

    ``requests`` counts HTTP requests per endpoint; ``calls`` counts API calls per
    endpoint, where each inner call of a Gmail batch is one call.
    """

    requests: Counter[str] = field(default_factory=Counter)
    calls: Counter[str] = field(default_factory=Counter)
    calls_by_provider: Counter[str] = field(default_factory=Counter)
    calls_by_mailbox: Counter[str] = field(default_factory=Counter)
    throttled: Counter[str] = field(default_factory=Counter)
    unauthorized: Counter[str] = field(default_factory=Counter)
    injected_5xx: Counter[str] = field(default_factory=Counter)
    injected_garbage: Counter[str] = field(default_factory=Counter)
    slow: int = 0
    peak_in_flight: int = 0
    peak_in_flight_mailbox: str = ""

    def call(self, endpoint: str, provider: str, mailbox: str) -> None:
        """Count one API call."""
        self.calls[endpoint] += 1
        self.calls_by_provider[provider] += 1
        self.calls_by_mailbox[mailbox] += 1

    def in_flight(self, value: int, mailbox: str) -> None:
        """Track the highest per-mailbox concurrency seen."""
        if value > self.peak_in_flight:
            self.peak_in_flight = value
            self.peak_in_flight_mailbox = mailbox

    def report(self, peaks: dict[str, Peak]) -> dict[str, Any]:
        """The ``GET /_mock/stats`` document."""
        per_mailbox = self.calls_by_mailbox
        top = per_mailbox.most_common(1)
        return {
            "requests": dict(sorted(self.requests.items())),
            "calls": dict(sorted(self.calls.items())),
            "calls_by_provider": dict(sorted(self.calls_by_provider.items())),
            "throttled": dict(sorted(self.throttled.items())),
            "throttled_total": sum(self.throttled.values()),
            "unauthorized": dict(sorted(self.unauthorized.items())),
            "injected_5xx": dict(sorted(self.injected_5xx.items())),
            "injected_5xx_total": sum(self.injected_5xx.values()),
            "injected_garbage": dict(sorted(self.injected_garbage.items())),
            "injected_garbage_total": sum(self.injected_garbage.values()),
            "slow_responses": self.slow,
            "quota_peaks": {
                name: {
                    "peak_units": p.units,
                    "limit": p.limit,
                    "peak_ratio": round(p.ratio, 6),
                    "key": p.key,
                }
                for name, p in sorted(peaks.items())
            },
            "peak_in_flight_per_mailbox": self.peak_in_flight,
            "peak_in_flight_mailbox": self.peak_in_flight_mailbox,
            "calls_per_mailbox": {
                "mailboxes": len(per_mailbox),
                "total": sum(per_mailbox.values()),
                "max": top[0][1] if top else 0,
                "max_mailbox": top[0][0] if top else "",
            },
        }
