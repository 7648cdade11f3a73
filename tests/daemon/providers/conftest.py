"""One real Dovecot for the provider tests; every test gets its own users."""

from __future__ import annotations

import json
import re
import shutil
import threading
import zlib
from collections.abc import Callable, Iterator, Mapping
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qs

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


class _Introspection(BaseHTTPRequestHandler):
    """RFC 7662 token introspection, standing in for the OAuth provider Dovecot asks."""

    valid: ClassVar[dict[str, str]] = {}

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        token = parse_qs(body).get("token", [""])[0]
        user = self.valid.get(token)
        answer = {"active": True, "username": user} if user else {"active": False}
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        return None


@pytest.fixture(scope="session")
def oauth_dovecot() -> Iterator[tuple[DovecotServer, dict[str, str]]]:
    """A Dovecot accepting XOAUTH2 tokens listed in the returned dict (token -> user)."""
    valid: dict[str, str] = {}
    handler = type("Handler", (_Introspection,), {"valid": valid})
    httpd = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    base = scratch_dir()
    url = f"http://127.0.0.1:{httpd.server_port}/introspect"
    server = DovecotServer(base, oauth2_introspection_url=url)
    server.start()
    try:
        yield server, valid
    finally:
        server.stop()
        httpd.shutdown()
        httpd.server_close()
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
        mailbox_id: int | None = None,
        sync_interval_s: float | None = None,
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
            mailbox_id=zlib.crc32(user.name.encode()) if mailbox_id is None else mailbox_id,
            address=f"{user.name}@example.test",
            credentials=Credentials({"password": password or user.password}),
            config=config,
            gate=CountingGate(),
            save_credentials=_save,
            sync_interval_s=sync_interval_s,
        )
        if tokens is not None:
            ctx.tokens = tokens
        return ctx

    return make
