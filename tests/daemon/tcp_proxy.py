"""A TCP forwarder on 127.0.0.1 that a test can cut: PostgreSQL or Redis "going down" for
one daemon only, without stopping the servers other tests share."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit


class TcpProxy:
    """Forwards a local port to ``host:port``; ``cut`` drops every connection and refuses
    new ones until ``restore``."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.listen_port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._pipes: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Listen (on a free port the first time, on the same port after a cut)."""
        self._server = await asyncio.start_server(
            self._serve, "127.0.0.1", self.listen_port, reuse_address=True
        )
        self.listen_port = self._server.sockets[0].getsockname()[1]

    def url(self, target_url: str) -> str:
        """``target_url`` pointed at this proxy."""
        parts = urlsplit(target_url)
        userinfo = parts.netloc.rpartition("@")[0]
        netloc = (
            f"{userinfo}@127.0.0.1:{self.listen_port}"
            if userinfo
            else (f"127.0.0.1:{self.listen_port}")
        )
        return urlunsplit(parts._replace(netloc=netloc))

    async def cut(self) -> None:
        """The outage: stop listening and reset every open connection."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def restore(self) -> None:
        """The end of the outage."""
        await self.start()

    async def close(self) -> None:
        """Cut and wait for the forwarding tasks."""
        await self.cut()
        for task in list(self._pipes):
            task.cancel()
        for task in list(self._pipes):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(self.host, self.port)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))
        pipes = [
            asyncio.create_task(self._pipe(reader, up_writer)),
            asyncio.create_task(self._pipe(up_reader, writer)),
        ]
        self._pipes.update(pipes)
        try:
            await asyncio.gather(*pipes, return_exceptions=True)
        finally:
            self._pipes.difference_update(pipes)
            self._writers.difference_update((writer, up_writer))

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.transport.abort()


@contextlib.asynccontextmanager
async def proxied(url: str) -> AsyncIterator[TcpProxy]:
    """A started proxy in front of the server ``url`` names."""
    parts = urlsplit(url)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 0)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.close()
