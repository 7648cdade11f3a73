"""Helpers of the whole-daemon IMAP tests: Dovecot users registered as mailboxes, their runs
and stored rows."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg

from daemon.app import Daemon
from daemon.crypto import CredentialCipher
from daemon.providers.base import Credentials
from daemon.providers.imap import ImapProvider
from daemon.store.mailboxes import MailboxStore
from loadtest.dovecot.imap_admin import AdminError, ImapAdmin
from loadtest.dovecot.server import DovecotServer, DovecotUser
from tests.daemon.harness import TEST_KEY


def imap_config(
    server: DovecotServer, user: DovecotUser, folders: list[str] | None = None
) -> dict[str, Any]:
    """A mailbox config for a Dovecot user over plain IMAP on loopback."""
    config: dict[str, Any] = {
        "host": server.host,
        "port": server.port,
        "tls": "none",
        "username": user.name,
        "auth": "password",
    }
    if folders is not None:
        config["folders"] = folders
    return config


async def register_imap(
    store: MailboxStore,
    tenant_id: int,
    server: DovecotServer,
    user: DovecotUser,
    password: str,
    *,
    folders: list[str] | None = None,
    interval_s: int | None = None,
) -> int:
    """Register the user as an IMAP mailbox of the tenant, due now; returns its id."""
    row = await store.create_mailbox(
        tenant_id,
        "imap",
        f"{user.name}@example.test",
        CredentialCipher(TEST_KEY).encrypt(Credentials({"password": password})),
        imap_config(server, user, folders),
        sync_interval_s=interval_s,
        now=time.time(),
    )
    return int(row["id"])


async def runs(db: asyncpg.Pool, mailbox_id: int) -> list[asyncpg.Record]:
    """The mailbox's sync runs, oldest first."""
    return list(
        await db.fetch("SELECT * FROM sync_runs WHERE mailbox_id = $1 ORDER BY id", mailbox_id)
    )


async def rows(db: asyncpg.Pool, mailbox_id: int, folder: str) -> dict[str, Any]:
    """provider_id -> (internet_message_id, updated_at) of one folder's stored messages."""
    found = await db.fetch(
        "SELECT provider_id, internet_message_id, updated_at FROM messages "
        "WHERE mailbox_id = $1 AND folder = $2",
        mailbox_id,
        folder,
    )
    return {r["provider_id"]: (r["internet_message_id"], r["updated_at"]) for r in found}


async def wait_login(
    server: DovecotServer, user: str, password: str, *, accepted: bool, timeout: float = 5
) -> None:
    """Wait until the server accepts (or refuses) ``password`` for ``user``: Dovecot
    re-reads a changed passwd-file at its next check, up to a second later."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            admin = await ImapAdmin.login(server.host, server.port, user, password)
        except AdminError:
            if not accepted:
                return
        else:
            await admin.close()
            if accepted:
                return
        await asyncio.sleep(0.2)
    raise AssertionError(f"the server never {'accepted' if accepted else 'refused'} it")


def imap_provider(daemon: Daemon) -> ImapProvider:
    """The daemon's IMAP provider (to look at its connection pool)."""
    assert daemon.runner is not None
    provider = daemon.runner.providers["imap"]
    assert isinstance(provider, ImapProvider)
    return provider
