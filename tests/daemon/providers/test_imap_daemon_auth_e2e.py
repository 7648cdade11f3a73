"""Pooled IMAP connections and credentials, through the whole daemon (scheduler, bullmq
workers, API, PostgreSQL, Redis) against Dovecot: a pooled login never serves a mailbox that
did not prove its own password, and a password changed anywhere is noticed."""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import asyncpg
import httpx

from daemon.store.mailboxes import MailboxStore
from daemon.store.records import ts
from loadtest.dovecot.messages import generate_mailbox
from loadtest.dovecot.server import DovecotServer, DovecotUser
from tests.daemon.harness import API_TOKEN, daemon_settings, running, wait_until
from tests.daemon.providers.imap_e2e import imap_provider, register_imap, runs, wait_login

START = 1_700_000_000.0
MOCK = "http://127.0.0.1:9"


async def _status(db: asyncpg.Pool, mailbox_id: int) -> str:
    return str(await db.fetchval("SELECT status FROM mailboxes WHERE id = $1", mailbox_id))


async def _stored(db: asyncpg.Pool, mailbox_id: int) -> int:
    return int(await db.fetchval("SELECT count(*) FROM messages WHERE mailbox_id = $1", mailbox_id))


async def test_wrong_password_of_another_tenant_gets_no_pooled_connection(
    db: asyncpg.Pool,
    dovecot: DovecotServer,
    new_user: Callable[[str], DovecotUser],
    pg_dsn: str,
    redis_url: str,
    redis_prefix: str,
) -> None:
    user = new_user("shared")
    rng = random.Random(81)
    dovecot.write_messages(user, "INBOX", generate_mailbox(rng, 25, start=START, end=START + 25))
    # A second folder: the refused login must not reach any folder of the account.
    dovecot.write_messages(
        user, "Work", generate_mailbox(rng, 10, start=START, end=START + 10, first_index=100)
    )
    store = MailboxStore(db)
    owner = await store.create_tenant("owner")
    other = await store.create_tenant("other")
    folders = ["INBOX", "Work"]
    good = await register_imap(store, owner["id"], dovecot, user, user.password, folders=folders)
    settings = daemon_settings(pg_dsn, redis_url, redis_prefix, MOCK)
    async with running(settings) as daemon:

        async def synced() -> bool:
            return len(await runs(db, good)) == 1

        await wait_until(synced, 30, "the owner's first sync")
        key = (dovecot.host, dovecot.port, user.name)
        assert imap_provider(daemon).pool.open_count(key) == 1  # logged in, idle in the pool
        # The same login name registered by another tenant, with a wrong password.
        bad = await register_imap(
            store, other["id"], dovecot, user, "not-the-password", folders=folders
        )

        async def tried() -> bool:
            state = await db.fetchval("SELECT state FROM mailboxes WHERE id = $1", bad)
            return len(await runs(db, bad)) == 1 and state == "idle"

        await wait_until(tried, 30, "the other tenant's first sync")
    run = (await runs(db, bad))[0]
    assert (run["error_kind"], run["added"]) == ("auth_revoked", 0)
    assert await _status(db, bad) == "needs_reauth"
    assert await _stored(db, bad) == 0
    assert await _status(db, good) == "active" and await _stored(db, good) == 35


async def test_password_changed_on_the_server_needs_reauth_within_one_interval(
    db: asyncpg.Pool,
    dovecot: DovecotServer,
    new_user: Callable[[str], DovecotUser],
    pg_dsn: str,
    redis_url: str,
    redis_prefix: str,
) -> None:
    user = new_user("pwchange")
    dovecot.write_messages(
        user, "INBOX", generate_mailbox(random.Random(82), 10, start=START, end=START + 10)
    )
    interval = 2
    store = MailboxStore(db)
    tenant = await store.create_tenant("t")
    mailbox = await register_imap(store, tenant["id"], dovecot, user, user.password,
                                  interval_s=interval)  # fmt: skip
    settings = daemon_settings(pg_dsn, redis_url, redis_prefix, MOCK)
    async with running(settings) as daemon:

        async def synced_twice() -> bool:
            return len(await runs(db, mailbox)) >= 2

        # Two syncs on schedule: the second one found the first one's connection pooled.
        await wait_until(synced_twice, 30, "two scheduled syncs")
        key = (dovecot.host, dovecot.port, user.name)
        assert imap_provider(daemon).pool.open_count(key) == 1
        old = user.password
        dovecot.set_password(user, "changed-by-the-owner")
        await wait_login(dovecot, user.name, old, accepted=False)
        changed_at = time.time()

        async def parked() -> bool:
            return await _status(db, mailbox) == "needs_reauth"

        await wait_until(parked, 6 * interval, "needs_reauth after the password change")
    after = [r for r in await runs(db, mailbox) if r["started_at"] >= ts(changed_at)]
    # The first sync after the change logs in afresh (its pooled connection is older than
    # the re-authentication bound) and is refused.
    assert after[0]["error_kind"] == "auth_revoked", [r["error_kind"] for r in after]
    assert after[0]["started_at"].timestamp() - changed_at <= interval + 1.0


async def test_credentials_replaced_through_the_api_drop_the_pooled_connection(
    db: asyncpg.Pool,
    dovecot: DovecotServer,
    new_user: Callable[[str], DovecotUser],
    pg_dsn: str,
    redis_url: str,
    redis_prefix: str,
) -> None:
    user = new_user("apicreds")
    dovecot.write_messages(
        user, "INBOX", generate_mailbox(random.Random(83), 12, start=START, end=START + 12)
    )
    store = MailboxStore(db)
    tenant = await store.create_tenant("t")
    mailbox = await register_imap(store, tenant["id"], dovecot, user, user.password)
    settings = daemon_settings(pg_dsn, redis_url, redis_prefix, MOCK)
    key = (dovecot.host, dovecot.port, user.name)
    auth = {"Authorization": f"Bearer {API_TOKEN}"}
    async with (
        running(settings) as daemon,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{settings.api_port}") as api,
    ):
        pool = imap_provider(daemon).pool

        async def runs_done(n: int) -> bool:
            return len(await runs(db, mailbox)) == n

        await wait_until(lambda: runs_done(1), 30, "the first sync")
        assert pool.open_count(key) == 1
        # The user re-enters a wrong password: the next sync must try it, not the old login.
        r = await api.put(
            f"/mailboxes/{mailbox}/credentials",
            json={"credentials": {"password": "mistyped"}},
            headers=auth,
        )
        assert r.status_code == 200, r.text
        await wait_until(lambda: runs_done(2), 30, "the sync after the credentials update")
        assert (await runs(db, mailbox))[1]["error_kind"] == "auth_revoked"
        assert await _status(db, mailbox) == "needs_reauth"
        assert pool.open_count(key) == 0  # the old login was closed, not kept for later
        logins = dovecot.count_logins(user.name)
        r = await api.put(
            f"/mailboxes/{mailbox}/credentials",
            json={"credentials": {"password": user.password}},
            headers=auth,
        )
        assert r.status_code == 200, r.text
        await wait_until(lambda: runs_done(3), 30, "the sync with the corrected password")
        assert (await runs(db, mailbox))[2]["error_kind"] is None
        assert await _status(db, mailbox) == "active" and await _stored(db, mailbox) == 12
        assert pool.open_count(key) == 1
    assert dovecot.count_logins(user.name) >= logins + 1
