"""Gmail specifics end to end: the real daemon against the mock."""

from __future__ import annotations

import time

import asyncpg

from daemon.store.mailboxes import MailboxStore
from tests.daemon.harness import (
    MockServer,
    daemon_settings,
    register,
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


async def test_a_long_retry_after_inside_a_batch_fails_the_sync_at_once(
    db: asyncpg.Pool, mock_server: MockServer, pg_dsn: str, redis_url: str, redis_prefix: str
) -> None:
    """An inner 429 of a batch whose Retry-After exceeds ``max_inline_wait_s`` is treated
    like a top-level one: the worker does not sleep it out but fails the sync as
    rate-limited, and the mailbox is due again no earlier than the Retry-After."""
    mock = mock_server
    # 56 legacy units per 90 s at the provider: profile (1) + list (5) + 10 gets (5 each);
    # the 11th get of the batch is refused until the window's first call has left it.
    await mock.reset(
        {
            "quotas": {
                "preset": "documented-legacy",
                "custom": {"gmail.user": {"limit": 56, "period_s": 90}},
            }
        }
    )
    creds = await mock.call(
        "POST",
        "/_mock/populate",
        {"gmail": 1, "graph": 0, "seed": 32, "size": {"dist": "constant", "value": 25}},
    )
    store = MailboxStore(db)
    tenant = await store.create_tenant("t")
    [mid] = await register(store, tenant["id"], creds, time.time())
    # The daemon's own gate (the legacy per-user budget) admits everything: only the
    # provider refuses.
    settings = daemon_settings(
        pg_dsn, redis_url, redis_prefix, mock.url, policy={"quota_preset": "documented-legacy"}
    )
    assert settings.gmail.max_inline_wait_s == 60
    async with running(settings):

        async def failed() -> bool:
            n = await db.fetchval("SELECT count(*) FROM sync_runs WHERE mailbox_id = $1", mid)
            return bool(n)

        await wait_until(failed, 15, "the sync to give up instead of sleeping 90 s")
    run = await db.fetchrow("SELECT * FROM sync_runs WHERE mailbox_id = $1", mid)
    box = await db.fetchrow("SELECT * FROM mailboxes WHERE id = $1", mid)
    assert run["error_kind"] == "rate_limited" and "throttled" in run["error"]
    # The worker was held for the calls only, not for the Retry-After.
    assert (run["finished_at"] - run["started_at"]).total_seconds() < 5
    assert (box["state"], box["status"], box["failure_count"]) == ("idle", "active", 1)
    # Rescheduled by the Retry-After (88-90 s as the mock counts it), not by the first
    # retry's backoff of 15-30 s.
    delay = (box["next_sync_at"] - run["finished_at"]).total_seconds()
    assert 85 <= delay <= 90.001
    stats = await mock.stats()
    assert stats["requests"]["gmail.batch"] == 1
    assert stats["throttled"]["gmail.user"] == 15
