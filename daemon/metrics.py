"""Prometheus metrics of one daemon process, in a registry of its own (no module globals)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from daemon.store.records import RunStart

DURATION_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900)
# Provider request round trips: 40 log-spaced bounds from 1 ms to about 60 s (ratio 1.32),
# fine enough that quantiles read off the buckets are within a few per cent (calibration).
REQUEST_BUCKETS: tuple[float, ...] = tuple(round(0.001 * 1.32**i, 6) for i in range(40))
# Seconds since the last successful sync: fine around the 5-minute target, coarse beyond.
FRESHNESS_BUCKETS: tuple[float, ...] = (
    30,
    60,
    120,
    180,
    240,
    300,
    360,
    450,
    600,
    900,
    1800,
    3600,
    6 * 3600,
    24 * 3600,
    48 * 3600,
)


@dataclass
class Snapshot:
    """Cluster-wide figures read from PostgreSQL and Redis at scrape time."""

    queues: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    # (upper bound, cumulative count) pairs over active mailboxes, plus never-synced count.
    freshness_buckets: Sequence[tuple[float, int]] = ()
    freshness_count: int = 0
    freshness_sum: float = 0.0
    never_synced: int = 0
    mailboxes_by_status: Mapping[str, int] = field(default_factory=dict)
    throughput_per_min: Mapping[str, float] = field(default_factory=dict)
    error_rate_15m: float = 0.0
    db_pool_in_use: int = 0
    db_pool_size: int = 0
    db_pool_waiting: int = 0
    redis_used_memory: int = 0


class _SnapshotCollector(Collector):
    def __init__(self) -> None:
        self.snapshot = Snapshot()

    def collect(self) -> Iterator[Metric]:
        s = self.snapshot
        q = GaugeMetricFamily(
            "mailsync_queue_jobs", "Jobs per tier queue and state", labels=["tier", "state"]
        )
        for tier, states in s.queues.items():
            for state, n in states.items():
                q.add_metric([tier, state], n)
        yield q
        h = HistogramMetricFamily(
            "mailsync_mailbox_freshness_seconds",
            "Seconds since each active mailbox's last successful sync",
        )
        buckets = [(_le(b), float(c)) for b, c in s.freshness_buckets]
        buckets.append(("+Inf", float(s.freshness_count)))
        h.add_metric([], buckets, sum_value=s.freshness_sum)
        yield h
        g = GaugeMetricFamily(
            "mailsync_mailboxes_never_synced", "Active mailboxes without a successful sync yet"
        )
        g.add_metric([], s.never_synced)
        yield g
        st = GaugeMetricFamily("mailsync_mailboxes", "Mailboxes per status", labels=["status"])
        for status, n in s.mailboxes_by_status.items():
            st.add_metric([status], n)
        yield st
        t = GaugeMetricFamily(
            "mailsync_throughput_syncs_per_minute",
            "Finished syncs per minute, cluster-wide",
            labels=["window"],
        )
        for window, v in s.throughput_per_min.items():
            t.add_metric([window], v)
        yield t
        e = GaugeMetricFamily("mailsync_error_rate", "Failed share of syncs over 15 minutes")
        e.add_metric([], s.error_rate_15m)
        yield e
        p = GaugeMetricFamily(
            "mailsync_db_pool_connections", "PostgreSQL pool of this process", labels=["state"]
        )
        p.add_metric(["in_use"], s.db_pool_in_use)
        p.add_metric(["size"], s.db_pool_size)
        p.add_metric(["waiting"], s.db_pool_waiting)
        yield p
        r = GaugeMetricFamily("mailsync_redis_used_memory_bytes", "Redis used_memory")
        r.add_metric([], s.redis_used_memory)
        yield r


def _le(bound: float) -> str:
    return str(int(bound)) if float(bound).is_integer() else str(bound)


class Metrics:
    """Counters of this process plus the scrape-time snapshot."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.syncs = Counter(
            "mailsync_syncs",
            "Finished syncs",
            ["tier", "kind", "outcome", "error_kind"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "mailsync_sync_duration_seconds",
            "Sync duration by kind",
            ["kind"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.api_calls = Counter(
            "mailsync_api_calls", "Provider API calls", ["provider"], registry=self.registry
        )
        self.request_seconds = Histogram(
            "mailsync_provider_request_seconds",
            "Round trip of one provider request (HTTP request or IMAP command) by call method",
            ["provider", "method"],
            buckets=REQUEST_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "mailsync_jobs_in_flight", "Jobs running in this process", registry=self.registry
        )
        self.quota_waits = Counter(
            "mailsync_quota_waits",
            "Times a call waited for quota",
            ["provider"],
            registry=self.registry,
        )
        self.throttled = Counter(
            "mailsync_provider_throttled",
            "429 / rate-limit answers received",
            ["provider"],
            registry=self.registry,
        )
        self.scheduler_cycles = Counter(
            "mailsync_scheduler_cycles",
            "Scheduler cycles of this process (their pace is the cycle period)",
            registry=self.registry,
        )
        self.scheduler_claimed = Counter(
            "mailsync_scheduler_claimed",
            "Mailboxes claimed by this process's scheduler",
            ["tier"],
            registry=self.registry,
        )
        self._snapshot = _SnapshotCollector()
        self.registry.register(self._snapshot)
        self._quota_seen: dict[tuple[str, str], float] = {}

    def observe_sync(
        self,
        start: RunStart,
        kind: Any,
        outcome: str,
        seconds: float,
        calls: int,
        error_kind: str = "",
    ) -> None:
        """Count one finished run."""
        self.syncs.labels(str(start.tier), str(kind), outcome, error_kind).inc()
        self.duration.labels(str(kind)).observe(max(0.0, seconds))
        self.api_calls.labels(start.provider).inc(calls)

    def observe_request(self, provider: str, method: str, seconds: float) -> None:
        """Count one provider request's round trip."""
        self.request_seconds.labels(provider, method).observe(max(0.0, seconds))

    def sync_quota_stats(self, waits: Mapping[str, int], throttled: Mapping[str, int]) -> None:
        """Carry the limiters' running totals into counters."""
        for table, counter in ((waits, self.quota_waits), (throttled, self.throttled)):
            name = counter._name
            for provider, total in table.items():
                seen = self._quota_seen.get((name, provider), 0)
                if total > seen:
                    counter.labels(provider).inc(total - seen)
                    self._quota_seen[(name, provider)] = total

    def render(self, snapshot: Snapshot) -> bytes:
        """Prometheus text exposition with the given snapshot."""
        self._snapshot.snapshot = snapshot
        return generate_latest(self.registry)
