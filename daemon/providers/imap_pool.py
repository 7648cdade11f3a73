"""Logged-in IMAP connections kept per account and reused across syncs.

An account (host, port, username) never has more than ``limit`` connections open from
this process: servers cap simultaneous sessions per user (Gmail 15, Dovecot 10 per user
and client IP, Exchange Online about 20) and answer the next login with an error. A sync
takes a connection, uses it, and gives it back; the next sync of the account skips the
TCP/TLS handshake and LOGIN. A connection idle longer than ``keepalive_s`` is checked
with NOOP before reuse, one idle longer than ``max_idle_s`` is closed (servers log out
idle sessions after 30 minutes or less), and one that failed is dropped.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import structlog

from daemon.errors import ProviderError
from daemon.providers.base import CallGate
from daemon.providers.imap_client import ImapConnection

log = structlog.get_logger(__name__)

AccountKey = tuple[str, int, str]


@dataclass(slots=True)
class PoolStats:
    """Counters for metrics and tests."""

    logins: int = 0
    reused: int = 0
    noop_checks: int = 0
    discarded: int = 0
    waits: int = 0
    peak_open: dict[AccountKey, int] = field(default_factory=dict)


@dataclass(slots=True)
class _Account:
    idle: list[ImapConnection] = field(default_factory=list)
    open: int = 0
    cond: asyncio.Condition = field(default_factory=asyncio.Condition)


class ImapPool:
    """Bounded per-account pools of authenticated connections."""

    def __init__(
        self, limit: int, keepalive_s: float, max_idle_s: float, clock: Callable[[], float]
    ) -> None:
        if limit < 1:
            raise ValueError("connection limit must be >= 1")
        self.limit = limit
        self.keepalive_s = keepalive_s
        self.max_idle_s = max_idle_s
        self._clock = clock
        self._accounts: dict[AccountKey, _Account] = {}
        self.stats = PoolStats()
        self._closed = False

    def open_count(self, key: AccountKey) -> int:
        """Connections of ``key`` open now (idle or in use)."""
        acct = self._accounts.get(key)
        return acct.open if acct else 0

    async def _take(self, key: AccountKey, acct: _Account) -> tuple[ImapConnection | None, bool]:
        """An idle connection and whether it needs a NOOP, or (None, _) with a slot reserved."""
        stale: list[ImapConnection] = []
        try:
            async with acct.cond:
                while True:
                    while acct.idle:
                        conn = acct.idle.pop()
                        idle_for = self._clock() - conn.last_used
                        if conn.broken or idle_for > self.max_idle_s:
                            acct.open -= 1
                            stale.append(conn)
                            continue
                        return conn, idle_for > self.keepalive_s
                    if acct.open < self.limit:
                        acct.open += 1
                        peak = self.stats.peak_open
                        peak[key] = max(peak.get(key, 0), acct.open)
                        return None, False
                    self.stats.waits += 1
                    await acct.cond.wait()
        finally:
            for conn in stale:
                self.stats.discarded += 1
                await conn.close()

    async def _give_back(self, acct: _Account, conn: ImapConnection | None) -> None:
        async with acct.cond:
            if conn is None or conn.broken or self._closed:
                acct.open -= 1
            else:
                conn.last_used = self._clock()
                acct.idle.append(conn)
            acct.cond.notify()
        if conn is not None and (conn.broken or self._closed):
            self.stats.discarded += 1
            await conn.close()

    @asynccontextmanager
    async def connection(
        self,
        key: AccountKey,
        opener: Callable[[], Awaitable[ImapConnection]],
        gate: CallGate,
    ) -> AsyncIterator[ImapConnection]:
        """A logged-in connection for ``key``; ``opener`` makes (and logs in) a new one."""
        if self._closed:
            raise RuntimeError("the IMAP pool is closed")
        acct = self._accounts.setdefault(key, _Account())
        while True:
            conn, check = await self._take(key, acct)
            if conn is None:
                try:
                    conn = await opener()
                except BaseException:
                    await self._give_back(acct, None)
                    raise
                self.stats.logins += 1
                break
            if check:
                self.stats.noop_checks += 1
                await gate.acquire("imap.noop")
                if not await conn.noop():
                    log.info("imap.pool.stale_connection", host=key[0], port=key[1])
                    await self._give_back(acct, conn)
                    continue
            self.stats.reused += 1
            break
        try:
            yield conn
        except BaseException as e:
            # A provider error leaves the session between commands (and a transport failure
            # has already marked it broken); anything else, cancellation included, may have
            # interrupted a command mid-answer, so the session cannot be trusted again.
            if not isinstance(e, ProviderError):
                conn.broken = True
            raise
        finally:
            await self._give_back(acct, conn)

    async def aclose(self) -> None:
        """Log out every idle connection; in-use ones are closed when given back."""
        self._closed = True
        for acct in self._accounts.values():
            async with acct.cond:
                idle, acct.idle = acct.idle, []
                acct.open -= len(idle)
            for conn in idle:
                await conn.close()
