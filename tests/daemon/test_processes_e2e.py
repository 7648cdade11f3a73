"""Several real daemon processes: shared work, kill -9, Redis and PostgreSQL restarts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from daemon.queues import TierQueues
from daemon.store.db import create_pool, migrate
from daemon.store.mailboxes import MailboxStore
from daemon.store.records import ts
from tests.daemon.harness import assert_store_matches_mock, register, wait_until
from tests.daemon.procs import (
    DaemonProcess,
    MockProcess,
    PrivatePostgres,
    PrivateRedis,
    daemon_env,
)


@pytest.fixture
async def mock() -> AsyncIterator[tuple[MockProcess, httpx.AsyncClient]]:
    """The mock in its own process, with a control client."""
    proc = MockProcess(seed=40)
    async with httpx.AsyncClient(base_url=proc.url, timeout=30) as ctl:
        yield proc, ctl
    proc.stop()


async def _setup(
    ctl: httpx.AsyncClient,
    db: asyncpg.Pool,
    gmail: int,
    graph: int,
    seed: int,
    latency_ms: float,
    interval_s: int,
    median: float = 15,
) -> list[int]:
    r = await ctl.put(
        "/_mock/config",
        json={"quotas": {"scale": 10}, "latency": {"dist": "constant", "mean_ms": latency_ms}},
    )
    assert r.status_code == 200, r.text
    r = await ctl.post(
        "/_mock/populate",
        json={
            "gmail": gmail,
            "graph": graph,
            "seed": seed,
            "size": {"dist": "lognormal", "median": median, "sigma": 0.6, "max": 4 * median},
        },
    )
    assert r.status_code == 200, r.text
    store = MailboxStore(db)
    tenant = await store.create_tenant(f"t{seed}", sync_interval_s=interval_s)
    return await register(store, tenant["id"], r.json(), time.time())


async def _check_store_matches_mock(db: asyncpg.Pool, ctl: httpx.AsyncClient) -> None:
    async def listing(address: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = (await ctl.get(f"/_mock/mailboxes/{address}/messages")).json()[
            "messages"
        ]
        return out

    await assert_store_matches_mock(db, listing)


async def _no_overlapping_runs(db: asyncpg.Pool) -> None:
    rows = await db.fetch(
        "SELECT mailbox_id, started_at, finished_at, worker FROM sync_runs "
        "ORDER BY mailbox_id, started_at"
    )
    prev: dict[int, Any] = {}
    for r in rows:
        p = prev.get(r["mailbox_id"])
        if p is not None:
            assert r["started_at"] >= p["finished_at"], (dict(p), dict(r))
        prev[r["mailbox_id"]] = r


async def _count(db: asyncpg.Pool, sql: str, *args: Any) -> int:
    return int(await db.fetchval(sql, *args))


async def test_two_processes_share_the_work_without_running_a_mailbox_twice(
    db: asyncpg.Pool,
    pg_dsn: str,
    redis_url: str,
    redis_prefix: str,
    mock: tuple[MockProcess, httpx.AsyncClient],
) -> None:
    proc, ctl = mock
    # Every 4 s: a Graph sync reads all six folders and their list (7 requests), and the
    # daemons must keep up for the queues to be empty when they stop.
    await _setup(ctl, db, 40, 40, seed=41, latency_ms=20, interval_s=4)
    daemons = [
        DaemonProcess(daemon_env(pg_dsn, redis_url, redis_prefix, proc.url, f"p{i}"))
        for i in (1, 2)
    ]
    try:
        await wait_until(
            lambda: _count_ge(db, "SELECT count(*) FROM sync_runs", 240),
            90,
            "three rounds of syncs",
        )
        codes = [d.stop() for d in daemons]
        assert codes == [0, 0], [d.output()[-2000:] for d in daemons]
    finally:
        for d in daemons:
            d.cleanup()
    workers = dict(await db.fetch("SELECT worker, count(*) FROM sync_runs GROUP BY worker"))
    assert set(workers) == {"p1", "p2"} and min(workers.values()) > 40
    await _no_overlapping_runs(db)
    assert await _count(db, "SELECT count(*) FROM sync_runs WHERE error IS NOT NULL") == 0
    # A clean stop leaves no mailbox running and no job active. On a loaded machine the
    # daemons may fall behind a 4 s interval: a mailbox still queued then has its job
    # waiting in Redis for the next start, which is a consistent state, not a lost one.
    assert await _count(db, "SELECT count(*) FROM mailboxes WHERE state = 'running'") == 0
    queued = await _count(db, "SELECT count(*) FROM mailboxes WHERE state = 'queued'")
    queues = TierQueues(redis_url, redis_prefix, 0, 0)
    try:
        counts = await queues.counts()
    finally:
        await queues.close()
    assert sum(c["active"] for c in counts.values()) == 0, counts
    assert queued == sum(c["waiting"] + c["delayed"] for c in counts.values()), counts
    await _check_store_matches_mock(db, ctl)


async def _count_ge(db: asyncpg.Pool, sql: str, n: int) -> bool:
    return await _count(db, sql) >= n


async def test_kill_9_loses_no_job_and_duplicates_nothing(
    db: asyncpg.Pool,
    pg_dsn: str,
    redis_url: str,
    redis_prefix: str,
    mock: tuple[MockProcess, httpx.AsyncClient],
) -> None:
    """Default lock settings: a killed process's jobs are re-run within 60 s."""
    proc, ctl = mock
    ids = await _setup(ctl, db, 30, 30, seed=42, latency_ms=300, interval_s=3600, median=60)
    env = {"MAILSYNC_LOCK_DURATION_S": "30", "MAILSYNC_STALLED_INTERVAL_S": "15"}
    victim = DaemonProcess(daemon_env(pg_dsn, redis_url, redis_prefix, proc.url, "victim", **env))
    survivor = DaemonProcess(
        daemon_env(pg_dsn, redis_url, redis_prefix, proc.url, "survivor", **env)
    )
    try:
        await wait_until(
            lambda: _count_ge(db, "SELECT count(*) FROM mailboxes WHERE state = 'running'", 12),
            60,
            "syncs in flight on both processes",
        )
        running = [
            r["id"] for r in await db.fetch("SELECT id FROM mailboxes WHERE state = 'running'")
        ]
        killed_at = time.time()
        victim.kill9()
        await wait_until(
            lambda: _count_ge(
                db,
                "SELECT count(*) FROM mailboxes WHERE last_success_at IS NOT NULL "
                "AND state = 'idle'",
                len(ids),
            ),
            90,
            "every mailbox to sync",
        )
        last = await db.fetchval(
            "SELECT max(finished_at) FROM sync_runs WHERE mailbox_id = ANY($1)", running
        )
        recovered_s = last.timestamp() - killed_at
        assert recovered_s < 60, recovered_s
        assert survivor.stop() == 0
    finally:
        victim.cleanup()
        survivor.cleanup()
    # Exactly one completed sync per mailbox (besides the chunks a full sync stopped for
    # quota commits): the killed runs left nothing behind.
    per_mailbox = await db.fetch(
        "SELECT mailbox_id, count(*) AS n FROM sync_runs WHERE NOT partial GROUP BY mailbox_id"
    )
    assert len(per_mailbox) == len(ids) and {r["n"] for r in per_mailbox} == {1}
    by_worker = dict(await db.fetch("SELECT worker, count(*) FROM sync_runs GROUP BY worker"))
    assert by_worker.get("survivor", 0) > 0
    await _no_overlapping_runs(db)
    await _check_store_matches_mock(db, ctl)
    print(f"kill -9: jobs of the killed process finished {recovered_s:.1f} s after the kill")


@pytest.fixture
async def private_redis() -> AsyncIterator[PrivateRedis]:
    """A Redis of this test's own, which it may restart."""
    server = PrivateRedis()
    yield server
    server.cleanup()


async def test_redis_restart_under_load_is_survived(
    db: asyncpg.Pool,
    pg_dsn: str,
    private_redis: PrivateRedis,
    mock: tuple[MockProcess, httpx.AsyncClient],
) -> None:
    proc, ctl = mock
    ids = await _setup(ctl, db, 30, 30, seed=43, latency_ms=50, interval_s=2)
    env = {"MAILSYNC_REQUEUE_AFTER_S": "5", "MAILSYNC_POLICY__RETRY__BASE_S": "1"}
    daemons = [
        DaemonProcess(daemon_env(pg_dsn, private_redis.url, "mailsync", proc.url, f"r{i}", **env))
        for i in (1, 2)
    ]
    try:
        start = time.time()
        await wait_until(lambda: _all_synced_after(db, start, len(ids)), 60, "the first round")
        private_redis.stop()
        await asyncio.sleep(2)
        private_redis.start()
        back = time.time()
        await wait_until(
            lambda: _all_synced_after(db, back, len(ids)),
            90,
            "every mailbox to sync after Redis came back",
        )
        assert all(d.proc.poll() is None for d in daemons), [d.output()[-2000:] for d in daemons]
        codes = [d.stop() for d in daemons]
        assert codes == [0, 0]
    finally:
        for d in daemons:
            d.cleanup()
    await _no_overlapping_runs(db)
    await _check_store_matches_mock(db, ctl)


async def _all_synced_after(db: asyncpg.Pool, t: float, n: int) -> bool:
    got = await _count(db, "SELECT count(*) FROM mailboxes WHERE last_success_at > $1", ts(t))
    return got >= n


async def test_postgres_restart_under_load_is_survived(
    redis_url: str,
    redis_prefix: str,
    mock: tuple[MockProcess, httpx.AsyncClient],
) -> None:
    proc, ctl = mock
    pg = PrivatePostgres()
    dsn = pg.dsn.rsplit("/", 1)[0] + "/mailsync"
    admin = await asyncpg.connect(pg.dsn)
    await admin.execute("CREATE DATABASE mailsync")
    await admin.close()
    await asyncio.to_thread(migrate, dsn)
    db = await create_pool(dsn, 1, 5)
    env = {"MAILSYNC_POLICY__RETRY__BASE_S": "1"}
    daemons: list[DaemonProcess] = []
    try:
        ids = await _setup(ctl, db, 30, 30, seed=44, latency_ms=50, interval_s=2)
        daemons = [
            DaemonProcess(daemon_env(dsn, redis_url, redis_prefix, proc.url, f"g{i}", **env))
            for i in (1, 2)
        ]
        start = time.time()
        await wait_until(lambda: _all_synced_after(db, start, len(ids)), 60, "the first round")
        await asyncio.to_thread(pg.restart)
        back = time.time()
        await db.expire_connections()

        async def resynced() -> bool:
            try:
                return await _all_synced_after(db, back, len(ids))
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                return False

        await wait_until(resynced, 90, "every mailbox to sync after PostgreSQL came back")
        assert all(d.proc.poll() is None for d in daemons), [d.output()[-2000:] for d in daemons]
        assert [d.stop() for d in daemons] == [0, 0]
        await _no_overlapping_runs(db)
        await _check_store_matches_mock(db, ctl)
    finally:
        for d in daemons:
            d.cleanup()
        await db.close()
        pg.stop()
