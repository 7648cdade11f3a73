"""A TCP proxy that adds latency, to put a realistic network between the daemon and Dovecot.

Every chunk read from one side is written to the other ``delay`` seconds later, drawn per
chunk from a seeded distribution, never before an earlier chunk of the same direction (so
nothing is reordered). An IMAP command round trip therefore costs roughly one upstream plus
one downstream delay, however many packets the answer takes, like a real link's RTT.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import re
from dataclasses import dataclass, field
from types import TracebackType

import structlog

log = structlog.get_logger(__name__)

_KINDS = ("constant", "uniform", "exponential", "lognormal")


@dataclass(frozen=True, slots=True)
class Delay:
    """A per-chunk delay distribution in seconds.

    ``constant``: ``a``; ``uniform``: between ``a`` and ``b``; ``exponential``: mean ``a``;
    ``lognormal``: median ``a``, sigma ``b``.
    """

    kind: str = "constant"
    a: float = 0.0
    b: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"delay kind {self.kind!r}: use one of {', '.join(_KINDS)}")
        if self.a < 0 or self.b < 0:
            raise ValueError("delay parameters must be >= 0")
        if self.kind == "uniform" and self.b < self.a:
            raise ValueError("uniform delay: the upper bound must be >= the lower bound")

    def sample(self, rng: random.Random) -> float:
        """One delay in seconds."""
        if self.kind == "constant":
            return self.a
        if self.kind == "uniform":
            return rng.uniform(self.a, self.b)
        if self.kind == "exponential":
            return rng.expovariate(1.0 / self.a) if self.a > 0 else 0.0
        return rng.lognormvariate(math.log(self.a), self.b) if self.a > 0 else 0.0

    @classmethod
    def parse(cls, spec: str) -> Delay:
        """``50ms``, ``0.05``, ``uniform:10ms:80ms``, ``exponential:20ms``,
        ``lognormal:30ms:0.6`` (the sigma is unitless)."""
        kind, *params = spec.strip().split(":")
        if kind not in _KINDS:
            params, kind = [kind], "constant"
        values = []
        for i, p in enumerate(params):
            unitless = kind == "lognormal" and i == 1
            values.append(float(p) if unitless else _seconds(p))
        need = {"constant": 1, "uniform": 2, "exponential": 1, "lognormal": 2}[kind]
        if len(values) != need:
            raise ValueError(f"delay {spec!r}: {kind} takes {need} parameter(s)")
        return cls(kind, *values)


def _seconds(text: str) -> float:
    m = re.fullmatch(r"\s*([0-9.]+)\s*(ms|s)?\s*", text)
    if m is None:
        raise ValueError(f"delay value {text!r} is not a number with optional ms/s")
    value = float(m.group(1))
    return value / 1000 if m.group(2) == "ms" else value


@dataclass(slots=True)
class ProxyStats:
    """Connections accepted and bytes forwarded per direction."""

    connections: int = 0
    bytes_up: int = 0  # client -> server
    bytes_down: int = 0  # server -> client


@dataclass
class DelayProxy:
    """Listens on ``listen_host:listen_port`` (0 = any free port) and forwards to the target."""

    target_host: str
    target_port: int
    up: Delay = field(default_factory=Delay)
    down: Delay = field(default_factory=Delay)
    seed: int = 0
    listen_host: str = "127.0.0.1"
    listen_port: int = 0
    stats: ProxyStats = field(default_factory=ProxyStats)
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)

    @property
    def port(self) -> int:
        """The port actually listened on."""
        if self._server is None:
            raise RuntimeError("proxy not started")
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        """Start listening."""
        self._server = await asyncio.start_server(self._accept, self.listen_host, self.listen_port)
        log.info(
            "delay_proxy.started",
            listen=f"{self.listen_host}:{self.port}",
            target=f"{self.target_host}:{self.target_port}",
            up=str(self.up),
            down=str(self.down),
        )

    async def aclose(self) -> None:
        """Stop listening and cut every open connection."""
        if self._server is not None:
            self._server.close()
        # Closing the sockets ends each connection's pipes; cancelling a handler instead
        # makes asyncio's stream server log the CancelledError as an error.
        for writer in list(self._writers):
            writer.close()
        if self._tasks:
            _done, pending = await asyncio.wait(list(self._tasks), timeout=2.0)
            for task in pending:
                task.cancel()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> DelayProxy:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _accept(self, c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        n = self.stats.connections
        self.stats.connections += 1
        try:
            s_reader, s_writer = await asyncio.open_connection(self.target_host, self.target_port)
        except OSError as e:
            log.warning("delay_proxy.upstream_failed", error=str(e))
            c_writer.close()
            self._tasks.discard(task)
            return
        # Seeded per connection and direction: runs repeat, connections stay independent.
        up_rng = random.Random(f"{self.seed}:{n}:up")
        down_rng = random.Random(f"{self.seed}:{n}:down")
        self._writers.update((c_writer, s_writer))
        try:
            await asyncio.gather(
                self._pipe(c_reader, s_writer, self.up, up_rng, True),
                self._pipe(s_reader, c_writer, self.down, down_rng, False),
            )
        finally:
            for w in (c_writer, s_writer):
                w.close()
                self._writers.discard(w)
            self._tasks.discard(task)

    async def _pipe(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        delay: Delay,
        rng: random.Random,
        upstream: bool,
    ) -> None:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def read() -> None:
            last_due = 0.0
            while True:
                try:
                    data = await reader.read(65536)
                except OSError:
                    data = b""
                due = max(loop.time() + delay.sample(rng), last_due)
                last_due = due
                await queue.put((due, data))
                if not data:
                    return

        reading = asyncio.ensure_future(read())
        try:
            while True:
                due, data = await queue.get()
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                if not data:
                    if writer.can_write_eof():
                        with contextlib.suppress(OSError):
                            writer.write_eof()
                    return
                if upstream:
                    self.stats.bytes_up += len(data)
                else:
                    self.stats.bytes_down += len(data)
                writer.write(data)
                try:
                    await writer.drain()
                except OSError:
                    return
        finally:
            reading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reading


async def run_proxy(proxy: DelayProxy) -> None:
    """Serve until cancelled (the CLI's foreground mode)."""
    await proxy.start()
    try:
        await asyncio.Event().wait()
    finally:
        await proxy.aclose()
