"""Memory of one queued job, one kept job and one quota bucket key in Redis, and of one row of
each PostgreSQL table, measured against the real services on 127.0.0.1 (print, not assert).

The per-item byte constants of ``simulator/model/resources.py`` (Redis and PostgreSQL memory) come
from this script:

    .venv/bin/python benchmarks/store_memory.py [--jobs 2000] [--dsn postgresql://...]

Redis: jobs are enqueued through ``daemon.queues.TierQueues`` under a unique prefix, then
completed by ``daemon.queues.TierWorkers`` with a result like ``SyncResult.as_dict``; quota
buckets are reserved through ``daemon.ratelimit.QuotaLimiters`` for distinct accounts. The
figure is the growth of ``used_memory`` per item (hash, sorted-set entries and key overhead),
with ``MEMORY USAGE`` of one key beside it. Everything under the prefix is deleted at the end.
PostgreSQL: a scratch database with the daemon's migrations, rows inserted as the daemon
writes them, ``pg_total_relation_size`` (heap + indexes + TOAST) per row after VACUUM.
"""

from __future__ import annotations

import argparse
import asyncio
import uuid
from typing import Any

import asyncpg
import redis.asyncio as aioredis

from daemon import policy
from daemon.policy import SyncKind, Tier
from daemon.queues import TierQueues, TierWorkers
from daemon.ratelimit import QuotaLimiters, account_key
from daemon.store.db import migrate
from daemon.store.records import Claimed

REDIS_URL = "redis://127.0.0.1:6379/0"


async def _used(r: aioredis.Redis) -> int:
    info = await r.info("memory")
    return int(info["used_memory"])


async def redis_figures(n: int) -> dict[str, float]:
    prefix = f"memprobe-{uuid.uuid4().hex[:8]}"
    r = aioredis.from_url(REDIS_URL)
    out: dict[str, float] = {}
    queues = TierQueues(REDIS_URL, prefix, keep_completed=n, keep_failed=n)
    try:
        before = await _used(r)
        claimed = [Claimed(1_000_000 + i, 7, Tier.HIGH, SyncKind.INCREMENTAL) for i in range(n)]
        await queues.enqueue(claimed)
        out["queued_job_bytes"] = (await _used(r) - before) / n
        key = f"{prefix}:sync-high:{claimed[0].job_id}"
        out["queued_job_hash_memory_usage"] = float(await r.memory_usage(key) or 0)
        done = asyncio.Event()
        count = 0

        async def process(job: Any, token: str) -> Any:
            nonlocal count
            count += 1
            if count >= n:
                done.set()
            data = job.data
            return {
                "mailbox_id": data["mailbox_id"],
                "status": "ok",
                "kind": "incremental",
                "error_kind": None,
            }

        workers = TierWorkers(
            REDIS_URL, prefix, policy.get_profile("plan-b"), process, 30, 30, "probe"
        )
        await asyncio.wait_for(done.wait(), 120)
        await workers.close(10)
        await asyncio.sleep(0.5)
        out["completed_job_bytes"] = (await _used(r) - before) / n
        out["completed_job_hash_memory_usage"] = float(await r.memory_usage(key) or 0)
        # Quota buckets: one admission per account on every Gmail and Graph bucket.
        limiters = QuotaLimiters(REDIS_URL, prefix, policy.get_quota_preset("documented-2026"))
        before = await _used(r)
        for i in range(n):
            await limiters.admit("gmail", account_key("gmail", f"u{i}@example.com"), 1)
        per_user = [
            q for q in limiters.limits["gmail"].quotas if q.scope is policy.QuotaScope.MAILBOX
        ]
        out["quota_bytes_per_account"] = (await _used(r) - before) / n
        out["quota_buckets_per_gmail_account"] = float(len(per_user))
        keys = [k async for k in r.scan_iter(f"{prefix}:quota*", count=1000)]
        usages = [await r.memory_usage(k) or 0 for k in keys[:50]]
        out["quota_key_memory_usage"] = sum(usages) / max(1, len(usages))
        await limiters.aclose()
    finally:
        await queues.obliterate()
        await queues.close()
        keys = [k async for k in r.scan_iter(f"{prefix}:*", count=1000)]
        for i in range(0, len(keys), 500):
            await r.delete(*keys[i : i + 500])
        await r.aclose()
    return out


PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"

# Rows shaped as the daemon writes them: a Fernet token (~200 bytes), a cursor, a Gmail-like
# message (ids, a 60-character subject, a sender, one flag) and a sync run with its counters.
_FILL = """
INSERT INTO tenants (name) SELECT 't' || i FROM generate_series(1, $1) i;
INSERT INTO mailboxes (tenant_id, provider, address, credentials, cursor, tier, kind,
                       last_success_at, last_sync_at, message_count)
SELECT i, 'gmail', 'user' || i || '@example-company.com', decode(repeat('ab', 200), 'hex'),
       jsonb_build_object('history_id', '123456789' || i), 'high', 'incremental', now(), now(),
       $2
  FROM generate_series(1, $1) i;
INSERT INTO messages (mailbox_id, provider_id, thread_id, internet_message_id, subject, sender,
                      received_at, size, flags)
SELECT m, to_hex(1800000000000000 + m * 100000 + j), to_hex(1700000000000000 + j),
       '<' || md5(m::text || j::text) || '@mail.example.com>',
       left(repeat('Quarterly report and meeting notes ', 3), 60),
       'Sender Name <sender' || j % 50 || '@example.org>', now(), 20000 + j, '{SEEN}'
  FROM generate_series(1, $1) m, generate_series(1, $2) j;
INSERT INTO sync_runs (mailbox_id, run_seq, kind, tier, worker, queued_at, started_at,
                       finished_at, api_calls, added, changed)
SELECT 1 + i % $1, i, 'incremental', 'high', 'host-1:12345', now(), now(), now(), 3, 1, 0
  FROM generate_series(1, $3) i;
"""


async def postgres_figures(mailboxes: int, per_mailbox: int, runs: int) -> dict[str, float]:
    name = f"memprobe_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(PG_ADMIN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    dsn = PG_ADMIN.rpartition("/")[0] + "/" + name
    try:
        migrate(dsn)
        c = await asyncpg.connect(dsn)
        try:
            sql = _FILL.replace("$1", str(mailboxes)).replace("$2", str(per_mailbox))
            await c.execute(sql.replace("$3", str(runs)))
            await c.execute("VACUUM ANALYZE")
            out: dict[str, float] = {}
            for table, n in (
                ("mailboxes", mailboxes),
                ("messages", mailboxes * per_mailbox),
                ("sync_runs", runs),
            ):
                total = await c.fetchval(f"SELECT pg_total_relation_size('{table}')")
                row = await c.fetchval(f"SELECT avg(pg_column_size(t.*)) FROM {table} t")
                out[f"{table}_bytes_per_row"] = total / n
                out[f"{table}_tuple_bytes"] = float(row)
        finally:
            await c.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=2000)
    a = ap.parse_args()
    figures = asyncio.run(redis_figures(a.jobs))
    figures |= asyncio.run(postgres_figures(1000, 200, 100_000))
    for k, v in figures.items():
        print(f"{k:40s} {v:10.1f}")


if __name__ == "__main__":
    main()
