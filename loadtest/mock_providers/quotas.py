"""Strict sliding-window quota enforcement, as the real providers count.

A quota admits at most ``limit`` units in any trailing window of ``period_s`` seconds. Each
key (a mailbox, or the whole app) keeps a deque of (time, cost); a call that would push the
window total over the limit is refused with the whole seconds until enough units have left
the window. Refused calls are not counted, so the advice is exact. Limits come from
``daemon.policy`` presets (the window total is ``Quota.limit``; the daemon-side ``burst``
does not exist at the provider), optionally scaled or replaced by custom values.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

from daemon.policy import ProviderLimits, QuotaScope, get_quota_preset, scale_quotas
from loadtest.mock_providers.config import QuotaConfig


@dataclass(frozen=True, slots=True)
class WindowLimit:
    """At most ``limit`` units per trailing ``period_s`` seconds, per key of ``scope``."""

    name: str
    scope: QuotaScope
    limit: int
    period_s: float


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a call was refused and when to come back (whole seconds)."""

    quota: WindowLimit
    retry_after_s: int


class SlidingWindow:
    """Units admitted in the trailing window of one key."""

    __slots__ = ("events", "used")

    def __init__(self) -> None:
        self.events: deque[tuple[float, int]] = deque()
        self.used = 0

    def evict(self, now: float, period_s: float) -> None:
        """Forget units that left the window: an event at t counts while now < t + period."""
        events = self.events
        edge = now - period_s
        while events and events[0][0] <= edge:
            self.used -= events.popleft()[1]

    def wait(self, now: float, limit: WindowLimit, cost: int) -> float:
        """0 when ``cost`` units fit now, else the seconds until they would."""
        self.evict(now, limit.period_s)
        if self.used + cost <= limit.limit:
            return 0.0
        if cost > limit.limit:
            return limit.period_s
        excess = self.used + cost - limit.limit
        for t, units in self.events:
            excess -= units
            if excess <= 0:
                return t + limit.period_s - now
        return limit.period_s  # unreachable: the events sum to ``used``

    def add(self, now: float, cost: int) -> None:
        """Count ``cost`` units at ``now``."""
        self.events.append((now, cost))
        self.used += cost


@dataclass(slots=True)
class Peak:
    """Highest window usage seen for one quota, over all its keys."""

    units: int = 0
    limit: int = 1
    key: str = ""

    @property
    def ratio(self) -> float:
        """Peak units relative to the limit."""
        return self.units / self.limit


def resolve_limits(
    cfg: QuotaConfig,
) -> tuple[dict[str, tuple[WindowLimit, ...]], dict[str, ProviderLimits]]:
    """Window limits per provider and the preset's limits (for costs and concurrency)."""
    preset = get_quota_preset(cfg.preset)
    windows: dict[str, tuple[WindowLimit, ...]] = {}
    for provider, limits in preset.items():
        scaled = scale_quotas(limits, cfg.scale) if cfg.scale != 1.0 else limits
        out = []
        for q in scaled.quotas:
            custom = cfg.custom.get(q.name)
            if custom is not None:
                out.append(WindowLimit(q.name, q.scope, custom.limit, custom.period_s))
            else:
                out.append(WindowLimit(q.name, q.scope, q.limit, float(q.period_s)))
        windows[provider] = tuple(out)
    return windows, dict(preset)


class QuotaBook:
    """Every window of every key; admits or refuses calls."""

    def __init__(self, cfg: QuotaConfig) -> None:
        self.cfg = cfg
        self.windows_by_provider, self.presets = resolve_limits(cfg)
        self.windows: dict[tuple[str, str], SlidingWindow] = {}
        self.peaks: dict[str, Peak] = {}

    def reconfigure(self, cfg: QuotaConfig) -> None:
        """New limits; usage so far is kept so a tightened limit bites at once."""
        self.cfg = cfg
        self.windows_by_provider, self.presets = resolve_limits(cfg)

    def reset(self) -> None:
        """Forget all usage and peaks."""
        self.windows.clear()
        self.peaks.clear()

    def reset_peaks(self) -> None:
        """Forget the peaks only."""
        self.peaks.clear()

    def cost(self, provider: str, method: str) -> int:
        """Units one call of ``method`` costs at ``provider``."""
        return self.presets[provider].cost(method)

    def max_concurrent(self, provider: str) -> int:
        """In-flight requests allowed per mailbox (0: unlimited)."""
        if not self.cfg.enabled:
            return 0
        if self.cfg.max_concurrent_per_mailbox is not None:
            return self.cfg.max_concurrent_per_mailbox
        return self.presets[provider].max_concurrent_per_mailbox

    def limits(self) -> Mapping[str, tuple[WindowLimit, ...]]:
        """The window limits in force, per provider."""
        return self.windows_by_provider

    def admit(
        self, provider: str, method: str, mailbox_key: str, app_key: str, now: float
    ) -> Refusal | None:
        """Charge one call of ``method`` against every quota of ``provider``, or refuse it
        (charging nothing) with the quota that binds longest."""
        if not self.cfg.enabled:
            return None
        cost = self.cost(provider, method)
        limits = self.windows_by_provider[provider]
        slots = []
        worst: Refusal | None = None
        for limit in limits:
            key = mailbox_key if limit.scope is QuotaScope.MAILBOX else app_key
            window = self.windows.get((limit.name, key))
            if window is None:
                window = self.windows[(limit.name, key)] = SlidingWindow()
            wait = window.wait(now, limit, cost)
            if wait > 0:
                retry = max(1, math.ceil(wait - 1e-9))
                if worst is None or retry > worst.retry_after_s:
                    worst = Refusal(limit, retry)
            slots.append((limit, key, window))
        if worst is not None:
            return worst
        for limit, key, window in slots:
            window.add(now, cost)
            peak = self.peaks.get(limit.name)
            if peak is None:
                peak = self.peaks[limit.name] = Peak(0, limit.limit, key)
            # Ratios, not units: the limit may have been changed since the peak was seen.
            if window.used / limit.limit > peak.ratio:
                peak.units, peak.limit, peak.key = window.used, limit.limit, key
        return None
