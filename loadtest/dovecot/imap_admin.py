"""Changing a test mailbox over IMAP, as another mail client would (tests, load tests).

Changes made this way get real UIDs and modseqs from Dovecot, which is what incremental
sync has to notice. Bulk seeding is faster with ``DovecotServer.write_messages``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from datetime import datetime
from types import TracebackType

from aioimaplib import aioimaplib as lib

from daemon.providers.imap_client import fixed_client
from daemon.providers.imap_parse import encode_mailbox
from daemon.providers.imap_uidset import format_uid_set


class AdminError(RuntimeError):
    """An IMAP command of the admin client failed."""


class ImapAdmin:
    """A plain-IMAP client logged in as one user."""

    def __init__(self, client: lib.IMAP4) -> None:
        self._c = client

    @classmethod
    async def login(cls, host: str, port: int, user: str, password: str) -> ImapAdmin:
        """Connect without TLS (loopback test servers) and log in."""
        # aioimaplib as patched by the provider: the stock one breaks on long answers.
        client = fixed_client(host, port, timeout_s=30)
        await client.wait_hello_from_server()
        admin = cls(client)
        admin._check(await client.login(user, password), "LOGIN")
        return admin

    @staticmethod
    def _check(resp: lib.Response, what: str) -> lib.Response:
        if resp.result != "OK":
            raise AdminError(f"{what} failed: {resp.result} {resp.lines[-1:]!r}")
        return resp

    async def append(
        self,
        folder: str,
        data: bytes,
        flags: Iterable[str] = (),
        date: datetime | None = None,
    ) -> None:
        """APPEND one message."""
        flag_text = " ".join(flags)
        resp = await self._c.append(
            data, mailbox=encode_mailbox(folder), flags=f"({flag_text})", date=date
        )
        self._check(resp, "APPEND")

    async def select(self, folder: str) -> None:
        """SELECT ``folder``."""
        self._check(await self._c.select(encode_mailbox(folder)), f"SELECT {folder}")

    async def store(self, folder: str, uids: Iterable[int], op: str, flags: Iterable[str]) -> None:
        """UID STORE ``op`` (``+FLAGS``, ``-FLAGS``, ``FLAGS``) on ``uids`` of ``folder``."""
        await self.select(folder)
        # .SILENT: no FETCH line per message back.
        silent = op if op.upper().endswith(".SILENT") else f"{op}.SILENT"
        resp = await self._c.uid("store", format_uid_set(uids), silent, f"({' '.join(flags)})")
        self._check(resp, "UID STORE")

    async def expunge(self, folder: str, uids: Iterable[int]) -> None:
        """Delete ``uids`` of ``folder`` for good (flag \\Deleted, UID EXPUNGE)."""
        uid_list = list(uids)
        await self.store(folder, uid_list, "+FLAGS", ["\\Deleted"])
        self._check(await self._c.uid("expunge", format_uid_set(uid_list)), "UID EXPUNGE")

    async def create(self, folder: str) -> None:
        """CREATE a folder."""
        self._check(await self._c.create(encode_mailbox(folder)), f"CREATE {folder}")

    async def delete(self, folder: str) -> None:
        """DELETE a folder (after leaving it, since Dovecot refuses the selected one)."""
        await self.select("INBOX")
        self._check(await self._c.delete(encode_mailbox(folder)), f"DELETE {folder}")

    async def close(self) -> None:
        """LOGOUT."""
        with contextlib.suppress(OSError, TimeoutError, lib.AioImapException):
            await self._c.logout()

    async def __aenter__(self) -> ImapAdmin:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
