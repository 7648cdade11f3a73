"""The providers' shared HTTP client (daemon.app.http_client, providers/httpclient.py)
against real sockets on 127.0.0.1: TLS verified against a CA made here, connections kept
alive and bounded, and the httpx errors callers catch, compared with httpx's own client.

Each test runs on asyncio's loop and on uvloop (the daemon's, daemon.app.run_loop).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import aiohttp
import httpx
import pytest
import uvloop

from daemon.app import http_client
from daemon.providers.httpclient import HttpClient
from tests.daemon.providers.http_servers import Pki, Server, free_port, make_pki

LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop,
    "uvloop": uvloop.new_event_loop,
}
Run = Callable[[Callable[[], Awaitable[None]]], None]


@pytest.fixture(params=sorted(LOOPS))
def run(request: pytest.FixtureRequest) -> Run:
    """Runs a test's coroutine on a fresh loop of the parametrised kind."""
    factory = LOOPS[request.param]

    def run(main: Callable[[], Awaitable[None]]) -> None:
        async def wrapped() -> None:
            await main()

        coro: Coroutine[Any, Any, None] = wrapped()
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(coro)

    return run


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


# --- HTTPS --------------------------------------------------------------------------------


def test_https_keeps_the_connection_alive(run: Run, pki: Pki) -> None:
    async def main() -> None:
        async with (
            Server("answer", pki.server_context()) as server,
            http_client(32, 5.0, verify=pki.client_context()) as client,
        ):
            responses = [await client.get(server.url(f"/{i}")) for i in range(6)]
        assert [r.text for r in responses] == [f"/{i}" for i in range(6)]
        assert [r.status_code for r in responses] == [200] * 6
        assert (server.requests, server.connections) == (6, 1)

    run(main)


def test_https_concurrent_requests_get_their_own_connections(run: Run, pki: Pki) -> None:
    async def main() -> None:
        # The server answers none until all 20 are in, so each needs its own connection.
        async with (
            Server("answer", pki.server_context(), hold=20) as server,
            http_client(32, 5.0, verify=pki.client_context()) as client,
        ):
            responses = await asyncio.gather(*(client.get(server.url(f"/{i}")) for i in range(20)))
        assert [r.text for r in responses] == [f"/{i}" for i in range(20)]
        assert (server.requests, server.connections) == (20, 20)

    run(main)


def test_connections_are_bounded_by_max_connections(run: Run) -> None:
    async def main() -> None:
        async with Server("answer") as server, http_client(4, 5.0) as client:
            responses = await asyncio.gather(*(client.get(server.url(f"/{i}")) for i in range(30)))
        assert [r.text for r in responses] == [f"/{i}" for i in range(30)]
        assert server.requests == 30
        assert 1 <= server.connections <= 4

    run(main)


@pytest.mark.parametrize("trust", ["other CA", "httpx's bundle"])
def test_https_refuses_a_server_signed_by_an_untrusted_ca(run: Run, pki: Pki, trust: str) -> None:
    verify: ssl.SSLContext | bool = (
        pki.client_context(pki.other_ca_file) if trust == "other CA" else True
    )

    async def main() -> None:
        async with (
            Server("answer", pki.server_context()) as server,
            http_client(4, 5.0, verify=verify) as client,
        ):
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED") as caught:
                await client.get(server.url())
        assert server.requests == 0
        # aiohttp's own error stays attached, for the logs.
        assert isinstance(caught.value.__cause__, aiohttp.ClientConnectorError)

    run(main)


# --- failures, as httpx's own client reports them ------------------------------------------


async def _error_of(client: HttpClient | httpx.AsyncClient, url: str) -> type[httpx.HTTPError]:
    async with client:
        with pytest.raises(httpx.HTTPError) as caught:
            await client.get(url)
    return type(caught.value)


async def _errors(verify: ssl.SSLContext | bool, timeout_s: float, url: str) -> list[type]:
    """The error from the daemon's client, then from a plain httpx client, for one URL."""
    ours = await _error_of(http_client(4, timeout_s, verify=verify), url)
    httpx_own = await _error_of(httpx.AsyncClient(timeout=timeout_s, verify=verify), url)
    return [ours, httpx_own]


def test_refused_connection_is_connect_error(run: Run) -> None:
    async def main() -> None:
        url = f"http://127.0.0.1:{free_port()}/"
        assert await _errors(True, 5.0, url) == [httpx.ConnectError] * 2

    run(main)


def test_silent_server_is_read_timeout(run: Run, pki: Pki) -> None:
    async def main() -> None:
        async with Server("silent", pki.server_context()) as server:
            # Connect and TLS on loopback take milliseconds; the read is what times out.
            errors = await _errors(pki.client_context(), 0.2, server.url())
        assert errors == [httpx.ReadTimeout] * 2
        assert server.requests == 2

    run(main)


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
def test_close_mid_response_matches_httpx(run: Run, pki: Pki, tls: bool) -> None:
    async def main() -> None:
        async with Server("truncate", pki.server_context() if tls else None) as server:
            errors = await _errors(pki.client_context(), 5.0, server.url())
        assert errors == [httpx.RemoteProtocolError] * 2

    run(main)


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
def test_connection_closed_while_idle_is_not_reused(run: Run, pki: Pki, tls: bool) -> None:
    async def main() -> None:
        async with (
            Server("answer_then_close", pki.server_context() if tls else None) as server,
            http_client(4, 5.0, verify=pki.client_context()) as client,
        ):
            first = await client.get(server.url("/first"))
            await server.closed_idle.wait()
            second = await client.get(server.url("/second"))
        assert (first.text, second.text) == ("/first", "/second")
        assert server.connections == 2

    run(main)


def test_requests_carry_query_body_and_headers_as_given(run: Run) -> None:
    """The request line and body the server sees: an encoded link is sent as given, params
    are appended, a form is urlencoded."""
    seen: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            (
                int(h.split(b":")[1])
                for h in head.split(b"\r\n")
                if h.lower().startswith(b"content-length")
            ),
            0,
        )
        seen.append(head.split(b"\r\n")[0] + b" " + await reader.readexactly(length))
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 8\r\n"
            b'Connection: close\r\n\r\n{"a": 1}'
        )
        await writer.drain()
        writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        base = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        async with http_client(4, 5.0) as client:
            link = await client.request("GET", f"{base}/d?$deltatoken=a%2Bb%3D&$select=x,y")
            listed = await client.request("GET", f"{base}/m", params={"maxResults": 5, "q": "a b"})
            token = await client.post(f"{base}/token", data={"grant_type": "refresh_token"})
        server.close()
        assert [r.json() for r in (link, listed, token)] == [{"a": 1}] * 3
        assert link.headers["content-type"] == "application/json"
        assert seen == [
            b"GET /d?$deltatoken=a%2Bb%3D&$select=x,y HTTP/1.1 ",
            b"GET /m?maxResults=5&q=a+b HTTP/1.1 ",
            b"POST /token HTTP/1.1 grant_type=refresh_token",
        ]

    run(main)


@pytest.mark.parametrize("bypass", [False, True], ids=["proxied", "no_proxy"])
def test_proxy_from_the_environment(
    run: Run, monkeypatch: pytest.MonkeyPatch, bypass: bool
) -> None:
    """``HTTP_PROXY`` / ``NO_PROXY`` as httpx honours them, read when the client is made."""
    seen: list[bytes] = []

    async def proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        seen.append(head.split(b"\r\n")[0])
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        writer.close()

    async def main() -> None:
        server = await asyncio.start_server(proxy, "127.0.0.1", 0)
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}")
        if bypass:
            monkeypatch.setenv("NO_PROXY", "mail.example.invalid")
        async with http_client(4, 5.0) as client:
            if bypass:
                # Straight to the host, whose name does not resolve.
                with pytest.raises(httpx.ConnectError):
                    await client.get("http://mail.example.invalid/x")
            else:
                assert (await client.get("http://mail.example.invalid/x")).text == "ok"
        server.close()
        assert seen == ([] if bypass else [b"GET http://mail.example.invalid/x HTTP/1.1"])

    run(main)
