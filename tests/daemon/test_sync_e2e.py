"""End to end: the real daemon (scheduler, bullmq workers, PostgreSQL) against the mock."""

from __future__ import annotations

import asyncio
import time

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

H = 3600.0


async def _stored_ids(db: asyncpg.Pool, mailbox_id: int) -> list[str]:
    rows = await db.fetch("SELECT provider_id FROM messages WHERE mailbox_id = $1", mailbox_id)
    return [r["provider_id"] for r in rows]


async def _is_read(db: asyncpg.Pool, mailbox_id: int, provider_id: str) -> bool:
    row = await db.fetchrow(
        "SELECT m.flags, b.provider FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id "
        "WHERE m.mailbox_id = $1 AND m.provider_id = $2",
        mailbox_id,
        provider_id,
    )
    # Gmail marks unread with a label; Graph's isRead maps to \\Seen.
    if row["provider"] == "gmail":
        return "UNREAD" not in row["flags"]
    return "\\Seen" in row["flags"]


async def test_200_mailboxes_sync_once_then_incrementally(
    db: asyncpg.Pool, mock_server: MockServer, pg_dsn: str, redis_url: str, redis_prefix: str
) -> None:
    mock = mock_server
    # Quotas ten times the documented ones on both sides: this test is about correctness;
    # tests/daemon/test_quota_e2e.py holds the daemon to real quota arithmetic.
    await mock.reset({"quotas": {"scale": 10}})
    creds = await mock.populate(gmail=100, graph=100, seed=5)
    store = MailboxStore(db)
    tenant = await store.create_tenant("e2e")
    now = time.time()
    ids = await register(store, tenant["id"], creds, now)
    # Mixed tiers: never synced (low), 1 h (high), 10 h (normal), 60 h (low) ago.
    ages = [None, 1 * H, 10 * H, 60 * H]
    for i, mid in enumerate(ids):
        age = ages[i % 4]
        await db.execute(
            "UPDATE mailboxes SET last_success_at = $2 WHERE id = $1",
            mid,
            None if age is None else ts(now - age),
        )
    settings = daemon_settings(
        pg_dsn, redis_url, redis_prefix, mock.url, policy={"quota_scale": 10}
    )
    async with running(settings) as daemon:

        async def all_synced() -> bool:
            n = await db.fetchval(
                "SELECT count(*) FROM mailboxes WHERE last_success_at > $1 AND state = 'idle'",
                ts(now),
            )
            return bool(n == 200)

        t0 = time.monotonic()
        await wait_until(all_synced, 120, "200 mailboxes to reach synced state")
        print(f"initial sync of 200 mailboxes: {time.monotonic() - t0:.1f} s")
        # One completed sync each (Gmail full syncs also commit chunks when the per-user
        # quota makes them wait: partial runs).
        tiers = dict(
            await db.fetch("SELECT tier, count(*) FROM sync_runs WHERE NOT partial GROUP BY tier")
        )
        assert tiers == {"high": 50, "normal": 50, "low": 100}
        assert await db.fetchval("SELECT count(*) FROM sync_runs WHERE kind <> 'full'") == 0
        assert await db.fetchval("SELECT count(*) FROM sync_runs WHERE error IS NOT NULL") == 0
        assert await assert_store_matches_mock(db, mock.messages) > 2000
        rows = await db.fetch("SELECT id, address, provider FROM mailboxes")

        # New mail, flag changes and deletions; the next sync fetches only those.
        changed = [r for r in rows if int(r["id"]) % 10 == 0]
        assert {r["provider"] for r in changed} == {"gmail", "graph"}
        flagged: dict[int, int] = {}
        for r in changed:
            addr = r["address"]
            old = sorted(await _stored_ids(db, r["id"]))
            await mock.call("POST", f"/_mock/mailboxes/{addr}/deliver", {"count": 3})
            reply = await mock.call(
                "POST",
                f"/_mock/mailboxes/{addr}/flags",
                {"ids": [old[1]], "read": not await _is_read(db, r["id"], old[1])},
            )
            flagged[r["id"]] = reply["count"]
            await mock.call("POST", f"/_mock/mailboxes/{addr}/delete", {"ids": [old[0]]})
        await mock.call("POST", "/_mock/stats/reset")
        before = time.time()
        assert daemon.scheduler is not None
        for r in changed:
            await daemon.scheduler.sync_now(r["id"])

        async def changed_synced() -> bool:
            n = await db.fetchval(
                "SELECT count(*) FROM mailboxes WHERE id = ANY($1) AND last_success_at > $2 "
                "AND state = 'idle'",
                [r["id"] for r in changed],
                ts(before),
            )
            return bool(n == len(changed))

        await wait_until(changed_synced, 60, "the changed mailboxes to sync again")
        runs = await db.fetch(
            "SELECT DISTINCT ON (mailbox_id) mailbox_id, kind, tier, added, deleted, changed "
            "FROM sync_runs WHERE mailbox_id = ANY($1) ORDER BY mailbox_id, id DESC",
            [r["id"] for r in changed],
        )
        assert {r["kind"] for r in runs} == {"incremental"}
        assert {r["tier"] for r in runs} == {"high"}
        for run in runs:
            assert (run["added"], run["changed"], run["deleted"]) == (
                3,
                flagged[run["mailbox_id"]],
                1,
            )
        assert sum(flagged.values()) == len(changed)
        await assert_store_matches_mock(db, mock.messages)
        stats = await mock.stats()
        calls = stats["calls"]
        n_gmail = sum(1 for r in changed if r["provider"] == "gmail")
        n_graph = len(changed) - n_gmail
        # Only changes were fetched: no message listing, one history page per Gmail mailbox,
        # the three new messages' metadata; per Graph mailbox one page of its folder list
        # (the six well-known folders, none with child folders) and one delta call per folder.
        assert not any("messages.list" in k for k in calls), calls
        assert sum(v for k, v in calls.items() if "history" in k) == n_gmail
        assert sum(v for k, v in calls.items() if k.endswith("messages.get")) == 3 * n_gmail
        assert calls.get("graph.mailFolders.list") == n_graph
        assert "graph.mailFolders.childFolders" not in calls
        assert sum(v for k, v in calls.items() if "delta" in k) == 6 * n_graph


async def test_a_mailbox_deleted_mid_sync_leaves_nothing_behind(
    db: asyncpg.Pool, mock_server: MockServer, pg_dsn: str, redis_url: str, redis_prefix: str
) -> None:
    mock = mock_server
    await mock.reset({"quotas": {"scale": 10}, "latency": {"dist": "constant", "mean_ms": 400}})
    creds = await mock.populate(gmail=1, graph=0, seed=6, median=40, max_size=60)
    store = MailboxStore(db)
    tenant = await store.create_tenant("t")
    [mid] = await register(store, tenant["id"], creds, time.time())
    settings = daemon_settings(
        pg_dsn, redis_url, redis_prefix, mock.url, policy={"quota_scale": 10}
    )
    async with running(settings):

        async def running_now() -> bool:
            return bool(
                await db.fetchval("SELECT state = 'running' FROM mailboxes WHERE id = $1", mid)
            )

        await wait_until(running_now, 20, "the sync to start")
        await store.delete_mailbox(mid)
        await asyncio.sleep(3)  # the sync's provider calls finish meanwhile
    await mock.reset()
    assert await db.fetchval("SELECT count(*) FROM messages") == 0
    assert await db.fetchval("SELECT count(*) FROM sync_runs") == 0
