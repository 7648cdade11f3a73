"""One real Dovecot for the provider tests; every test gets its own users."""

from __future__ import annotations

import re
import shutil
import zlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest

from daemon.providers.base import Credentials, MailboxContext
from daemon.ratelimit import CountingGate
from loadtest.dovecot.server import DovecotServer, DovecotUser, scratch_dir


@pytest.fixture(scope="session")
def dovecot() -> Iterator[DovecotServer]:
    """Dovecot on a free loopback port in a fresh directory, for the whole session."""
    # Not pytest's tmp_path: it is private to root, and Dovecot runs as nobody.
    base = scratch_dir()
    server = DovecotServer(base, max_userip_connections=50)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def fresh_dovecot() -> Iterator[DovecotServer]:
    """A Dovecot of its own, for tests that fail logins: Dovecot then delays every login
    from the same address for seconds (auth penalty), which would slow the other tests."""
    base = scratch_dir()
    server = DovecotServer(base)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def new_user(
    dovecot: DovecotServer, request: pytest.FixtureRequest
) -> Callable[[str], DovecotUser]:
    """Makes users named after the test, so tests never share a mailbox."""
    stem = re.sub(r"[^A-Za-z0-9]", "", request.node.name)[-40:]

    def make(suffix: str = "") -> DovecotUser:
        n = sum(1 for _ in dovecot.users())
        return dovecot.add_user(f"{stem}{suffix}{n}", f"pw-{stem}-{n}")

    return make


async def _save(_c: Credentials) -> None:
    return None


@pytest.fixture
def context_for(
    dovecot: DovecotServer,
) -> Callable[..., MailboxContext]:
    """A ``MailboxContext`` for a Dovecot user (plain IMAP on loopback)."""

    def make(
        user: DovecotUser,
        *,
        server: DovecotServer | None = None,
        password: str | None = None,
        folders: list[str] | None = None,
        port: int | None = None,
        extra: Mapping[str, Any] | None = None,
        tokens: Any = None,
    ) -> MailboxContext:
        config: dict[str, Any] = {
            "host": dovecot.host,
            "port": port or (server or dovecot).port,
            "tls": "none",
            "username": user.name,
            "auth": "password",
        }
        if folders is not None:
            config["folders"] = folders
        config.update(extra or {})
        ctx = MailboxContext(
            mailbox_id=zlib.crc32(user.name.encode()),
            address=f"{user.name}@example.test",
            credentials=Credentials({"password": password or user.password}),
            config=config,
            gate=CountingGate(),
            save_credentials=_save,
        )
        if tokens is not None:
            ctx.tokens = tokens
        return ctx

    return make
