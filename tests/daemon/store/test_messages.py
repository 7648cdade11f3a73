"""Applying sync results: upserts without duplicates, flag changes, deletions, full scopes."""

from __future__ import annotations

import asyncpg

from daemon.policy import SyncKind
from daemon.providers.base import ALL_FOLDERS, MessageRecord, SyncResult
from daemon.store.mailboxes import MailboxStore
from daemon.store.messages import apply_result


async def _mailbox(db: asyncpg.Pool) -> int:
    store = MailboxStore(db)
    tenant = await store.create_tenant("t")
    row = await store.create_mailbox(tenant["id"], "graph", "a@x.test", b"b")
    return int(row["id"])


def _rec(
    pid: str, folder: str = "inbox", flags: tuple[str, ...] = (), subject: str = "s"
) -> MessageRecord:
    return MessageRecord(pid, folder, subject=subject, flags=flags, received_at=1.7e9)


async def _apply(db: asyncpg.Pool, mid: int, result: SyncResult) -> tuple[int, int, int]:
    async with db.acquire() as conn, conn.transaction():
        c = await apply_result(conn, mid, result)
    return c.added, c.changed, c.deleted


async def test_upserts_never_duplicate_and_count_changes(db: asyncpg.Pool) -> None:
    mid = await _mailbox(db)
    first = SyncResult(SyncKind.FULL, {}, upserts=[_rec("a"), _rec("b"), _rec("a", subject="x")])
    assert await _apply(db, mid, first) == (2, 0, 0)
    # Re-running the same sync changes nothing and duplicates nothing.
    assert await _apply(db, mid, first) == (0, 0, 0)
    assert await db.fetchval("SELECT count(*) FROM messages") == 2
    assert await db.fetchval("SELECT subject FROM messages WHERE provider_id='a'") == "x"
    changed = SyncResult(
        SyncKind.INCREMENTAL,
        {},
        upserts=[_rec("b", flags=("\\Seen",))],
        flag_updates=[("a", ("\\Flagged", "\\Seen"))],
        deletes=["zz"],
    )
    assert await _apply(db, mid, changed) == (0, 2, 0)
    assert await db.fetchval("SELECT flags FROM messages WHERE provider_id='a'") == [
        "\\Flagged",
        "\\Seen",
    ]


async def test_deletes_and_full_scopes(db: asyncpg.Pool) -> None:
    mid = await _mailbox(db)
    base = [_rec("a"), _rec("b"), _rec("c", "sentitems"), _rec("d", "sentitems")]
    await _apply(db, mid, SyncResult(SyncKind.FULL, {}, upserts=base))
    assert await _apply(db, mid, SyncResult(SyncKind.INCREMENTAL, {}, deletes=["a", "a"])) == (
        0,
        0,
        1,
    )
    # A full round of inbox only: b vanished from it, sentitems untouched.
    r = SyncResult(SyncKind.FULL, {}, upserts=[_rec("e")], full_scopes=["inbox"])
    assert await _apply(db, mid, r) == (1, 0, 1)
    ids = {r["provider_id"] for r in await db.fetch("SELECT provider_id FROM messages")}
    assert ids == {"c", "d", "e"}
    r = SyncResult(SyncKind.FULL, {}, upserts=[_rec("d", "sentitems")], full_scopes=[ALL_FOLDERS])
    assert await _apply(db, mid, r) == (0, 0, 2)
    assert await db.fetchval("SELECT count(*) FROM messages") == 1


async def test_garbage_text_is_stored_not_fatal(db: asyncpg.Pool) -> None:
    mid = await _mailbox(db)
    rec = MessageRecord(
        "x",
        subject="nul\x00byte",
        sender="a\x00b",
        size=2**40,
        flags=("a\x1fb",),
        parse_error="Date header unparseable",
    )
    assert await _apply(db, mid, SyncResult(SyncKind.FULL, {}, upserts=[rec])) == (1, 0, 0)
    row = await db.fetchrow("SELECT subject, size, flags, parse_error FROM messages")
    assert row["subject"] == "nulbyte" and row["size"] == 2**31 - 1
    assert row["flags"] == ["ab"] and row["parse_error"] == "Date header unparseable"


async def test_removal_from_a_folder_keeps_a_row_filed_under_another(db: asyncpg.Pool) -> None:
    mid = await _mailbox(db)
    base = [_rec("a", "archive"), _rec("b", "archive"), _rec("c", "inbox")]
    await _apply(db, mid, SyncResult(SyncKind.FULL, {}, upserts=base))
    # a moved to inbox and was stored there by an earlier sync; Archive's removal of it
    # arrives now, together with b's and a removal of c from a folder it never was in.
    await _apply(db, mid, SyncResult(SyncKind.INCREMENTAL, {}, upserts=[_rec("a", "inbox")]))
    r = SyncResult(
        SyncKind.INCREMENTAL,
        {},
        removals=[("a", "archive"), ("b", "archive"), ("b", "archive"), ("c", "junkemail")],
    )
    assert await _apply(db, mid, r) == (0, 0, 1)
    rows = await db.fetch("SELECT provider_id, folder FROM messages ORDER BY provider_id")
    assert [(x["provider_id"], x["folder"]) for x in rows] == [("a", "inbox"), ("c", "inbox")]
    # Moved and reported in one result: the upsert files it first, the removal then misses.
    r = SyncResult(
        SyncKind.INCREMENTAL, {}, upserts=[_rec("c", "archive")], removals=[("c", "inbox")]
    )
    assert await _apply(db, mid, r) == (0, 1, 0)
    assert await db.fetchval("SELECT folder FROM messages WHERE provider_id = 'c'") == "archive"
