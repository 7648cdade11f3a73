"""Gmail specifics end to end: the real daemon against the mock."""

from __future__ import annotations

import time

import asyncpg

from tests.daemon.harness import (
    MockServer,
    daemon_settings,
    running,
    seed,
    synced_since,
    wait_until,
)


async def _stored_labels(db: asyncpg.Pool, mailbox_id: int) -> dict[str, list[str]]:
    rows = await db.fetch(
        "SELECT provider_id, flags FROM messages WHERE mailbox_id = $1", mailbox_id
    )
    return {r["provider_id"]: sorted(r["flags"]) for r in rows}


async def test_labels_follow_gmail_when_a_message_loses_its_last_one(
    db: asyncpg.Pool, mock_server: MockServer, pg_dsn: str, redis_url: str, redis_prefix: str
) -> None:
    """Archive + mark read of an inbox message removes its last labels; Gmail then sends
    the history record's message without ``labelIds``. The incremental sync must store no
    labels for it, not keep the old ones."""
    mock = mock_server
    await mock.reset({"quotas": {"scale": 10}})
    creds, start, [mid] = await seed(db, mock, gmail=1, graph=0, seed=31, median=15)
    address = creds[0]["address"]
    a, b, c = (await mock.call("POST", f"/_mock/mailboxes/{address}/deliver", {"count": 3}))["ids"]
    settings = daemon_settings(
        pg_dsn, redis_url, redis_prefix, mock.url, policy={"quota_scale": 10}
    )
    async with running(settings) as daemon:
        await wait_until(lambda: synced_since(db, start, 1), 60, "the first sync")
        stored = await _stored_labels(db, mid)
        assert stored[a] == stored[b] == stored[c] == ["INBOX", "UNREAD"]
        labels = f"/_mock/mailboxes/{address}/labels"
        await mock.call("POST", labels, {"ids": [a], "remove": ["INBOX", "UNREAD"]})
        await mock.call("POST", labels, {"ids": [b], "remove": ["INBOX"]})
        await mock.call("POST", f"/_mock/mailboxes/{address}/flags", {"ids": [c], "read": True})
        again = time.time()
        assert daemon.scheduler is not None
        claimed = await daemon.scheduler.sync_now(mid)
        assert claimed is not None and str(claimed.kind) == "incremental"
        await wait_until(lambda: synced_since(db, again, 1), 60, "the incremental sync")
    run = await db.fetchrow(
        "SELECT kind, changed, error FROM sync_runs WHERE mailbox_id = $1 ORDER BY id DESC", mid
    )
    assert (run["kind"], run["changed"], run["error"]) == ("incremental", 3, None)
    stored = await _stored_labels(db, mid)
    assert (stored[a], stored[b], stored[c]) == ([], ["UNREAD"], ["INBOX"])
    # Every stored message carries exactly the provider's labels.
    provider = {m["id"]: sorted(m["labelIds"]) for m in await mock.messages(address)}
    assert stored == provider
