"""Connection reuse, keepalive, the per-account limit and broken connections, on Dovecot."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from daemon.errors import AuthRevoked, TransientError
from daemon.policy import SyncKind
from daemon.providers.base import MailboxContext
from daemon.providers.imap import ImapProvider, ImapSettings
from daemon.providers.imap_hosts import LOOPBACK
from loadtest.dovecot.delay_proxy import Delay, DelayProxy
from loadtest.dovecot.messages import generate_mailbox, malformed_messages
from loadtest.dovecot.server import DovecotServer, DovecotUser, free_port
from tests.daemon.providers.imap_e2e import wait_login

START = 1_700_000_000.0
MakeUser = Callable[..., DovecotUser]
MakeCtx = Callable[..., MailboxContext]


@dataclass
class ManualClock:
    t: float = 0.0

    def __call__(self) -> float:
        return self.t


async def logins_in_log(dovecot: DovecotServer, user: str, expected: int) -> int:
    # Dovecot's log process writes asynchronously; give it a moment.
    for _ in range(40):
        n = dovecot.count_logins(user)
        if n >= expected:
            return n
        await asyncio.sleep(0.05)
    return dovecot.count_logins(user)


async def test_second_sync_reuses_the_login_and_idle_ones_are_checked(
    dovecot: DovecotServer, new_user: MakeUser, context_for: MakeCtx
) -> None:
    user = new_user()
    dovecot.write_messages(
        user, "INBOX", generate_mailbox(random.Random(1), 20, start=START, end=START + 20)
    )
    clock = ManualClock()
    provider = ImapProvider(
        ImapSettings(allowed_networks=LOOPBACK, clock=clock, keepalive_s=60, max_idle_s=600)
    )
    ctx = context_for(user)
    try:
        first = await provider.sync(ctx, SyncKind.FULL, None)
        second = await provider.sync(ctx, SyncKind.INCREMENTAL, first.cursor)
        assert provider.pool.stats.logins == 1 and provider.pool.stats.reused == 1
        assert first.api_calls == 5  # login, enable, select, search, fetch
        assert second.api_calls == 1  # one SELECT (QRESYNC), no login
        assert await logins_in_log(dovecot, user.name, 1) == 1

        clock.t += 120  # idle past keepalive: a NOOP before reuse
        third = await provider.sync(ctx, SyncKind.INCREMENTAL, second.cursor)
        assert provider.pool.stats.noop_checks == 1 and provider.pool.stats.logins == 1
        assert third.api_calls == 2

        clock.t += 1000  # idle past max_idle: closed, a fresh login
        await provider.sync(ctx, SyncKind.INCREMENTAL, third.cursor)
        assert provider.pool.stats.logins == 2 and provider.pool.stats.discarded == 1
        assert await logins_in_log(dovecot, user.name, 2) == 2
    finally:
        await provider.aclose()


async def test_per_account_connection_limit(
    dovecot: DovecotServer, new_user: MakeUser, context_for: MakeCtx
) -> None:
    user = new_user()
    dovecot.write_messages(
        user, "INBOX", generate_mailbox(random.Random(2), 300, start=START, end=START + 300)
    )
    provider = ImapProvider(
        ImapSettings(allowed_networks=LOOPBACK, max_connections=2, fetch_chunk=50)
    )
    try:
        results = await asyncio.gather(
            *(provider.sync(context_for(user), SyncKind.FULL, None) for _ in range(6))
        )
        key = (dovecot.host, dovecot.port, user.name)
        assert all(len(r.upserts) == 300 for r in results)
        assert provider.pool.stats.peak_open[key] == 2
        assert provider.pool.stats.logins == 2 and provider.pool.stats.waits >= 1
        assert provider.pool.open_count(key) == 2
    finally:
        await provider.aclose()
    assert provider.pool.open_count(key) == 0


async def test_broken_pooled_connection_is_replaced(
    dovecot: DovecotServer, new_user: MakeUser, context_for: MakeCtx
) -> None:
    user = new_user()
    dovecot.write_messages(
        user, "INBOX", generate_mailbox(random.Random(3), 5, start=START, end=START + 5)
    )
    proxy = DelayProxy(dovecot.host, dovecot.port)
    await proxy.start()
    port = proxy.port
    provider = ImapProvider(ImapSettings(allowed_networks=LOOPBACK))
    ctx = context_for(user, port=port)
    try:
        first = await provider.sync(ctx, SyncKind.FULL, None)
        await proxy.aclose()  # cuts the pooled connection
        await asyncio.sleep(0.05)
        proxy = DelayProxy(dovecot.host, dovecot.port, listen_port=port)
        await proxy.start()
        again = await provider.sync(ctx, SyncKind.INCREMENTAL, first.cursor)
        assert again.cursor == first.cursor
        assert provider.pool.stats.logins == 2 and provider.pool.stats.discarded == 1
    finally:
        await provider.aclose()
        await proxy.aclose()


async def test_sync_through_delay_proxy_pays_round_trips_not_bodies(
    dovecot: DovecotServer, new_user: MakeUser, context_for: MakeCtx
) -> None:
    user = new_user()
    dovecot.write_messages(
        user, "INBOX", generate_mailbox(random.Random(4), 100, start=START, end=START + 100)
    )
    dovecot.write_messages(user, "INBOX", [malformed_messages(START)["large"]])  # 12 MB
    delay = 0.02
    async with DelayProxy(
        dovecot.host, dovecot.port, up=Delay("constant", delay), down=Delay("constant", delay)
    ) as proxy:
        provider = ImapProvider(ImapSettings(allowed_networks=LOOPBACK, fetch_chunk=25))
        try:
            t0 = time.perf_counter()
            res = await provider.sync(context_for(user, port=proxy.port), SyncKind.FULL, None)
            elapsed = time.perf_counter() - t0
        finally:
            await provider.aclose()
    assert len(res.upserts) == 101
    # Greeting, LOGIN, ENABLE, SELECT, SEARCH and 5 FETCHes: ten round trips of 2 x 20 ms.
    assert res.api_calls == 9
    assert 10 * 2 * delay <= elapsed < 10 * 2 * delay + 1.0
    # Headers only: the 12 MB message's body never crosses the wire.
    assert proxy.stats.bytes_down < 200_000


async def test_unreachable_server_is_transient(new_user: MakeUser, context_for: MakeCtx) -> None:
    provider = ImapProvider(ImapSettings(allowed_networks=LOOPBACK, command_timeout_s=2))
    try:
        with pytest.raises(TransientError, match="cannot connect"):
            await provider.sync(context_for(new_user(), port=free_port()), SyncKind.FULL, None)
    finally:
        await provider.aclose()


async def test_cancelled_sync_never_returns_a_busy_connection(
    dovecot: DovecotServer, new_user: MakeUser, context_for: MakeCtx
) -> None:
    user = new_user()
    dovecot.write_messages(
        user, "INBOX", generate_mailbox(random.Random(5), 50, start=START, end=START + 50)
    )
    slow = Delay("constant", 0.1)
    async with DelayProxy(dovecot.host, dovecot.port, up=slow, down=slow) as proxy:
        provider = ImapProvider(ImapSettings(allowed_networks=LOOPBACK))
        ctx = context_for(user, port=proxy.port)
        key = (dovecot.host, proxy.port, user.name)
        try:
            task = asyncio.create_task(provider.sync(ctx, SyncKind.FULL, None))
            await asyncio.sleep(1.1)  # past login and ENABLE, inside SELECT/SEARCH/FETCH
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert provider.pool.stats.logins == 1
            assert provider.pool.open_count(key) == 0  # dropped, not pooled mid-command
            res = await provider.sync(ctx, SyncKind.FULL, None)
            assert len(res.upserts) == 50 and provider.pool.stats.logins == 2
        finally:
            await provider.aclose()


async def test_pooled_login_serves_only_its_own_mailbox_and_credentials(
    dovecot: DovecotServer, new_user: MakeUser, context_for: MakeCtx
) -> None:
    user = new_user()
    dovecot.write_messages(
        user, "INBOX", generate_mailbox(random.Random(6), 7, start=START, end=START + 7)
    )
    provider = ImapProvider(ImapSettings(allowed_networks=LOOPBACK))
    key = (dovecot.host, dovecot.port, user.name)
    try:
        first = await provider.sync(context_for(user, mailbox_id=1), SyncKind.FULL, None)
        assert provider.pool.open_count(key) == 1
        # Same user name, another mailbox (another tenant), a wrong password: it must log
        # in itself and fail, not borrow mailbox 1's session.
        with pytest.raises(AuthRevoked):
            await provider.sync(
                context_for(user, mailbox_id=2, password="guessed"), SyncKind.FULL, None
            )
        # The right password for mailbox 2 still means a login of its own.
        await provider.sync(context_for(user, mailbox_id=2), SyncKind.FULL, None)
        assert provider.pool.stats.logins == 2 and provider.pool.stats.reused == 0
        assert provider.pool.open_count(key) == 2
        # Mailbox 1 gets its own session back.
        again = await provider.sync(context_for(user, mailbox_id=1), SyncKind.INCREMENTAL,
                                    first.cursor)  # fmt: skip
        assert again.api_calls == 1 and provider.pool.stats.reused == 1
        assert await logins_in_log(dovecot, user.name, 2) == 2
    finally:
        await provider.aclose()


async def test_login_older_than_the_reauth_bound_is_replaced(
    dovecot: DovecotServer, new_user: MakeUser, context_for: MakeCtx
) -> None:
    user = new_user()
    clock = ManualClock()
    provider = ImapProvider(
        ImapSettings(
            allowed_networks=LOOPBACK,
            clock=clock,
            reauth_after_s=100,
            keepalive_s=300,
            max_idle_s=600,
        )
    )
    key = (dovecot.host, dovecot.port, user.name)
    try:
        first = await provider.sync(context_for(user), SyncKind.FULL, None)
        clock.t += 99  # within the bound: reused as is
        await provider.sync(context_for(user), SyncKind.INCREMENTAL, first.cursor)
        assert provider.pool.stats.reused == 1
        changed = dovecot.set_password(user, "changed-on-the-server")
        await wait_login(dovecot, user.name, changed.password, accepted=True)
        clock.t += 1  # 100 s after LOGIN: the session no longer vouches for the password
        with pytest.raises(AuthRevoked):
            await provider.sync(context_for(user), SyncKind.INCREMENTAL, first.cursor)
        assert provider.pool.stats.reauth_expired == 1 and provider.pool.open_count(key) == 0
        # A mailbox synced every 20 s trusts a login for 18 s (0.9 x its interval).
        ctx = context_for(changed, password=changed.password, sync_interval_s=20)
        await provider.sync(ctx, SyncKind.FULL, None)
        clock.t += 17.9
        await provider.sync(ctx, SyncKind.FULL, None)
        clock.t += 0.1
        await provider.sync(ctx, SyncKind.FULL, None)
        assert (provider.pool.stats.logins, provider.pool.stats.reauth_expired) == (3, 2)
    finally:
        await provider.aclose()


async def test_new_credentials_close_the_old_login(
    dovecot: DovecotServer, new_user: MakeUser, context_for: MakeCtx
) -> None:
    user, other = new_user("a"), new_user("b")
    provider = ImapProvider(ImapSettings(allowed_networks=LOOPBACK))
    key = (dovecot.host, dovecot.port, user.name)
    try:
        await provider.sync(context_for(user, mailbox_id=5), SyncKind.FULL, None)
        changed = dovecot.set_password(user, "rotated-password")
        await wait_login(dovecot, user.name, changed.password, accepted=True)
        await provider.sync(
            context_for(changed, mailbox_id=5, password=changed.password), SyncKind.FULL, None
        )
        stats = provider.pool.stats
        assert (stats.logins, stats.superseded, stats.reused) == (2, 1, 0)
        assert provider.pool.open_count(key) == 1
        # The mailbox now points at another account: its old session goes too.
        await provider.sync(context_for(other, mailbox_id=5), SyncKind.FULL, None)
        assert stats.superseded == 2 and provider.pool.open_count(key) == 0
    finally:
        await provider.aclose()


async def test_account_limit_makes_room_by_closing_another_logins_idle_session(
    dovecot: DovecotServer, new_user: MakeUser, context_for: MakeCtx
) -> None:
    user = new_user()
    provider = ImapProvider(ImapSettings(allowed_networks=LOOPBACK, max_connections=1))
    key = (dovecot.host, dovecot.port, user.name)
    try:
        await provider.sync(context_for(user, mailbox_id=11), SyncKind.FULL, None)
        await provider.sync(context_for(user, mailbox_id=12), SyncKind.FULL, None)
        assert provider.pool.stats.evicted == 1 and provider.pool.stats.waits == 0
        assert provider.pool.open_count(key) == 1
        assert provider.pool.stats.peak_open[key] == 1
    finally:
        await provider.aclose()


async def test_the_sweeper_closes_sessions_nobody_can_use_any_more(
    dovecot: DovecotServer, new_user: MakeUser, context_for: MakeCtx
) -> None:
    users = [new_user() for _ in range(3)]
    # A real clock: the sweeper runs on its own every max_idle_s / 3 (at least a second).
    provider = ImapProvider(
        ImapSettings(allowed_networks=LOOPBACK, keepalive_s=0.5, max_idle_s=1.5)
    )
    try:
        for u in users:
            await provider.sync(context_for(u), SyncKind.FULL, None)
        keys = {k for k in provider.pool._accounts}
        assert sum(provider.pool.open_count(k) for k in keys) == 3
        # Nothing syncs these mailboxes again: the sessions are closed all the same.
        deadline = time.monotonic() + 10
        while sum(provider.pool.open_count(k) for k in keys) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert sum(provider.pool.open_count(k) for k in keys) == 0
        assert provider.pool.stats.discarded == 3
        # The next sync logs in again and works.
        again = await provider.sync(context_for(users[0]), SyncKind.FULL, None)
        assert provider.pool.stats.logins == 4 and again.kind is SyncKind.FULL
    finally:
        await provider.aclose()
