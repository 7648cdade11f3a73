"""Full syncs bound by their own Gmail quota are committed in chunks and free their worker.

A per-user budget of 3,000 units per 6 s (burst 100) admits about 24 messages.get a second
(20 units each under the 2026 costs): a 240-message mailbox needs about 10 s of quota. With
one low-tier worker and a 1 s wait budget per run, it must not keep new small mailboxes
waiting: each run commits what it fetched and gives the worker back.
"""

from __future__ import annotations

import time
from typing import Any

import asyncpg

from daemon.store.mailboxes import MailboxStore
from daemon.store.records import ts
from tests.daemon.harness import (
    MockServer,
    assert_store_matches_mock,
    daemon_settings,
    register,
    running,
    wait_until,
)

_QUOTA = {"gmail.user": {"limit": 3000, "period_s": 6, "burst": 100}}


async def _populate(mock: MockServer, n: int, size: int, seed: int, domain: str) -> Any:
    return await mock.call(
        "POST",
        "/_mock/populate",
        {"gmail": n, "seed": seed, "domain": domain, "size": {"dist": "constant", "value": size}},
    )


async def test_a_quota_bound_full_sync_is_chunked_and_frees_its_worker(
    db: asyncpg.Pool, mock_server: MockServer, pg_dsn: str, redis_url: str, redis_prefix: str
) -> None:
    mock = mock_server
    # The mock admits everything: only the daemon's own gate paces the calls.
    await mock.reset({"quotas": {"scale": 100}})
    big = await _populate(mock, 2, 240, 41, "big.example.com")
    small = await _populate(mock, 3, 5, 42, "small.example.com")
    store = MailboxStore(db)
    tenant = await store.create_tenant("t")
    now = time.time()
    # The big ones are due first, so the scheduler queues them ahead of the small ones.
    big_ids = await register(store, tenant["id"], big, now - 60)
    small_ids = [i for i in await register(store, tenant["id"], small, now) if i not in big_ids]
    # A stored message the provider no longer has: the last chunk must remove it, and
    # nothing that an earlier chunk stored.
    await db.execute(
        "INSERT INTO messages (mailbox_id, provider_id, folder) VALUES ($1, 'ghost', '')",
        big_ids[0],
    )
    await db.execute("UPDATE mailboxes SET message_count = 1 WHERE id = $1", big_ids[0])
    settings = daemon_settings(
        pg_dsn,
        redis_url,
        redis_prefix,
        mock.url,
        policy={
            "quota_preset": "documented-2026",
            "quotas": _QUOTA,
            "quota_margin": 1.0,
            "full_sync_quota_wait_s": 1.0,
            "concurrency": {"high": 1, "normal": 1, "low": 1},
        },
    )
    async with running(settings):

        async def all_synced() -> bool:
            n = await db.fetchval(
                "SELECT count(*) FROM mailboxes WHERE last_success_at IS NOT NULL"
                " AND state = 'idle'"
            )
            return bool(n == 5)

        await wait_until(all_synced, 60, "every mailbox's first sync")
    finished = {
        r["id"]: r["last_success_at"]
        for r in await db.fetch("SELECT id, last_success_at FROM mailboxes")
    }
    # The small mailboxes did not wait for the big ones' quota.
    assert max(finished[i] for i in small_ids) < min(finished[i] for i in big_ids)
    runs = await db.fetch(
        "SELECT mailbox_id, partial, added, deleted, error, started_at, finished_at"
        " FROM sync_runs ORDER BY id"
    )
    assert [r["error"] for r in runs if r["error"]] == []
    for mid in big_ids:
        mine = [r for r in runs if r["mailbox_id"] == mid]
        # Several chunks, each holding its worker about the 1 s budget, then one last run.
        assert len(mine) >= 4 and all(r["partial"] for r in mine[:-1])
        assert not mine[-1]["partial"]
        assert all((r["finished_at"] - r["started_at"]).total_seconds() < 3 for r in mine)
        # Every message stored once: the chunks' additions sum to the mailbox.
        assert sum(r["added"] for r in mine) == 240
    ghost_runs = [r for r in runs if r["mailbox_id"] == big_ids[0]]
    assert sum(r["deleted"] for r in ghost_runs) == 1 and ghost_runs[-1]["deleted"] == 1
    assert all(len(r) == 1 for r in [[r for r in runs if r["mailbox_id"] == i] for i in small_ids])
    assert await assert_store_matches_mock(db, mock.messages) == 2 * 240 + 3 * 5
    cursors = await db.fetch("SELECT cursor FROM mailboxes")
    assert all(set(c["cursor"]) == {"history_id"} for c in cursors)
    assert await db.fetchval("SELECT count(*) FROM full_sync_seen") == 0


async def test_an_unreadable_resume_position_starts_the_full_sync_over(
    db: asyncpg.Pool, mock_server: MockServer, pg_dsn: str, redis_url: str, redis_prefix: str
) -> None:
    mock = mock_server
    await mock.reset({"quotas": {"scale": 100}})
    creds = await _populate(mock, 1, 30, 43, "example.com")
    store = MailboxStore(db)
    tenant = await store.create_tenant("t")
    [mid] = await register(store, tenant["id"], creds, time.time())
    await db.execute(
        "UPDATE mailboxes SET cursor = $2 WHERE id = $1", mid, {"full_sync": {"pending": 7}}
    )
    start = time.time()
    settings = daemon_settings(pg_dsn, redis_url, redis_prefix, mock.url)
    async with running(settings):

        async def synced() -> bool:
            got = await db.fetchval(
                "SELECT count(*) FROM mailboxes WHERE last_success_at > $1", ts(start)
            )
            return bool(got)

        await wait_until(synced, 30, "the sync")
    assert await assert_store_matches_mock(db, mock.messages) == 30
    # Started over from the first page (under the default 2026 quota, in chunks of 5 gets).
    runs = await db.fetch(
        "SELECT kind, partial, added, error FROM sync_runs WHERE mailbox_id = $1 ORDER BY id", mid
    )
    assert {(r["kind"], r["error"]) for r in runs} == {("full", None)}
    assert [r["partial"] for r in runs] == [True] * (len(runs) - 1) + [False]
    assert sum(r["added"] for r in runs) == 30
    cursor = await db.fetchval("SELECT cursor FROM mailboxes WHERE id = $1", mid)
    assert set(cursor) == {"history_id"}
