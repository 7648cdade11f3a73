"""End to end: incremental IMAP syncs applied to PostgreSQL mirror the server exactly."""

from __future__ import annotations

import random
from collections.abc import Callable

import asyncpg
import pytest

from daemon.policy import SyncKind
from daemon.providers.base import MailboxContext, SyncResult
from daemon.providers.imap import ImapProvider, ImapSettings
from daemon.providers.imap_hosts import LOOPBACK
from daemon.store.mailboxes import MailboxStore
from daemon.store.messages import apply_result
from loadtest.dovecot.imap_admin import ImapAdmin
from loadtest.dovecot.messages import generate_mailbox, generate_message
from loadtest.dovecot.server import DovecotServer, DovecotUser

START = 1_700_000_000.0
MakeUser = Callable[..., DovecotUser]
MakeCtx = Callable[..., MailboxContext]
MODES = {
    "qresync": frozenset(),
    "condstore": frozenset({"QRESYNC"}),
    "plain": frozenset({"QRESYNC", "CONDSTORE"}),
}
FLAGS = ["\\Seen", "\\Flagged", "\\Answered", "$Later"]


async def _apply(db: asyncpg.Pool, mailbox_id: int, result: SyncResult) -> None:
    async with db.acquire() as conn, conn.transaction():
        await apply_result(conn, mailbox_id, result)


async def _stored(db: asyncpg.Pool, mailbox_id: int) -> dict[str, tuple[str, ...]]:
    rows = await db.fetch(
        "SELECT provider_id, flags FROM messages WHERE mailbox_id = $1", mailbox_id
    )
    return {r["provider_id"]: tuple(sorted(r["flags"])) for r in rows}


@pytest.mark.parametrize("mode", list(MODES))
async def test_incremental_syncs_keep_the_store_equal_to_the_server(
    mode: str,
    db: asyncpg.Pool,
    dovecot: DovecotServer,
    new_user: MakeUser,
    context_for: MakeCtx,
) -> None:
    user = new_user()
    rng = random.Random(21)
    dovecot.write_messages(user, "INBOX", generate_mailbox(rng, 120, start=START, end=START + 1e4))
    dovecot.write_messages(
        user, "Work", generate_mailbox(rng, 30, start=START, end=START + 1e4, first_index=500)
    )
    store = MailboxStore(db)
    tenant = await store.create_tenant(f"imap-{mode}")
    row = await store.create_mailbox(tenant["id"], "imap", f"{user.name}@x.test", b"-")
    mailbox_id = int(row["id"])
    folders = ["INBOX", "Work"]
    provider = ImapProvider(
        ImapSettings(allowed_networks=LOOPBACK, ignore_capabilities=MODES[mode], fetch_chunk=40)
    )
    reference = ImapProvider(ImapSettings(allowed_networks=LOOPBACK))
    try:
        result = await provider.sync(context_for(user, folders=folders), SyncKind.FULL, None)
        await _apply(db, mailbox_id, result)
        cursor = result.cursor
        next_index = 1000
        for _round in range(4):
            async with await ImapAdmin.login(
                dovecot.host, dovecot.port, user.name, user.password
            ) as admin:
                for folder in folders:
                    known = [
                        int(pid.rsplit(":", 1)[1])
                        for pid in await _stored(db, mailbox_id)
                        if pid.startswith(f"{folder}:")
                    ]
                    for _ in range(rng.randint(0, 4)):
                        msg = generate_message(rng, next_index, START + 2e4)
                        next_index += 1
                        await admin.append(folder, msg.data, rng.sample(FLAGS, rng.randint(0, 2)))
                    if known:
                        some = rng.sample(known, min(len(known), rng.randint(1, 6)))
                        await admin.store(folder, some, rng.choice(["+FLAGS", "-FLAGS"]),
                                          [rng.choice(FLAGS)])  # fmt: skip
                        gone = rng.sample(known, min(len(known), rng.randint(0, 3)))
                        if gone:
                            await admin.expunge(folder, gone)
            result = await provider.sync(
                context_for(user, folders=folders), SyncKind.INCREMENTAL, cursor
            )
            assert result.kind is SyncKind.INCREMENTAL and not result.full_scopes
            await _apply(db, mailbox_id, result)
            cursor = result.cursor
            truth = await reference.sync(context_for(user, folders=folders), SyncKind.FULL, None)
            assert await _stored(db, mailbox_id) == {r.provider_id: r.flags for r in truth.upserts}
    finally:
        await provider.aclose()
        await reference.aclose()
