"""The providers' shared HTTP client (daemon.app.http_client, on providers/netbackend.py)
against real sockets on 127.0.0.1: TLS verified against a CA made here, connections kept
alive per shard, concurrent requests over several shards, and the httpx errors callers
catch, compared with httpx's own backend.

Each test runs on asyncio's loop and on uvloop (the daemon's, daemon.app.run_loop): the
streams under httpcore are the event loop's, so both must behave the same.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import socket
import ssl
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import httpx
import pytest
import uvloop
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from daemon.app import http_client
from daemon.providers.netbackend import AsyncioStream

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


# --- certificates -------------------------------------------------------------------------


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _ca(common_name: str, now: dt.datetime) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True)
class Pki:
    """A CA with a server certificate for 127.0.0.1 and localhost, and a second, unrelated CA."""

    ca_file: Path
    other_ca_file: Path
    cert_file: Path
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context

    def client_context(self, ca_file: Path | None = None) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=ca_file or self.ca_file)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    base = tmp_path_factory.mktemp("pki")
    # Real time: the TLS stack checks validity against the system clock.
    now = dt.datetime.now(dt.UTC)
    ca_key, ca_cert = _ca("mailsync test CA", now)
    _, other_cert = _ca("some other CA", now)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(2)
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pki = Pki(base / "ca.pem", base / "other-ca.pem", base / "server.pem", base / "server.key")
    pki.ca_file.write_bytes(_pem(ca_cert))
    pki.other_ca_file.write_bytes(_pem(other_cert))
    pki.cert_file.write_bytes(_pem(cert))
    pki.key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return pki


# --- a small HTTP/1.1 server --------------------------------------------------------------

Mode = Literal["answer", "silent", "truncate", "answer_then_close"]


class Server:
    """HTTP/1.1 on 127.0.0.1 (over TLS when given a context), counting connections.

    ``answer`` keeps connections alive and answers every request with its path, holding all
    answers until ``hold`` requests have arrived; ``silent`` reads the request and never
    answers; ``truncate`` sends headers and part of the body, then closes; and
    ``answer_then_close`` answers one request with keep-alive, then closes the connection.
    """

    def __init__(self, mode: Mode, tls: ssl.SSLContext | None = None, hold: int = 0) -> None:
        self.mode = mode
        self.tls = tls
        self.hold = hold
        self.connections = 0
        self.requests = 0
        self.all_arrived = asyncio.Event()
        self.closed_idle = asyncio.Event()
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> Server:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=self.tls)
        if self.hold == 0:
            self.all_arrived.set()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    def url(self, path: str = "/") -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{port}{path}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        self.connections += 1
        try:
            await self._serve(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass  # the client went away
        finally:
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            path = head.split(b" ", 2)[1]
            self.requests += 1
            if self.mode == "silent":
                await reader.read()  # until the client gives up
                return
            if self.mode == "truncate":
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 10)
                await writer.drain()
                return
            if self.requests == self.hold:
                self.all_arrived.set()
            await self.all_arrived.wait()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(path), path))
            await writer.drain()
            if self.mode == "answer_then_close":
                writer.close()
                await writer.wait_closed()
                self.closed_idle.set()
                return


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# --- HTTPS --------------------------------------------------------------------------------


def test_https_keeps_one_connection_per_shard(run: Run, pki: Pki) -> None:
    async def main() -> None:
        async with (
            Server("answer", pki.server_context()) as server,
            # 32 connections: two shards of 16, taken in turn.
            http_client(32, 5.0, verify=pki.client_context()) as client,
        ):
            responses = [await client.get(server.url(f"/{i}")) for i in range(6)]
        assert [r.text for r in responses] == [f"/{i}" for i in range(6)]
        assert (server.requests, server.connections) == (6, 2)
        stream = responses[-1].extensions["network_stream"]
        assert isinstance(stream, AsyncioStream)
        peer = stream.get_extra_info("ssl_object").getpeercert()
        assert ("IP Address", "127.0.0.1") in peer["subjectAltName"]

    run(main)


def test_https_concurrent_requests_spread_over_shards(run: Run, pki: Pki) -> None:
    async def main() -> None:
        # The server answers none until all 20 are in, so each needs its own connection:
        # more than one shard's 16.
        async with (
            Server("answer", pki.server_context(), hold=20) as server,
            http_client(32, 5.0, verify=pki.client_context()) as client,
        ):
            responses = await asyncio.gather(*(client.get(server.url(f"/{i}")) for i in range(20)))
        assert [r.text for r in responses] == [f"/{i}" for i in range(20)]
        assert (server.requests, server.connections) == (20, 20)

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
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await client.get(server.url())
        assert server.requests == 0

    run(main)


# --- failures, as httpx's own backend reports them -----------------------------------------


async def _error_of(client: httpx.AsyncClient, url: str) -> type[httpx.HTTPError]:
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
        url = f"http://127.0.0.1:{_free_port()}/"
        assert await _errors(True, 5.0, url) == [httpx.ConnectError] * 2

    run(main)


def test_silent_server_is_read_timeout(run: Run, pki: Pki) -> None:
    async def main() -> None:
        async with Server("silent", pki.server_context()) as server:
            # Connect and TLS on loopback take milliseconds; the read is what times out.
            errors = await _errors(pki.client_context(), 0.1, server.url())
        assert errors == [httpx.ReadTimeout] * 2
        assert server.requests == 2

    run(main)


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
def test_close_mid_response_matches_httpx(run: Run, pki: Pki, tls: bool) -> None:
    async def main() -> None:
        async with Server("truncate", pki.server_context() if tls else None) as server:
            errors = await _errors(pki.client_context(), 5.0, server.url())
        assert errors[0] in (httpx.RemoteProtocolError, httpx.ReadError)
        assert errors[0] == errors[1]

    run(main)


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
def test_connection_closed_while_idle_is_not_reused(run: Run, pki: Pki, tls: bool) -> None:
    async def main() -> None:
        async with (
            Server("answer_then_close", pki.server_context() if tls else None) as server,
            # One shard, so the second request would take the first one's connection.
            http_client(4, 5.0, verify=pki.client_context()) as client,
        ):
            first = await client.get(server.url("/first"))
            await server.closed_idle.wait()
            second = await client.get(server.url("/second"))
        assert (first.text, second.text) == ("/first", "/second")
        assert server.connections == 2

    run(main)
