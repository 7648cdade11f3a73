"""End to end: the daemon stores a Graph mailbox's whole folder tree and keeps it current
(moves, new and deleted folders), and ``config.folders`` narrows it."""

from __future__ import annotations

import time
from typing import Any

import asyncpg

from daemon.store.mailboxes import MailboxStore
from daemon.store.records import ts
from tests.daemon.harness import MockServer, daemon_settings, register, running, wait_until


async def _stored(db: asyncpg.Pool, mailbox_id: int) -> dict[str, str]:
    rows = await db.fetch(
        "SELECT provider_id, folder FROM messages WHERE mailbox_id = $1", mailbox_id
    )
    return {r["provider_id"]: r["folder"] for r in rows}


async def _mock_state(mock: MockServer, address: str) -> tuple[dict[str, str], dict[str, str]]:
    """(message id -> parent folder id, message id -> folder name or path) in the mock."""
    msgs = await mock.messages(address)
    return {m["id"]: m["parentFolderId"] for m in msgs}, {m["id"]: m["folder"] for m in msgs}


async def _graph_mailbox(mock: MockServer, address: str, messages: int, seed: int) -> Any:
    body = {"provider": "graph", "address": address, "messages": messages, "seed": seed}
    creds = await mock.call("POST", "/_mock/mailboxes", body, status=201)
    base = f"/_mock/mailboxes/{address}"
    await mock.call("POST", f"{base}/folders", {"name": "Projects"}, status=201)
    await mock.call("POST", f"{base}/folders", {"name": "2026", "parent": "Projects"}, status=201)
    await mock.call("POST", f"{base}/folders", {"name": "Old"}, status=201)
    for folder, count in (("Projects", 3), ("Projects/2026", 2), ("Old", 2)):
        await mock.call("POST", f"{base}/deliver", {"count": count, "folder": folder})
    await mock.call("POST", f"{base}/move", {"count": 4, "folder": "archive"})
    return creds


async def test_whole_mailbox_by_default_moves_new_folders_and_narrowing(
    db: asyncpg.Pool, mock_server: MockServer, pg_dsn: str, redis_url: str, redis_prefix: str
) -> None:
    mock = mock_server
    await mock.reset({"quotas": {"scale": 10}})
    whole = await _graph_mailbox(mock, "whole@folders.test", 80, 11)
    narrow = await _graph_mailbox(mock, "narrow@folders.test", 40, 12)
    store = MailboxStore(db)
    tenant = await store.create_tenant("folders")
    start = time.time()
    ids = await register(
        store, tenant["id"], [whole, narrow], start, configs=[{}, {"folders": ["inbox"]}]
    )
    settings = daemon_settings(
        pg_dsn, redis_url, redis_prefix, mock.url, policy={"quota_scale": 10}
    )

    async def synced_after(since: float) -> bool:
        n = await db.fetchval(
            "SELECT count(*) FROM mailboxes WHERE last_success_at > $1 AND state = 'idle'",
            ts(since),
        )
        return bool(n == 2)

    async with running(settings) as daemon:
        await wait_until(lambda: synced_after(start), 60, "the first full syncs")
        by_id, names = await _mock_state(mock, whole["address"])
        assert {"inbox", "archive", "sentitems", "Projects", "Projects/2026", "Old"} <= set(
            names.values()
        )
        # Every folder, child folders included, stored under the folder's id.
        first = await _stored(db, ids[0])
        assert sorted(first) == sorted(by_id), "every message of every folder is stored"
        assert first == by_id
        _, narrow_names = await _mock_state(mock, narrow["address"])
        inbox_only = {i: "inbox" for i, f in narrow_names.items() if f == "inbox"}
        assert await _stored(db, ids[1]) == inbox_only

        # Between syncs: a stored inbox message goes to Archive, a folder is created (with
        # mail), another deleted with its mail.
        moved = next(i for i, f in names.items() if f == "inbox")
        narrow_moved = next(iter(inbox_only))
        base = f"/_mock/mailboxes/{whole['address']}"
        reply = await mock.call("POST", f"{base}/move", {"ids": [moved], "folder": "archive"})
        archive_id = reply["folder"]
        await mock.call(
            "POST",
            f"/_mock/mailboxes/{narrow['address']}/move",
            {"ids": [narrow_moved], "folder": "archive"},
        )
        await mock.call("POST", f"{base}/folders", {"name": "Receipts"}, status=201)
        fresh = await mock.call("POST", f"{base}/deliver", {"count": 2, "folder": "Receipts"})
        dropped = await mock.call("DELETE", f"{base}/folders/Old")
        await mock.call("POST", "/_mock/stats/reset")
        again = time.time()
        assert daemon.scheduler is not None
        for mid in ids:
            await daemon.scheduler.sync_now(mid)
        await wait_until(lambda: synced_after(again), 60, "the incremental syncs")

    runs = await db.fetch(
        "SELECT DISTINCT ON (mailbox_id) mailbox_id, kind, error FROM sync_runs "
        "ORDER BY mailbox_id, id DESC"
    )
    assert [(r["kind"], r["error"]) for r in runs] == [("incremental", None)] * 2
    by_id, names = await _mock_state(mock, whole["address"])
    stored = await _stored(db, ids[0])
    assert stored == by_id
    assert stored[moved] == archive_id, "the moved message is kept, under Archive"
    assert set(fresh["ids"]) <= set(stored), "the new folder's mail is stored"
    assert not set(dropped["messages"]) & set(stored), "the deleted folder's mail is gone"
    _, narrow_names = await _mock_state(mock, narrow["address"])
    assert await _stored(db, ids[1]) == {
        i: "inbox" for i, f in narrow_names.items() if f == "inbox"
    }
    assert narrow_moved not in await _stored(db, ids[1])

    # Calls of the incremental syncs: the whole mailbox listed its folders (one page of the
    # root, one of Projects' children) and ran one delta round per folder; the narrowed one
    # listed nothing and read its inbox only. The root list went in one batch with the
    # first pages of the folders synced last time, the deleted Old among them: its page
    # was charged and dropped.
    calls = (await mock.stats())["calls"]
    assert calls.get("graph.mailFolders.list") == 1
    assert calls.get("graph.mailFolders.childFolders") == 1
    folders = 6 + 3  # well-known + Projects, Projects/2026, Receipts
    assert calls.get("graph.messages.delta") == folders + 1 + 1
