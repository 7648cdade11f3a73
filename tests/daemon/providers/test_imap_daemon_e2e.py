"""IMAP mailboxes through the whole daemon: scheduler, bullmq workers, PostgreSQL, Dovecot."""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import asyncpg

from daemon.crypto import CredentialCipher
from daemon.providers.base import Credentials
from daemon.store.mailboxes import MailboxStore
from daemon.store.records import ts
from loadtest.dovecot.messages import generate_mailbox
from loadtest.dovecot.server import DovecotServer, DovecotUser
from tests.daemon.harness import TEST_KEY, daemon_settings, running, wait_until


async def test_imap_mailboxes_sync_and_wrong_password_needs_reauth(
    db: asyncpg.Pool,
    dovecot: DovecotServer,
    new_user: Callable[[str], DovecotUser],
    pg_dsn: str,
    redis_url: str,
    redis_prefix: str,
) -> None:
    rng = random.Random(61)
    now = time.time()
    users = [new_user(f"d{i}") for i in range(3)]
    sizes = [250, 40, 0]
    for user, n in zip(users, sizes, strict=True):
        dovecot.write_messages(user, "INBOX", generate_mailbox(rng, n, start=now - 86400, end=now))
    dovecot.write_messages(
        users[0], "Archive", generate_mailbox(rng, 30, start=now - 86400, end=now)
    )
    store = MailboxStore(db)
    tenant = await store.create_tenant("imap")
    cipher = CredentialCipher(TEST_KEY)
    ids = []
    for i, user in enumerate(users):
        password = user.password if i < 2 else "wrong-password"
        folders = ["INBOX", "Archive"] if i == 0 else None
        config = {
            "host": dovecot.host,
            "port": dovecot.port,
            "tls": "none",
            "username": user.name,
            "auth": "password",
        }
        if folders:
            config["folders"] = folders
        row = await store.create_mailbox(
            tenant["id"],
            "imap",
            f"{user.name}@example.test",
            cipher.encrypt(Credentials({"password": password})),
            config,
            now=now,
        )
        ids.append(row["id"])
    settings = daemon_settings(pg_dsn, redis_url, redis_prefix, "http://127.0.0.1:9")
    async with running(settings) as daemon:

        async def settled() -> bool:
            rows = await db.fetch("SELECT status, last_success_at FROM mailboxes ORDER BY id")
            return (
                rows[0]["last_success_at"] is not None
                and rows[1]["last_success_at"] is not None
                and rows[2]["status"] == "needs_reauth"
            )

        await wait_until(settled, 60, "IMAP syncs to settle")
        counts = dict(
            await db.fetch("SELECT mailbox_id, count(*) FROM messages GROUP BY mailbox_id")
        )
        assert counts == {ids[0]: 280, ids[1]: 40}
        folders = dict(
            await db.fetch(
                "SELECT folder, count(*) FROM messages WHERE mailbox_id = $1 GROUP BY folder",
                ids[0],
            )
        )
        assert folders == {"INBOX": 250, "Archive": 30}
        reason = await db.fetchval("SELECT status_reason FROM mailboxes WHERE id = $1", ids[2])
        assert reason

        # New mail, then "sync now": an incremental sync picks up just that.
        dovecot.write_messages(
            users[1], "INBOX", generate_mailbox(rng, 5, start=now, end=now + 1, first_index=40)
        )
        before = time.time()
        assert daemon.scheduler is not None
        claimed = await daemon.scheduler.sync_now(ids[1])
        assert claimed is not None and str(claimed.kind) == "incremental"

        async def resynced() -> bool:
            n = await db.fetchval(
                "SELECT count(*) FROM mailboxes WHERE id = $1 AND "
                "last_success_at > $2 AND state = 'idle'",
                ids[1],
                ts(before),
            )
            return bool(n == 1)

        await wait_until(resynced, 30, "the incremental IMAP sync")
    run = await db.fetchrow(
        "SELECT kind, added, deleted FROM sync_runs WHERE mailbox_id = $1 ORDER BY id DESC LIMIT 1",
        ids[1],
    )
    assert (run["kind"], run["added"], run["deleted"]) == ("incremental", 5, 0)
    assert await db.fetchval("SELECT message_count FROM mailboxes WHERE id = $1", ids[1]) == 45
