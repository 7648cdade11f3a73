"""Refused SELECTs and UIDVALIDITY changes against a real Dovecot: only a confirmed absence
is a deleted folder; any other refusal is transient and the session is not pooled again."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from daemon.errors import TransientError
from daemon.policy import SyncKind
from daemon.providers.base import MailboxContext
from daemon.providers.imap import ImapProvider, ImapSettings
from daemon.providers.imap_hosts import LOOPBACK
from daemon.ratelimit import CountingGate
from loadtest.dovecot.imap_admin import ImapAdmin
from loadtest.dovecot.maildir import folder_dir, rebuild_index
from loadtest.dovecot.messages import generate_mailbox
from loadtest.dovecot.server import DovecotServer, DovecotUser

START = 1_700_000_000.0
FOLDERS = ["INBOX", "Work"]
MakeUser = Callable[..., DovecotUser]
MakeCtx = Callable[..., MailboxContext]


def calls(ctx: MailboxContext) -> dict[str, int]:
    assert isinstance(ctx.gate, CountingGate)
    return dict(ctx.gate.by_method)


def seeded(dovecot: DovecotServer, user: DovecotUser, seed: int) -> None:
    rng = random.Random(seed)
    dovecot.write_messages(user, "INBOX", generate_mailbox(rng, 5, start=START, end=START + 5))
    dovecot.write_messages(
        user, "Work", generate_mailbox(rng, 8, start=START, end=START + 8, first_index=100)
    )


async def test_folder_rebuilt_under_a_live_session_is_transient_then_replaced(
    dovecot: DovecotServer, new_user: MakeUser, context_for: MakeCtx
) -> None:
    user = new_user()
    seeded(dovecot, user, 31)
    provider = ImapProvider(ImapSettings(allowed_networks=LOOPBACK))
    key = (dovecot.host, dovecot.port, user.name)
    try:
        first = await provider.sync(context_for(user, folders=FOLDERS), SyncKind.FULL, None)
        old_uv = first.cursor["folders"]["Work"]["uidvalidity"]
        rebuild_index(folder_dir(user.maildir, "Work"), old_uv + 1000, 300)
        ctx = context_for(user, folders=FOLDERS)
        with pytest.raises(TransientError, match=r"SELECT 'Work' refused .*SERVERBUG"):
            await provider.sync(ctx, SyncKind.INCREMENTAL, first.cursor)
        assert calls(ctx)["imap.list"] == 1  # LIST showed the folder: not a deletion
        assert provider.pool.open_count(key) == 0 and provider.pool.stats.discarded == 1

        # A new session sees the new UIDVALIDITY: Work is listed anew, INBOX is untouched.
        res = await provider.sync(context_for(user, folders=FOLDERS), SyncKind.INCREMENTAL,
                                  first.cursor)  # fmt: skip
        assert res.fell_back_to_full and res.full_scopes == ["Work"] and not res.deletes
        assert sorted(r.provider_id for r in res.upserts) == [
            f"Work:{old_uv + 1000}:{uid}" for uid in range(300, 308)
        ]
        assert res.cursor["folders"]["INBOX"] == first.cursor["folders"]["INBOX"]
        assert provider.pool.stats.logins == 2
    finally:
        await provider.aclose()


async def test_select_refused_after_index_files_vanished_is_transient(
    dovecot: DovecotServer, new_user: MakeUser, context_for: MakeCtx
) -> None:
    user = new_user()
    seeded(dovecot, user, 32)
    provider = ImapProvider(ImapSettings(allowed_networks=LOOPBACK))
    try:
        first = await provider.sync(context_for(user, folders=FOLDERS), SyncKind.FULL, None)
        for f in folder_dir(user.maildir, "Work").glob("dovecot.index*"):
            f.unlink()
        # Dovecot answers this session "NO Mailbox was deleted under us" (no response code).
        with pytest.raises(TransientError, match="deleted under us"):
            await provider.sync(context_for(user, folders=FOLDERS), SyncKind.INCREMENTAL,
                                first.cursor)  # fmt: skip
        res = await provider.sync(context_for(user, folders=FOLDERS), SyncKind.INCREMENTAL,
                                  first.cursor)  # fmt: skip
        # Dovecot rebuilt the index from dovecot-uidlist: same UIDVALIDITY and UIDs.
        assert res.cursor == first.cursor and not res.skipped and not res.full_scopes
    finally:
        await provider.aclose()


async def test_folder_deleted_on_the_server_is_confirmed_by_list(
    dovecot: DovecotServer, new_user: MakeUser, context_for: MakeCtx
) -> None:
    user = new_user()
    seeded(dovecot, user, 33)
    provider = ImapProvider(ImapSettings(allowed_networks=LOOPBACK))
    try:
        first = await provider.sync(context_for(user, folders=FOLDERS), SyncKind.FULL, None)
        async with await ImapAdmin.login(dovecot.host, dovecot.port, user.name, user.password) as a:
            await a.delete("Work")
        ctx = context_for(user, folders=FOLDERS)
        res = await provider.sync(ctx, SyncKind.INCREMENTAL, first.cursor)
        assert calls(ctx)["imap.list"] == 1
        assert res.skipped == [("folder:Work", "folder does not exist")]
        assert res.full_scopes == ["Work"] and not res.upserts  # the worker drops Work's rows
        assert list(res.cursor["folders"]) == ["INBOX"]
        assert provider.pool.stats.discarded == 0  # the session is fine: pooled again
    finally:
        await provider.aclose()
