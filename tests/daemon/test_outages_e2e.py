"""Infrastructure faults against real PostgreSQL and Redis: a database that refuses work
(read-only, connection limit), an outage longer than a job's retries, Redis gone mid-sync.

The outages are made with a TCP proxy in front of the shared servers (tests/daemon/
tcp_proxy.py), so only the daemon under test sees them; the faults that PostgreSQL itself
produces (read-only transactions, a role's connection limit) are set on a role of this run.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
from structlog.testing import capture_logs

from daemon.store.records import ts
from tests.conftest import PG_ADMIN
from tests.daemon.harness import (
    MockServer,
    assert_store_matches_mock,
    daemon_settings,
    running,
    seed,
    synced_since,
    wait_until,
)
from tests.daemon.tcp_proxy import proxied

FAST = {"policy": {"quota_scale": 10, "sync_interval_s": 2}}


async def succeeded_since(db: asyncpg.Pool, since: float, n: int) -> bool:
    """Whether ``n`` mailboxes finished a successful sync after ``since`` (in any state now:
    with a 2 s interval they are soon queued again)."""
    got = await db.fetchval("SELECT count(*) FROM mailboxes WHERE last_success_at > $1", ts(since))
    return bool(got == n)


async def slow_provider(mock: MockServer, ms: float) -> None:
    """Every provider call takes ``ms`` from now on, so syncs are in flight when a store
    goes away."""
    patch = {"quotas": {"scale": 10}, "latency": {"dist": "constant", "mean_ms": ms}}
    await mock.call("PUT", "/_mock/config", patch)


@pytest.fixture
async def role_dsn(pg_dsn: str, run_id: str) -> AsyncIterator[tuple[str, str]]:
    """A login role of this run with every right on the run's database: (role, its DSN)."""
    role = f"mailsync_role_{run_id}"
    admin = await asyncpg.connect(pg_dsn)
    try:
        await admin.execute(f'CREATE ROLE "{role}" LOGIN')
        await admin.execute(f'GRANT ALL ON ALL TABLES IN SCHEMA public TO "{role}"')
        await admin.execute(f'GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO "{role}"')
    finally:
        await admin.close()
    yield role, pg_dsn.replace("://postgres@", f"://{role}@", 1)
    admin = await asyncpg.connect(pg_dsn)
    try:
        await _terminate(admin, role)
        await admin.execute(f'DROP OWNED BY "{role}"')
        await admin.execute(f'DROP ROLE "{role}"')
    finally:
        await admin.close()


async def _terminate(admin: asyncpg.Connection, role: str) -> None:
    await admin.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", role
    )


async def _healthz(port: int) -> tuple[int, Any]:
    async with httpx.AsyncClient(timeout=5) as client:
        r = await client.get(f"http://127.0.0.1:{port}/healthz")
    return r.status_code, r.json()


@pytest.mark.parametrize(
    ("fault", "undo"),
    [
        ("SET default_transaction_read_only = on", "RESET default_transaction_read_only"),
        ("CONNECTION LIMIT 0", "CONNECTION LIMIT -1"),
    ],
    ids=["read-only", "connection-limit"],
)
async def test_scheduler_survives_database_refusing_work(
    db: asyncpg.Pool,
    mock_server: MockServer,
    role_dsn: tuple[str, str],
    redis_url: str,
    redis_prefix: str,
    fault: str,
    undo: str,
) -> None:
    role, dsn = role_dsn
    mock = mock_server
    await mock.reset({"quotas": {"scale": 10}})
    _, start, _ = await seed(db, mock, gmail=2, graph=2, seed=41)
    settings = daemon_settings(
        dsn, redis_url, redis_prefix, mock.url, task_unhealthy_after_s=2, **FAST
    )
    admin = await asyncpg.connect(PG_ADMIN)
    try:
        async with running(settings) as daemon:
            await wait_until(lambda: synced_since(db, start, 4), 60, "first syncs")
            await admin.execute(f'ALTER ROLE "{role}" {fault}')
            await _terminate(admin, role)
            # What a failover or a role limit gives: ~6 s of errors that are not a lost
            # connection. The scheduler must log them, back off and be reported unhealthy.
            await asyncio.sleep(6)
            assert any(u.startswith("scheduler: failing") for u in daemon.unhealthy())
            status, body = await _healthz(settings.api_port)
            assert status == 503, body
            await admin.execute(f'ALTER ROLE "{role}" {undo}')
            await _terminate(admin, role)
            back = time.time()
            await wait_until(lambda: succeeded_since(db, back, 4), 60, "syncs after the fault")

            async def healthy() -> bool:
                return daemon.unhealthy() == []

            # Each loop clears itself at its next step: within the backoff's cap (10 s).
            await wait_until(healthy, 15, "every loop to recover")
            assert (await _healthz(settings.api_port))[0] == 200
    finally:
        await admin.execute(f'ALTER ROLE "{role}" {undo}')
        await admin.close()


async def test_outage_longer_than_job_retries_strands_no_run(
    db: asyncpg.Pool, mock_server: MockServer, pg_dsn: str, redis_url: str, redis_prefix: str
) -> None:
    mock = mock_server
    await mock.reset({"quotas": {"scale": 10}})
    creds, start, _ = await seed(db, mock, gmail=3, graph=3, seed=42)
    async with proxied(pg_dsn) as proxy:
        settings = daemon_settings(
            proxy.url(pg_dsn),
            redis_url,
            redis_prefix,
            mock.url,
            infra_attempts=2,
            infra_backoff_s=0.3,
            max_run_s=3600,
            **FAST,
        )
        with capture_logs() as logs:
            async with running(settings) as daemon:
                await wait_until(lambda: synced_since(db, start, 6), 60, "first syncs")
                await slow_provider(mock, 300)

                async def some_running() -> bool:
                    n = await db.fetchval("SELECT count(*) FROM mailboxes WHERE state = 'running'")
                    return bool(n >= 2)

                await wait_until(some_running, 30, "syncs in flight")
                await proxy.cut()
                for c in creds:
                    await mock.call(
                        "POST", f"/_mock/mailboxes/{c['address']}/deliver", {"count": 3}
                    )

                async def jobs_gave_up() -> bool:
                    assert daemon.queues is not None
                    counts = await daemon.queues.counts()
                    return sum(c["failed"] for c in counts.values()) >= 2

                # Longer than every attempt of the jobs that were running.
                await wait_until(jobs_gave_up, 30, "jobs to exhaust their attempts")
                stranded = await db.fetchval(
                    "SELECT count(*) FROM mailboxes WHERE state = 'running'"
                )
                assert stranded >= 2
                await proxy.restore()
                back = time.time()
                # Released as soon as the database answers: within a few repair cycles,
                # not after max_run_s (an hour).
                await wait_until(lambda: succeeded_since(db, back, 6), 30, "stranded runs resynced")
    assert any(e["event"] == "job attempt failed" and e["gave_up"] for e in logs)
    assert any(e["event"] == "released runs whose job gave up" for e in logs)
    await assert_store_matches_mock(db, mock.messages)
    dupes = await db.fetchval(
        "SELECT count(*) FROM (SELECT 1 FROM messages GROUP BY mailbox_id, provider_id "
        "HAVING count(*) > 1) d"
    )
    assert dupes == 0


async def test_redis_gone_mid_sync_is_no_provider_failure(
    db: asyncpg.Pool, mock_server: MockServer, pg_dsn: str, redis_url: str, redis_prefix: str
) -> None:
    mock = mock_server
    await mock.reset({"quotas": {"scale": 10}})
    creds, start, _ = await seed(db, mock, gmail=3, graph=3, seed=43)
    async with proxied(redis_url) as proxy:
        settings = daemon_settings(pg_dsn, proxy.url(redis_url), redis_prefix, mock.url, **FAST)
        async with running(settings):
            await wait_until(lambda: synced_since(db, start, 6), 60, "first syncs")
            await slow_provider(mock, 300)
            for c in creds:
                await mock.call("POST", f"/_mock/mailboxes/{c['address']}/deliver", {"count": 2})

            async def some_running() -> bool:
                n = await db.fetchval("SELECT count(*) FROM mailboxes WHERE state = 'running'")
                return bool(n >= 2)

            await wait_until(some_running, 30, "syncs in flight")
            cut_at = time.time()
            await proxy.cut()
            await asyncio.sleep(3)
            await proxy.restore()
            await wait_until(lambda: succeeded_since(db, cut_at + 3, 6), 60, "syncs after Redis")
    failed = await db.fetch(
        "SELECT error_kind, error FROM sync_runs WHERE error IS NOT NULL AND finished_at > $1",
        ts(cut_at),
    )
    assert [dict(r) for r in failed] == []
    assert await db.fetchval("SELECT max(failure_count) FROM mailboxes") == 0
    await assert_store_matches_mock(db, mock.messages)


async def test_trim_keeps_up_with_what_is_written(
    db: asyncpg.Pool, mock_server: MockServer, pg_dsn: str, redis_url: str, redis_prefix: str
) -> None:
    mock = mock_server
    await mock.reset({"quotas": {"scale": 10}})
    _, start, ids = await seed(db, mock, gmail=2, graph=2, seed=44)
    # 120,000 expired records: more than the old trim removed in a day of cycles' worth.
    await db.execute(
        """INSERT INTO sync_runs (mailbox_id, run_seq, kind, tier, worker, started_at,
                                  finished_at)
           SELECT $1, g, 'incremental', 'high', 'old', now() - interval '10 days',
                  now() - interval '10 days'
           FROM generate_series(1, 120000) g""",
        ids[0],
    )
    settings = daemon_settings(pg_dsn, redis_url, redis_prefix, mock.url, trim_interval_s=1, **FAST)
    async with running(settings):
        await wait_until(lambda: synced_since(db, start, 4), 60, "first syncs")

        async def trimmed() -> bool:
            n = await db.fetchval("SELECT count(*) FROM sync_runs WHERE worker = 'old'")
            return bool(n == 0)

        await wait_until(trimmed, 20, "expired run records to be trimmed")
        kept = await db.fetchval("SELECT count(*) FROM sync_runs")
        assert kept >= 4  # the fresh records of the syncs stay
