"""httpcore's network layer on plain asyncio streams, for the providers' shared HTTP clients.

httpcore's default backend on asyncio goes through anyio: every read and write opens a
cancel scope and passes a checkpoint, which cost about a tenth of the daemon's CPU per sync
(docs/daemon.md, "Where the CPU goes"). This backend does the same work with asyncio's
streams and ``asyncio.timeout`` and raises the same httpcore exceptions, so httpx behaves
as before: timeouts, refused and dropped connections, TLS.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx
from httpcore._backends.base import SOCKET_OPTION
from httpcore._utils import is_socket_readable

# The signatures are httpcore's interface, timeouts included.
# ruff: noqa: ASYNC109


class AsyncioStream(httpcore.AsyncNetworkStream):
    """One connection as an asyncio reader and writer."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        try:
            async with asyncio.timeout(timeout):
                return await self._reader.read(max_bytes)
        except TimeoutError as exc:  # before OSError: TimeoutError is one
            raise httpcore.ReadTimeout(str(exc)) from exc
        except OSError as exc:
            raise httpcore.ReadError(str(exc)) from exc

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        try:
            async with asyncio.timeout(timeout):
                self._writer.write(buffer)
                await self._writer.drain()
        except TimeoutError as exc:
            raise httpcore.WriteTimeout(str(exc)) from exc
        except (OSError, RuntimeError) as exc:
            # RuntimeError: writing to a transport already closed by the peer.
            raise httpcore.WriteError(str(exc)) from exc

    async def aclose(self) -> None:
        self._writer.close()
        with contextlib.suppress(OSError, ssl.SSLError, RuntimeError):
            await self._writer.wait_closed()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                await self._writer.start_tls(ssl_context, server_hostname=server_hostname)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(str(exc)) from exc
        except (OSError, ssl.SSLError) as exc:
            raise httpcore.ConnectError(str(exc)) from exc
        return self

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":
            # Idle in the pool: readable means the server closed it (or sent garbage).
            sock = self._writer.get_extra_info("socket")
            return self._reader.at_eof() or is_socket_readable(sock)
        key = {"client_addr": "sockname", "server_addr": "peername"}.get(info, info)
        if key not in ("ssl_object", "sockname", "peername", "socket"):
            return None
        return self._writer.get_extra_info(key)


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    """Opens ``AsyncioStream`` connections."""

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        local = (local_address, 0) if local_address else None
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(host, port, local_addr=local)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(str(exc)) from exc
        except OSError as exc:
            raise httpcore.ConnectError(str(exc)) from exc
        _apply(writer, socket_options)
        return AsyncioStream(reader, writer)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_unix_connection(path)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(str(exc)) from exc
        except OSError as exc:
            raise httpcore.ConnectError(str(exc)) from exc
        _apply(writer, socket_options)
        return AsyncioStream(reader, writer)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def _apply(writer: asyncio.StreamWriter, options: Iterable[SOCKET_OPTION] | None) -> None:
    sock: socket.socket | None = writer.get_extra_info("socket")
    if sock is None:
        return
    for option in options or ():
        sock.setsockopt(*option)


class ShardedTransport(httpx.AsyncBaseTransport):
    """Several httpcore pools behind one client, taken in turn.

    httpcore's pool scans all of its connections and waiting requests on every request and
    every response, so one pool of ~70 busy connections spent half the daemon's CPU at 136
    workers (docs/daemon.md, "Where the CPU goes"). Pools of at most ``per_pool`` connections
    keep that scan short; each keeps its own connections alive.

    ``verify`` is httpx's: True checks servers against httpx's CA bundle (the daemon's
    case), an ``ssl.SSLContext`` is used as given (tests trust their own CA with one).
    """

    def __init__(
        self, max_connections: int, per_pool: int = 16, verify: ssl.SSLContext | bool = True
    ) -> None:
        shards = max(1, -(-max_connections // per_pool))
        size = max(1, max_connections // shards)  # never more than max_connections in all
        limits = httpx.Limits(max_connections=size, max_keepalive_connections=size)
        first = httpx.AsyncHTTPTransport(limits=limits, verify=verify)
        # One TLS context for all (httpx's, with its CA bundle, unless given): each costs
        # about a megabyte.
        tls = first._pool._ssl_context or verify
        self._pools = [first] + [
            httpx.AsyncHTTPTransport(limits=limits, verify=tls) for _ in range(shards - 1)
        ]
        for pool in self._pools:
            # Plain asyncio streams under httpcore instead of anyio's (above).
            pool._pool._network_backend = AsyncioBackend()
        self._next = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        pool = self._pools[self._next]
        self._next = (self._next + 1) % len(self._pools)
        return await pool.handle_async_request(request)

    async def aclose(self) -> None:
        for pool in self._pools:
            await pool.aclose()
