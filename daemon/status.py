"""Cluster-wide status figures: queues from Redis, throughput and errors from sync_runs."""

from __future__ import annotations

from typing import Any

import asyncpg
import redis.asyncio as aioredis

from daemon.metrics import FRESHNESS_BUCKETS, Snapshot
from daemon.queues import TierQueues
from daemon.store.records import ts

_RUNS = """
SELECT
  count(*) FILTER (WHERE finished_at > $1::timestamptz - interval '1 minute')  AS n1,
  count(*) FILTER (WHERE finished_at > $1::timestamptz - interval '5 minutes') AS n5,
  count(*)                                                         AS n15,
  count(*) FILTER (WHERE error_kind IS NOT NULL)                   AS failed15
FROM sync_runs WHERE finished_at > $1::timestamptz - interval '15 minutes' AND NOT partial
"""

_DURATIONS = """
SELECT kind, count(*) AS n,
       avg(extract(epoch FROM finished_at - started_at)) AS mean_s,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - started_at))
         AS p95_s
FROM sync_runs
WHERE finished_at > $1::timestamptz - interval '15 minutes' AND error_kind IS NULL
  AND NOT partial
GROUP BY kind
"""


def _freshness_sql() -> str:
    cols = ",\n".join(
        f"count(*) FILTER (WHERE $1::timestamptz - last_success_at"
        f" <= interval '{int(b)} seconds') AS b{i}"
        for i, b in enumerate(FRESHNESS_BUCKETS)
    )
    return f"""
SELECT count(*) FILTER (WHERE last_success_at IS NULL) AS never,
       count(last_success_at) AS synced,
       coalesce(sum(extract(epoch FROM $1::timestamptz - last_success_at)), 0) AS total_age,
       {cols}
FROM mailboxes WHERE status = 'active'
"""


_FRESHNESS = _freshness_sql()


def pool_figures(pool: asyncpg.Pool) -> tuple[int, int, int]:
    """(in use, size, waiting) of an asyncpg pool."""
    size = pool.get_size()
    idle = pool.get_idle_size()
    # asyncpg exposes no waiter count; acquirers wait on the pool's internal queue.
    queue = getattr(pool, "_queue", None)
    waiting = len(getattr(queue, "_getters", ()) or ())
    return size - idle, size, waiting


async def snapshot(
    pool: asyncpg.Pool, queues: TierQueues, redis_client: aioredis.Redis, now: float
) -> Snapshot:
    """Everything the status endpoint and the metrics scrape report."""
    t = ts(now)
    runs = await pool.fetchrow(_RUNS, t)
    fresh = await pool.fetchrow(_FRESHNESS, t)
    by_status = await pool.fetch("SELECT status, count(*) AS n FROM mailboxes GROUP BY status")
    counts = await queues.counts()
    mem = await redis_client.info("memory")
    in_use, size, waiting = pool_figures(pool)
    n15 = runs["n15"] or 0
    return Snapshot(
        queues=counts,
        freshness_buckets=[(b, fresh[f"b{i}"]) for i, b in enumerate(FRESHNESS_BUCKETS)],
        freshness_count=fresh["synced"],
        freshness_sum=float(fresh["total_age"]),
        never_synced=fresh["never"],
        mailboxes_by_status={r["status"]: r["n"] for r in by_status},
        throughput_per_min={"1m": float(runs["n1"]), "5m": runs["n5"] / 5.0, "15m": n15 / 15.0},
        error_rate_15m=(runs["failed15"] / n15) if n15 else 0.0,
        db_pool_in_use=in_use,
        db_pool_size=size,
        db_pool_waiting=waiting,
        redis_used_memory=int(mem.get("used_memory", 0)),
    )


async def status_report(
    pool: asyncpg.Pool, queues: TierQueues, redis_client: aioredis.Redis, now: float
) -> dict[str, Any]:
    """The body of ``GET /email-sync/status``."""
    snap = await snapshot(pool, queues, redis_client, now)
    rows = await pool.fetch(_DURATIONS, ts(now))
    durations = {
        r["kind"]: {
            "count": r["n"],
            "mean_s": round(float(r["mean_s"]), 4),
            "p95_s": round(float(r["p95_s"]), 4),
        }
        for r in rows
    }
    return {
        "queues": snap.queues,
        "throughput_per_min": snap.throughput_per_min,
        "sync_duration": durations,
        "error_rate_15m": round(snap.error_rate_15m, 5),
        "mailboxes": {"by_status": snap.mailboxes_by_status, "never_synced": snap.never_synced},
        "db_pool": {
            "in_use": snap.db_pool_in_use,
            "size": snap.db_pool_size,
            "waiting": snap.db_pool_waiting,
        },
        "redis": {"used_memory_bytes": snap.redis_used_memory},
    }
