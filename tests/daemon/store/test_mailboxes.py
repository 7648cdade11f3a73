"""The mailbox state machine on the real PostgreSQL."""

from __future__ import annotations

import asyncio
import random

import asyncpg
import pytest

from daemon.policy import ORIGINAL, PLAN_B, DueMailbox, SyncKind, Tier, plan_cycle, with_overrides
from daemon.store.mailboxes import MailboxStore
from daemon.store.records import Conflict, NotFound, ts
from daemon.store.runs import finish_success

H = 3600.0
NOW = 1_800_000_000.0


async def _seed(store: MailboxStore, n: int, rng: random.Random) -> list[DueMailbox]:
    tenant = await store.create_tenant("acme")
    out = []
    for i in range(n):
        row = await store.create_mailbox(
            tenant["id"], "gmail", f"u{i}@x.test", b"blob", now=NOW - rng.uniform(0, 3600)
        )
        last = None if rng.random() < 0.2 else NOW - rng.uniform(0, 72) * H
        cursor = None if last is None or rng.random() < 0.3 else {"history_id": "1"}
        await store.pool.execute(
            "UPDATE mailboxes SET last_success_at = $2, cursor = $3 WHERE id = $1",
            row["id"],
            ts(last),
            cursor,
        )
        out.append(DueMailbox(row["id"], row["next_sync_at"].timestamp(), last, cursor is not None))
    return out


async def test_claim_matches_the_pure_policy(db: asyncpg.Pool) -> None:
    store = MailboxStore(db)
    rng = random.Random(11)
    due = await _seed(store, 60, rng)
    profile = with_overrides(PLAN_B, {"batch_size": 25})
    expected = plan_cycle(due, NOW, profile)
    claimed = await store.claim_due(NOW, profile)
    assert [(c.mailbox_id, c.tier, c.kind) for c in claimed] == [
        (a.mailbox_id, a.tier, a.kind) for a in expected
    ]
    assert all(c.run_seq == 1 for c in claimed)
    # The next cycle takes the next 25, never one already queued.
    second = await store.claim_due(NOW, profile)
    assert not {c.mailbox_id for c in claimed} & {c.mailbox_id for c in second}
    remaining = [m for m in due if m.id not in {c.mailbox_id for c in claimed}]
    assert [c.mailbox_id for c in second] == [
        a.mailbox_id for a in plan_cycle(remaining, NOW, profile)
    ]


async def test_switching_profile_changes_tiers_and_kinds(db: asyncpg.Pool) -> None:
    store = MailboxStore(db)
    tenant = await store.create_tenant("t")
    row = await store.create_mailbox(tenant["id"], "graph", "a@x.test", b"b", now=NOW - 10)
    await db.execute(
        "UPDATE mailboxes SET last_success_at = $2, cursor = '{}'::jsonb WHERE id = $1",
        row["id"],
        ts(NOW - 3 * H),
    )
    [c] = await store.claim_due(NOW, PLAN_B)
    assert (c.tier, c.kind) == (Tier.HIGH, SyncKind.INCREMENTAL)
    await db.execute("UPDATE mailboxes SET state = 'idle'")
    [c] = await store.claim_due(NOW, ORIGINAL)
    assert (c.tier, c.kind) == (Tier.NORMAL, SyncKind.FULL)


async def test_concurrent_claims_never_overlap(db: asyncpg.Pool) -> None:
    store = MailboxStore(db)
    await _seed(store, 300, random.Random(3))
    profile = with_overrides(PLAN_B, {"batch_size": 40})
    results = await asyncio.gather(*(store.claim_due(NOW, profile) for _ in range(10)))
    ids = [c.mailbox_id for batch in results for c in batch]
    assert len(ids) == len(set(ids)) == 300


async def test_run_lifecycle_with_fencing(db: asyncpg.Pool) -> None:
    store = MailboxStore(db)
    tenant = await store.create_tenant("t")
    row = await store.create_mailbox(tenant["id"], "gmail", "a@x.test", b"b", now=NOW - 1)
    [c] = await store.claim_due(NOW, PLAN_B)
    assert await store.start_run(c.mailbox_id, c.run_seq + 1, NOW) is None  # stale job
    first = await store.start_run(c.mailbox_id, c.run_seq, NOW)
    assert first is not None
    # The same job delivered again (its process died): a new token takes over.
    second = await store.start_run(c.mailbox_id, c.run_seq, NOW + 60)
    assert second is not None and second.run_token != first.run_token
    async with db.acquire() as conn:
        assert not await finish_success(conn, first, {"history_id": "5"}, NOW + 1, NOW + 300, 0)
        assert await finish_success(conn, second, {"history_id": "6"}, NOW + 61, NOW + 360, 4)
    mbx = await store.get_mailbox(row["id"])
    assert (mbx["state"], mbx["cursor"], mbx["message_count"]) == ("idle", {"history_id": "6"}, 4)
    assert mbx["next_sync_at"].timestamp() == NOW + 360
    assert "credentials" not in mbx


async def test_sync_now_jumps_the_queue_and_flags_running(db: asyncpg.Pool) -> None:
    from daemon.policy import Assignment

    store = MailboxStore(db)
    tenant = await store.create_tenant("t")
    row = await store.create_mailbox(tenant["id"], "gmail", "a@x.test", b"b", now=NOW - 1)
    [low] = await store.claim_due(NOW, PLAN_B)
    assert low.tier is Tier.LOW
    high = await store.claim_now(row["id"], Assignment(row["id"], Tier.HIGH, SyncKind.FULL), NOW)
    assert high is not None and high.run_seq == low.run_seq + 1
    assert await store.start_run(row["id"], low.run_seq, NOW) is None  # the low job is stale
    assert await store.start_run(row["id"], high.run_seq, NOW) is not None
    again = await store.claim_now(row["id"], Assignment(row["id"], Tier.HIGH, SyncKind.FULL), NOW)
    assert again is None
    assert (await db.fetchval("SELECT resync_requested FROM mailboxes")) is True
    with pytest.raises(NotFound):
        await store.claim_now(999, Assignment(999, Tier.HIGH, SyncKind.FULL), NOW)


async def test_registration_errors(db: asyncpg.Pool) -> None:
    store = MailboxStore(db)
    tenant = await store.create_tenant("t")
    with pytest.raises(Conflict):
        await store.create_tenant("t")
    await store.create_mailbox(tenant["id"], "gmail", "a@x.test", b"b")
    with pytest.raises(Conflict):
        await store.create_mailbox(tenant["id"], "gmail", "a@x.test", b"b")
    with pytest.raises(NotFound):
        await store.create_mailbox(12345, "gmail", "a@x.test", b"b")
    await store.delete_tenant(tenant["id"])
    assert await db.fetchval("SELECT count(*) FROM mailboxes") == 0


async def test_lost_runs_and_stale_queued_are_found(db: asyncpg.Pool) -> None:
    store = MailboxStore(db)
    await _seed(store, 5, random.Random(1))
    claimed = await store.claim_due(NOW, PLAN_B)
    assert len(await store.stale_queued(NOW + 1, 100)) == 5
    run = await store.start_run(claimed[0].mailbox_id, claimed[0].run_seq, NOW)
    assert run is not None
    assert await store.release_lost_runs(NOW + 10, NOW + 20) == 1
    fresh = await store.renumber_queued(claimed[1])
    assert fresh is not None and fresh.run_seq == claimed[1].run_seq + 1


async def test_rotated_credentials_never_overwrite_a_user_update(db: asyncpg.Pool) -> None:
    store = MailboxStore(db)
    tenant = await store.create_tenant("rev")
    mbx = await store.create_mailbox(tenant["id"], "graph", "rev@x.test", b"registered")
    mid = mbx["id"]
    assert "credentials_rev" not in mbx
    assert await store.save_credentials_now(mid, b"rotated-1", 0)
    await store.update_credentials(mid, b"user-update", reactivate=True, now=NOW)
    # A sync that started before the update rotates its (old) token: not saved.
    assert not await store.save_credentials_now(mid, b"rotated-2", 0)
    row = await db.fetchrow("SELECT credentials, credentials_rev FROM mailboxes WHERE id = $1", mid)
    assert (bytes(row["credentials"]), row["credentials_rev"]) == (b"user-update", 1)
    assert await store.save_credentials_now(mid, b"rotated-3", 1)
