"""The providers' shared HTTP clients carry no state from one mailbox to another."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, ClassVar

import pytest

from daemon.app import build_providers
from daemon.settings import load_settings


class _CookieSetter(BaseHTTPRequestHandler):
    """Sets a cookie on every answer (as Microsoft's token endpoint does) and records the
    Cookie header of every request."""

    seen: ClassVar[list[str | None]] = []

    def do_GET(self) -> None:
        self.seen.append(self.headers.get("Cookie"))
        self.send_response(200)
        self.send_header("Set-Cookie", "x-ms-gateway-slice=estsfd; Path=/")
        self.send_header("Set-Cookie", "stsservicecookie=tenant-a-session; Path=/")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format: str, *args: Any) -> None:
        return None


@pytest.fixture
def cookie_server() -> Iterator[tuple[str, list[str | None]]]:
    seen: list[str | None] = []
    handler = type("Handler", (_CookieSetter,), {"seen": seen})
    httpd = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}", seen
    finally:
        httpd.shutdown()
        httpd.server_close()


async def test_provider_clients_never_send_a_cookie_another_request_received(
    cookie_server: tuple[str, list[str | None]],
) -> None:
    url, seen = cookie_server
    settings = load_settings(None, {}, environ={})
    providers, _oauth, clients = build_providers(settings, random.Random(1), time.time)
    try:
        assert len(clients) == 2  # Gmail and Graph, each shared by all their mailboxes
        for http in clients:
            for mailbox in ("tenant-a", "tenant-b"):
                r = await http.get(f"{url}/token", headers={"Authorization": f"Bearer {mailbox}"})
                assert r.status_code == 200
            assert not http.cookies
    finally:
        for http in clients:
            await http.aclose()
        for provider in providers.values():
            await provider.aclose()
    assert seen == [None, None, None, None]
