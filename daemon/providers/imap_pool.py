"""Logged-in IMAP connections kept per login identity and reused across syncs.

A connection serves only the login it was opened with (``imap_identity.LoginIdentity``:
server, user name, auth kind, mailbox and a digest of its secrets): a mailbox never rides
on a session another mailbox, or its own older credentials, logged in. A login is trusted
for ``reauth_after_s`` (from ``policy.imap_reauth_after``, under the mailbox's sync interval),
then replaced by a new LOGIN, so a password changed or revoked on the server is noticed by
the next scheduled sync. Within that bound, retries and syncs on demand skip the TCP/TLS
handshake and LOGIN.

An account (host, port, username) never has more than ``limit`` connections open from this
process, whichever logins they belong to: servers cap simultaneous sessions per user (Gmail
15, Dovecot 10 per user and client IP, Exchange Online about 20) and refuse the next login.
When the cap is reached and the idle connections belong to other logins, the least recently
used one is closed to make room. A connection idle longer than ``keepalive_s`` is checked
with NOOP before reuse, one whose sync failed with anything but a non-transient provider
error is dropped, and a sweeper closes every idle connection that can no longer serve (idle
longer than ``max_idle_s``, or its login past the bound) about every ``max_idle_s / 3``, so
sessions are not held until their account's next sync.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import structlog

from daemon.errors import ProviderError, TransientError
from daemon.policy import imap_sweep_every
from daemon.providers.base import CallGate
from daemon.providers.imap_client import ImapConnection
from daemon.providers.imap_identity import (
    AccountKey,
    LoginIdentity,
    Reuse,
    ReuseLimits,
    reuse_verdict,
)

log = structlog.get_logger(__name__)


@dataclass(slots=True)
class PoolStats:
    """Counters for metrics and tests."""

    logins: int = 0
    reused: int = 0
    noop_checks: int = 0
    discarded: int = 0
    waits: int = 0
    # Closed because their mailbox now logs in with other credentials or server settings.
    superseded: int = 0
    # Closed because the login was older than the re-authentication bound.
    reauth_expired: int = 0
    # Idle connections of other logins closed to make room under the account's limit.
    evicted: int = 0
    peak_open: dict[AccountKey, int] = field(default_factory=dict)


@dataclass(slots=True)
class _Idle:
    identity: LoginIdentity
    conn: ImapConnection
    reauth_after_s: float


@dataclass(slots=True)
class _Account:
    idle: list[_Idle] = field(default_factory=list)  # least recently used first
    open: int = 0
    cond: asyncio.Condition = field(default_factory=asyncio.Condition)


class ImapPool:
    """Bounded per-account pools of authenticated connections, each reusable only by the
    login identity that opened it."""

    def __init__(
        self, limit: int, keepalive_s: float, max_idle_s: float, clock: Callable[[], float]
    ) -> None:
        if limit < 1:
            raise ValueError("connection limit must be >= 1")
        self.limit = limit
        self.limits = ReuseLimits(keepalive_s, max_idle_s)
        self._clock = clock
        self._accounts: dict[AccountKey, _Account] = {}
        # Where each mailbox last pooled a connection, to find its old logins when its
        # server settings (host, port, user name) change.
        self._home: dict[int, AccountKey] = {}
        self.stats = PoolStats()
        self._closed = False
        self._sweeper: asyncio.Task[None] | None = None

    def open_count(self, key: AccountKey) -> int:
        """Connections of account ``key`` open now (idle or in use)."""
        acct = self._accounts.get(key)
        return acct.open if acct else 0

    def _sweep(self, acct: _Account, who: LoginIdentity, reauth_s: float) -> list[_Idle]:
        """Take out idle connections that may never serve again (caller holds the lock)."""
        now = self._clock()
        keep: list[_Idle] = []
        gone: list[_Idle] = []
        for e in acct.idle:
            bound = reauth_s if e.identity == who else e.reauth_after_s
            c = e.conn
            verdict = reuse_verdict(now, c.created_at, c.last_used, c.broken, self.limits, bound)
            if who.supersedes(e.identity):
                self.stats.superseded += 1
                gone.append(e)
            elif verdict is Reuse.DISCARD:
                if not c.broken and now - c.created_at >= bound:
                    self.stats.reauth_expired += 1
                gone.append(e)
            else:
                keep.append(e)
        acct.idle = keep
        acct.open -= len(gone)
        return gone

    async def _take(
        self, who: LoginIdentity, acct: _Account, reauth_s: float
    ) -> tuple[ImapConnection | None, bool]:
        """An idle connection of ``who`` and whether it needs a NOOP, or (None, _) with a
        slot reserved for a new login."""
        stale: list[_Idle] = []
        try:
            async with acct.cond:
                while True:
                    stale += self._sweep(acct, who, reauth_s)
                    for i in range(len(acct.idle) - 1, -1, -1):
                        e = acct.idle[i]
                        if e.identity == who:
                            del acct.idle[i]
                            c = e.conn
                            verdict = reuse_verdict(
                                self._clock(), c.created_at, c.last_used, c.broken,
                                self.limits, reauth_s,
                            )  # fmt: skip
                            return c, verdict is Reuse.NOOP_FIRST
                    if acct.open < self.limit:
                        acct.open += 1
                        peak = self.stats.peak_open
                        peak[who.account] = max(peak.get(who.account, 0), acct.open)
                        return None, False
                    if acct.idle:
                        stale.append(acct.idle.pop(0))
                        acct.open -= 1
                        self.stats.evicted += 1
                        continue
                    self.stats.waits += 1
                    await acct.cond.wait()
        finally:
            await self._close_all(stale)

    async def _close_all(self, entries: list[_Idle]) -> None:
        for e in entries:
            self.stats.discarded += 1
            await e.conn.close()

    async def _drop_moved(self, who: LoginIdentity) -> None:
        """Close idle logins of ``who``'s mailbox pooled under another account."""
        home = self._home.get(who.mailbox_id)
        if home is None or home == who.account or home not in self._accounts:
            return
        acct = self._accounts[home]
        async with acct.cond:
            gone = [e for e in acct.idle if e.identity.mailbox_id == who.mailbox_id]
            acct.idle = [e for e in acct.idle if e.identity.mailbox_id != who.mailbox_id]
            acct.open -= len(gone)
            self.stats.superseded += len(gone)
            acct.cond.notify(len(gone))
        await self._close_all(gone)

    async def _give_back(
        self, who: LoginIdentity, acct: _Account, conn: ImapConnection | None, reauth_s: float
    ) -> None:
        async with acct.cond:
            if conn is None or conn.broken or self._closed:
                acct.open -= 1
            else:
                conn.last_used = self._clock()
                acct.idle.append(_Idle(who, conn, reauth_s))
                self._home[who.mailbox_id] = who.account
            acct.cond.notify()
        if conn is not None and (conn.broken or self._closed):
            self.stats.discarded += 1
            await conn.close()

    @asynccontextmanager
    async def connection(
        self,
        who: LoginIdentity,
        opener: Callable[[], Awaitable[ImapConnection]],
        gate: CallGate,
        reauth_after_s: float,
    ) -> AsyncIterator[ImapConnection]:
        """A connection logged in as ``who`` less than ``reauth_after_s`` ago; ``opener``
        makes (and logs in) a new one."""
        if self._closed:
            raise RuntimeError("the IMAP pool is closed")
        if self._sweeper is None:
            self._sweeper = asyncio.create_task(self._sweep_forever())
        await self._drop_moved(who)
        acct = self._accounts.setdefault(who.account, _Account())
        while True:
            conn, check = await self._take(who, acct, reauth_after_s)
            if conn is None:
                try:
                    conn = await opener()
                except BaseException:
                    await self._give_back(who, acct, None, reauth_after_s)
                    raise
                self.stats.logins += 1
                break
            if check:
                self.stats.noop_checks += 1
                await gate.acquire("imap.noop")
                if not await conn.noop():
                    log.info("imap.pool.stale_connection", host=who.host, port=who.port)
                    await self._give_back(who, acct, conn, reauth_after_s)
                    continue
            self.stats.reused += 1
            break
        try:
            yield conn
        except BaseException as e:
            # Anything but a provider error (cancellation included) may have interrupted a
            # command mid-answer. A transient provider error (a refused SELECT, an answer we
            # could not read, a timeout) may mean the server's view of this session is off:
            # Dovecot keeps refusing a folder whose index was rebuilt under the session.
            if not isinstance(e, ProviderError) or isinstance(e, TransientError):
                conn.broken = True
            raise
        finally:
            await self._give_back(who, acct, conn, reauth_after_s)

    async def sweep(self) -> int:
        """Close every idle connection that can no longer serve; returns how many."""
        gone: list[_Idle] = []
        now = self._clock()
        for acct in list(self._accounts.values()):
            async with acct.cond:
                keep: list[_Idle] = []
                for e in acct.idle:
                    c = e.conn
                    verdict = reuse_verdict(
                        now, c.created_at, c.last_used, c.broken, self.limits, e.reauth_after_s
                    )
                    (gone if verdict is Reuse.DISCARD else keep).append(e)
                if len(keep) != len(acct.idle):
                    acct.open -= len(acct.idle) - len(keep)
                    acct.idle = keep
                    acct.cond.notify_all()
        await self._close_all(gone)
        return len(gone)

    async def _sweep_forever(self) -> None:
        every = imap_sweep_every(self.limits.max_idle_s)
        while not self._closed:
            await asyncio.sleep(every)
            try:
                await self.sweep()
            except Exception as e:  # the sweeper must outlive any one failure
                log.warning("imap.pool.sweep_failed", error=f"{type(e).__name__}: {e}")

    async def aclose(self) -> None:
        """Log out every idle connection; in-use ones are closed when given back."""
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
        for acct in self._accounts.values():
            async with acct.cond:
                idle, acct.idle = acct.idle, []
                acct.open -= len(idle)
            for e in idle:
                await e.conn.close()
