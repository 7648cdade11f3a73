"""A folder whose UIDVALIDITY changes, and a folder deleted, through the whole daemon against
Dovecot: only a confirmed absence removes stored rows; a refused SELECT is retried."""

from __future__ import annotations

import random
from collections.abc import Callable

import asyncpg

from daemon.policy import SyncKind
from daemon.providers.base import MailboxContext
from daemon.providers.imap import ImapProvider, ImapSettings
from daemon.providers.imap_hosts import LOOPBACK
from daemon.store.mailboxes import MailboxStore
from loadtest.dovecot.imap_admin import ImapAdmin
from loadtest.dovecot.maildir import folder_dir, rebuild_index
from loadtest.dovecot.messages import generate_mailbox
from loadtest.dovecot.server import DovecotServer, DovecotUser
from tests.daemon.harness import daemon_settings, running, wait_until
from tests.daemon.providers.imap_e2e import imap_provider, register_imap, rows, runs

START = 1_700_000_000.0
FOLDERS = ["INBOX", "Work"]
MakeCtx = Callable[..., MailboxContext]


async def _synced_once(db: asyncpg.Pool, mailbox_id: int) -> bool:
    got = await db.fetchval(
        "SELECT last_success_at IS NOT NULL AND state = 'idle' FROM mailboxes WHERE id = $1",
        mailbox_id,
    )
    return bool(got)


async def test_folder_rebuilt_under_a_pooled_session_is_retried_then_replaced_exactly(
    db: asyncpg.Pool,
    dovecot: DovecotServer,
    new_user: Callable[[str], DovecotUser],
    context_for: MakeCtx,
    pg_dsn: str,
    redis_url: str,
    redis_prefix: str,
) -> None:
    user = new_user("rebuilt")
    rng = random.Random(91)
    dovecot.write_messages(user, "INBOX", generate_mailbox(rng, 30, start=START, end=START + 30))
    dovecot.write_messages(
        user, "Work", generate_mailbox(rng, 20, start=START, end=START + 20, first_index=100)
    )
    # Another tenant's mailbox on the same server, with a folder of the same name: what
    # happens to one account's Work must not touch the other's.
    neighbour = new_user("neighbour")
    dovecot.write_messages(
        neighbour, "Work", generate_mailbox(rng, 15, start=START, end=START + 15, first_index=300)
    )
    store = MailboxStore(db)
    tenant = await store.create_tenant("t")
    mailbox = await register_imap(store, tenant["id"], dovecot, user, user.password,
                                  folders=FOLDERS)  # fmt: skip
    other = await store.create_tenant("other")
    next_door = await register_imap(store, other["id"], dovecot, neighbour, neighbour.password,
                                    folders=FOLDERS)  # fmt: skip
    settings = daemon_settings(pg_dsn, redis_url, redis_prefix, "http://127.0.0.1:9")
    key = (dovecot.host, dovecot.port, user.name)
    async with running(settings) as daemon:
        assert daemon.scheduler is not None
        pool = imap_provider(daemon).pool

        async def runs_done(n: int) -> bool:
            state = await db.fetchval("SELECT state FROM mailboxes WHERE id = $1", mailbox)
            return len(await runs(db, mailbox)) == n and state == "idle"

        await wait_until(lambda: runs_done(1), 30, "the first sync")
        await wait_until(lambda: _synced_once(db, next_door), 30, "the other tenant's first sync")
        theirs = await rows(db, next_door, "Work")
        assert len(theirs) == 15
        inbox = await rows(db, mailbox, "INBOX")
        work = await rows(db, mailbox, "Work")
        assert (len(inbox), len(work)) == (30, 20)
        cursor = await db.fetchval("SELECT cursor FROM mailboxes WHERE id = $1", mailbox)
        old_uv = cursor["folders"]["Work"]["uidvalidity"]
        assert pool.open_count(key) == 1  # the session that had Work open, now pooled

        # The server rebuilds Work's index: new UIDVALIDITY, new UIDs. The pooled session
        # (which had Work open) now gets NO [SERVERBUG] for SELECT "Work".
        rebuild_index(folder_dir(user.maildir, "Work"), old_uv + 1000, 500)
        await daemon.scheduler.sync_now(mailbox)
        await wait_until(lambda: runs_done(2), 30, "the sync that meets the rebuilt folder")
        run = (await runs(db, mailbox))[1]
        assert (run["error_kind"], run["deleted"]) == ("transient", 0), dict(run)
        assert "SERVERBUG" in run["error"]
        status = await db.fetchrow(
            "SELECT status, failure_count FROM mailboxes WHERE id = $1", mailbox
        )
        assert (status["status"], status["failure_count"]) == ("active", 1)
        assert await rows(db, mailbox, "Work") == work  # nothing removed
        assert await rows(db, mailbox, "INBOX") == inbox
        assert pool.open_count(key) == 0  # that session was closed, not pooled again

        # The retry runs on a fresh session, which sees the new UIDVALIDITY.
        await daemon.scheduler.sync_now(mailbox)
        await wait_until(lambda: runs_done(3), 30, "the retry")
        run = (await runs(db, mailbox))[2]
        assert run["error_kind"] is None and run["fell_back_to_full"]
        assert (run["added"], run["deleted"]) == (20, 20)
        new_work = await rows(db, mailbox, "Work")
        assert {pid.rsplit(":", 1)[0] for pid in new_work} == {f"Work:{old_uv + 1000}"}
        # The same 20 messages, once each, under their new UIDs.
        assert sorted(v[0] for v in new_work.values()) == sorted(v[0] for v in work.values())
        assert await rows(db, mailbox, "INBOX") == inbox  # untouched, not even rewritten
        reference = ImapProvider(ImapSettings(allowed_networks=LOOPBACK))
        try:
            truth = await reference.sync(context_for(user, folders=FOLDERS), SyncKind.FULL, None)
        finally:
            await reference.aclose()
        stored = await db.fetch("SELECT provider_id FROM messages WHERE mailbox_id = $1", mailbox)
        assert sorted(r["provider_id"] for r in stored) == sorted(
            r.provider_id for r in truth.upserts
        )

        # Deleted on the server for real: LIST no longer shows it, so its rows go.
        async with await ImapAdmin.login(dovecot.host, dovecot.port, user.name, user.password) as a:
            await a.delete("Work")
        await daemon.scheduler.sync_now(mailbox)
        await wait_until(lambda: runs_done(4), 30, "the sync after the deletion")
        run = (await runs(db, mailbox))[3]
        assert (run["error_kind"], run["deleted"], run["skipped"]) == (None, 20, 1)
        assert await rows(db, mailbox, "Work") == {}
        assert await rows(db, mailbox, "INBOX") == inbox
    # Through the rebuild, the retries and the deletion, the other tenant's folder of the
    # same name kept exactly its messages.
    assert await rows(db, next_door, "Work") == theirs
    assert (
        await db.fetchval(
            "SELECT count(*) FROM sync_runs WHERE mailbox_id = $1 AND error IS NOT NULL", next_door
        )
        == 0
    )
