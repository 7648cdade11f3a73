"""Quota gates: every provider API call passes one before it is sent.

Provider quotas are GCRA buckets in Redis, so every daemon process on every host draws from
the same budget. A bucket with capacity ``burst`` and rate ``(limit - burst) / period`` never
admits more than ``limit`` units in any window of ``period`` seconds (see
``daemon.policy.Quota``); ``daemon.gcra`` is the same arithmetic for the simulator.

One request passes all of its provider's buckets (per account and per app) in one atomic
Lua call: throttled-py's GCRA script, run over every bucket at once, admitting in all of
them or in none. The keys and stored values are throttled-py's, so buckets carry over.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

import redis.asyncio as aioredis
import redis.exceptions

from daemon.errors import QuotaDeferred, StoreUnavailable
from daemon.gcra import split_cost
from daemon.policy import ProviderLimits, Quota, QuotaScope, quota_deferral

Sleep = Callable[[float], Awaitable[None]]

# throttled-py's GCRA (its rate_limiter/lua/gcra.lua, same clock origin and arithmetic) over
# every bucket of a request: KEYS[i] is bucket i, ARGV holds (emission interval, capacity,
# cost) per bucket. Nothing is taken unless every bucket admits; then the answer is the
# longest wait among the buckets that refused.
_GCRA_ALL = """
local jan_1_2025 = 1735660800
local t = redis.call("TIME")
local now = (t[1] - jan_1_2025) + (t[2] / 1000000)
local limited = 0
local retry_after = 0
local tats = {}
for i = 1, #KEYS do
    local emission_interval = tonumber(ARGV[3 * i - 2])
    local capacity = tonumber(ARGV[3 * i - 1])
    local cost = tonumber(ARGV[3 * i])
    local last_tat = tonumber(redis.call("GET", KEYS[i]) or now)
    local base = math.max(now, last_tat)
    local time_from_tat = now - base
    local remaining = (capacity - cost) + math.floor(time_from_tat / emission_interval)
    if remaining < 0 then
        limited = 1
        local wait = -(time_from_tat + (capacity - cost) * emission_interval)
        retry_after = math.max(retry_after, wait)
    else
        tats[i] = base + cost * emission_interval
    end
end
if limited == 1 then
    return {1, tostring(retry_after)}
end
for i = 1, #KEYS do
    local reset_after = tats[i] - now
    if reset_after > 0 then
        redis.call("SET", KEYS[i], tats[i], "EX", math.ceil(reset_after))
    end
end
return {0, "0"}
"""
# Told (seconds waited in this admission, seconds the next piece would wait); returns the
# delay to give the worker back for, or None to wait.
Defer = Callable[[float, float], float | None]


def account_key(provider: str, address: str) -> str:
    """Whose per-user quota buckets a sync draws from: the provider account (provider and
    lower-cased address, hashed to keep addresses out of Redis key names), not the mailbox
    row, so an account registered under two tenants spends one quota (docs/daemon.md,
    "Registration rules")."""
    digest = hashlib.sha256(f"{provider}:{address.lower()}".encode()).hexdigest()[:32]
    return f"{provider}:{digest}"


class CountingGate:
    """A gate with no quota: counts calls and throttle events (IMAP, tests, tools)."""

    def __init__(self) -> None:
        self._calls = 0
        self.throttle_events = 0
        # Quota-charged calls and HTTP round trips per method.
        self.by_method: dict[str, int] = {}
        self.requests: dict[str, int] = {}

    @contextmanager
    def chunked(self) -> Iterator[None]:
        """Nothing to defer without a quota."""
        yield

    async def reserve(self, calls: Mapping[str, int]) -> None:
        """Nothing to reserve without a quota."""

    async def acquire(self, method: str, count: int = 1, requests: int = 1) -> None:
        """Admit at once and count."""
        self._calls += count
        self.by_method[method] = self.by_method.get(method, 0) + count
        if requests:
            self.requests[method] = self.requests.get(method, 0) + requests

    def throttled(self, retry_after: float | None) -> None:
        """Count a throttle answer."""
        self.throttle_events += 1

    @property
    def calls(self) -> int:
        """Calls admitted so far."""
        return self._calls


@dataclass
class GateStats:
    """Per-provider counters the metrics endpoint reads."""

    admitted_units: dict[str, int] = field(default_factory=dict)
    # Admissions (Lua calls that admitted); a reservation admits a sync's calls in one.
    admissions: dict[str, int] = field(default_factory=dict)
    waits: dict[str, int] = field(default_factory=dict)
    wait_seconds: dict[str, float] = field(default_factory=dict)
    throttled: dict[str, int] = field(default_factory=dict)

    def add(self, table: dict[str, int], key: str, n: int = 1) -> None:
        """Increment a counter."""
        table[key] = table.get(key, 0) + n


class QuotaLimiters:
    """The Redis-backed buckets of every provider quota, shared by all processes."""

    def __init__(
        self,
        redis_url: str,
        prefix: str,
        limits: Mapping[str, ProviderLimits],
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.limits = dict(limits)
        self._sleep = sleep
        self.stats = GateStats()
        # This object's own connection pool, closed by its owner (``aclose``).
        self._redis = aioredis.Redis.from_url(redis_url, max_connections=500)
        self._script = self._redis.register_script(_GCRA_ALL)
        # throttled-py's key layout: ``{prefix}:quota`` namespace, schema v1, limiter type.
        self._key_prefix = f"{prefix}:quota:v1:gcra:"
        self._buckets: dict[str, list[tuple[Quota, float]]] = {
            provider: [(q, q.emission_interval_s) for q in lim.quotas]
            for provider, lim in self.limits.items()
        }

    async def aclose(self) -> None:
        """Close the Redis connections of the gates."""
        await self._redis.aclose()

    def gate(self, provider: str, mailbox_key: str, chunk_wait_s: float | None = None) -> QuotaGate:
        """The gate one sync of one mailbox uses (``QuotaGate.chunked`` for ``chunk_wait_s``);
        ``mailbox_key`` keys the per-user buckets: the daemon passes ``account_key``."""
        return QuotaGate(self, provider, mailbox_key, chunk_wait_s)

    async def admit(
        self, provider: str, mailbox_key: str, units: int, defer: Defer | None = None
    ) -> float:
        """Block until every bucket of ``provider`` admits ``units``; return seconds waited.

        With ``defer``, a wait it turns down raises ``QuotaDeferred`` instead of sleeping.
        """
        waited = 0.0
        buckets = self._buckets.get(provider, [])
        if not buckets:
            self.stats.add(self.stats.admitted_units, provider, units)
            return waited
        keys = [
            self._key_prefix
            + (f"{q.name}:{mailbox_key}" if q.scope is QuotaScope.MAILBOX else q.name)
            for q, _ in buckets
        ]
        # A call costing more than the smallest bucket holds goes in pieces it can admit.
        for piece in split_cost(units, min(q.burst for q, _ in buckets)):
            args: list[float | int] = []
            for q, interval in buckets:
                args += (interval, q.burst, piece)
            while True:
                try:
                    limited, retry_after = await self._script(keys, args)
                except (redis.exceptions.RedisError, OSError) as exc:
                    # Our Redis, not the provider: the job is retried, no failure counted.
                    raise StoreUnavailable(f"quota store unavailable: {exc}") from exc
                if not limited:
                    break
                # A tiny floor avoids spinning on rounding at the bucket's edge.
                delay = max(float(retry_after), 0.001)
                later = defer(waited, delay) if defer is not None else None
                if later is not None:
                    # Nothing was taken from any bucket for this call.
                    raise QuotaDeferred(later, provider=provider)
                self.stats.add(self.stats.waits, provider)
                self.stats.wait_seconds[provider] = (
                    self.stats.wait_seconds.get(provider, 0.0) + delay
                )
                waited += delay
                await self._sleep(delay)
        self.stats.add(self.stats.admitted_units, provider, units)
        self.stats.add(self.stats.admissions, provider)
        return waited


class QuotaGate:
    """Passes one mailbox's calls through its provider's shared quota buckets."""

    def __init__(
        self,
        limiters: QuotaLimiters,
        provider: str,
        mailbox_key: str,
        chunk_wait_s: float | None = None,
    ) -> None:
        self._limiters = limiters
        self._provider = provider
        self._mailbox_key = mailbox_key
        self._limits = limiters.limits.get(provider)
        self._calls = 0
        self._chunk_wait_s = chunk_wait_s
        self._chunked = 0
        # Calls per method admitted by ``reserve`` and not made yet.
        self._reserved: dict[str, int] = {}
        self.waited_s = 0.0
        self.throttle_events = 0

    @contextmanager
    def chunked(self) -> Iterator[None]:
        """Calls inside may raise ``QuotaDeferred`` when their wait would take this run's
        quota wait past ``chunk_wait_s`` (a full sync that can resume where it stopped)."""
        self._chunked += 1
        try:
            yield
        finally:
            self._chunked -= 1

    def _defer(self, waited_here: float, wait_s: float) -> float | None:
        assert self._chunk_wait_s is not None  # only handed out when set
        return quota_deferral(self.waited_s + waited_here, wait_s, self._chunk_wait_s)

    async def reserve(self, calls: Mapping[str, int]) -> None:
        """Admit the calls a sync is about to make (``{method: count}``) in one Redis call;
        the ``acquire`` of each then passes without one.

        Units reserved and never used stay spent: the provider sees fewer calls than the
        quota allowed, never more. Calls past the reservation are admitted one by one.
        """
        if self._limits is None:
            return
        wanted = {m: n for m, n in calls.items() if n > 0}
        units = sum(self._limits.cost(m) * n for m, n in wanted.items())
        if units <= 0:
            return
        defer = self._defer if self._chunked and self._chunk_wait_s is not None else None
        self.waited_s += await self._limiters.admit(self._provider, self._mailbox_key, units, defer)
        for method, n in wanted.items():
            self._reserved[method] = self._reserved.get(method, 0) + n

    async def acquire(self, method: str, count: int = 1, requests: int = 1) -> None:
        """Wait for quota for ``count`` calls of ``method``, then count them (``requests``
        only matters to the counting gate)."""
        left = self._reserved.get(method, 0)
        if left >= count:
            self._reserved[method] = left - count
            self._calls += count
            return
        if self._limits is not None:
            units = self._limits.cost(method) * count
            defer = self._defer if self._chunked and self._chunk_wait_s is not None else None
            self.waited_s += await self._limiters.admit(
                self._provider, self._mailbox_key, units, defer
            )
        self._calls += count

    def throttled(self, retry_after: float | None) -> None:
        """Count a 429 / rate-limit answer from the provider."""
        self.throttle_events += 1
        self._limiters.stats.add(self._limiters.stats.throttled, self._provider)

    @property
    def calls(self) -> int:
        """Calls admitted so far."""
        return self._calls
