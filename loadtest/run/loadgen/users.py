"""The Locust user: one tenant of the scenario.

On start it takes the next tenant from the run's Redis list (so users on several Locust
workers never share one) and resumes it through the daemon's API; from then on it is a
Poisson stream of its mailboxes' events at the scenario's rates: a new message (arrivals
per hour of the mailbox's activity class), a flag change and a deletion (per arrival), a
push notification after a share of deliveries (the daemon's sync-now), and, for Gmail and
Graph, an expired cursor (per sync). Gmail and Graph mail goes through the mock's control
API; IMAP mail is APPENDed to Dovecot, whose APPENDUID gives the key the daemon stores it
under.
"""

from __future__ import annotations

import imaplib
import random
import re
import ssl
import time
from collections.abc import Callable
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

import httpx
import redis
from locust import User, task
from locust.exception import StopUser

from daemon.providers.imap_message import provider_id as imap_provider_id
from loadtest.run.loadgen.config import LoadgenConfig, MailboxSpec, TenantSpec, label_at
from loadtest.run.loadgen.lag import LagTracker

_APPENDUID = re.compile(rb"APPENDUID (\d+) (\d+)")


class ProviderFailure(Exception):
    """A control call to a provider (mock or Dovecot) failed."""


@dataclass
class Context:
    """Per-process state the users share: config, clients, the lag tracker."""

    config: LoadgenConfig
    http: httpx.Client
    redis: redis.Redis
    lag: LagTracker
    ssl: ssl.SSLContext | None

    def level(self) -> str:
        """The level label of this instant."""
        return label_at(self.config.levels, time.time() - self.config.t0)


class ImapDeliverer:
    """Changes an IMAP mailbox as another client would (one short session per change)."""

    def __init__(self, ctx: Context, m: MailboxSpec, rng: random.Random) -> None:
        self.ctx = ctx
        self.m = m
        self.rng = rng
        self.folder = ctx.config.imap_folder
        self.top_uid = m.inbox_size
        self.pending_uids: set[int] = set()

    @contextmanager
    def _session(self) -> Any:
        port = self.ctx.config.imap_port
        assert port is not None
        c = imaplib.IMAP4_SSL("127.0.0.1", port, ssl_context=self.ctx.ssl, timeout=30)
        try:
            c.login(self.m.username, self.m.password)
            yield c
        finally:
            with suppress(imaplib.IMAP4.error, OSError):
                c.logout()

    def deliver(self, serial: int) -> str:
        """APPEND one new message; returns the id the daemon will store it under."""
        now = time.time()
        msg = (
            f"From: Load Test <sender@load.test>\r\nTo: {self.m.address}\r\n"
            f"Subject: load test message {serial}\r\n"
            f"Message-ID: <lt{self.m.id}.{serial}.{now:.6f}@load.test>\r\n"
            f"Date: {time.strftime('%a, %d %b %Y %H:%M:%S +0000', time.gmtime(now))}\r\n"
            "\r\nNew mail for the load test.\r\n"
        ).encode()
        with self._session() as c:
            typ, data = c.append(self.folder, "", imaplib.Time2Internaldate(now), msg)
        found = _APPENDUID.search(b" ".join(x for x in data if isinstance(x, bytes)))
        if typ != "OK" or found is None:
            raise ProviderFailure(f"APPEND to {self.m.username}: {typ} {data!r}")
        uid = int(found.group(2))
        self.top_uid = max(self.top_uid, uid)
        self.pending_uids.add(uid)
        return imap_provider_id(self.folder, int(found.group(1)), uid)

    def _old_uid(self) -> int | None:
        # Only messages the daemon has already seen are changed or deleted.
        for _ in range(8):
            uid = self.rng.randint(1, max(1, self.top_uid))
            if uid not in self.pending_uids:
                return uid
        return None

    def flag(self) -> None:
        """Toggle \\Seen on one old message."""
        uid = self._old_uid()
        if uid is None:
            return
        op = "+FLAGS.SILENT" if self.rng.random() < 0.5 else "-FLAGS.SILENT"
        with self._session() as c:
            c.select(self.folder)
            c.uid("STORE", str(uid), op, "(\\Seen)")

    def delete(self) -> None:
        """Expunge one old message."""
        uid = self._old_uid()
        if uid is None:
            return
        with self._session() as c:
            c.select(self.folder)
            c.uid("STORE", str(uid), "+FLAGS.SILENT", "(\\Deleted)")
            c.uid("EXPUNGE", str(uid))


RESUME_ATTEMPTS = 5


class TenantUser(User):
    """One tenant: resumes its mailboxes, then changes them at the scenario's rates."""

    # Set per process by the entry point (Locust builds users from the class).
    shared: Context | None = None

    def on_start(self) -> None:
        ctx = self.shared
        assert ctx is not None
        raw = ctx.redis.lpop(ctx.config.pool_key)
        if raw is None:
            raise StopUser()
        self.tenant: TenantSpec = ctx.config.tenants[
            int(str(raw, "ascii") if isinstance(raw, bytes) else str(raw))
        ]
        self.rng = random.Random(ctx.config.seed * 1_000_003 + self.tenant.index)
        self.serial = 0
        self.imap = {
            m.id: ImapDeliverer(ctx, m, self.rng)
            for m in self.tenant.mailboxes
            if m.provider == "imap"
        }
        cfg = ctx.config
        # (rate, action, mailbox) of every event stream of this tenant.
        self.streams: list[tuple[float, str, MailboxSpec]] = []
        for m in self.tenant.mailboxes:
            if m.arrivals_per_s > 0:
                self.streams.append((m.arrivals_per_s, "deliver", m))
                if cfg.changes_per_arrival:
                    self.streams.append((m.arrivals_per_s * cfg.changes_per_arrival, "flag", m))
                if cfg.deletes_per_arrival:
                    self.streams.append((m.arrivals_per_s * cfg.deletes_per_arrival, "delete", m))
            if m.provider != "imap" and cfg.cursor_expiry_per_sync > 0:
                self.streams.append((cfg.cursor_expiry_per_sync / m.interval_s, "expire", m))
        self.total_rate = sum(r for r, _, _ in self.streams)
        # Resuming is idempotent: a dropped connection (a keep-alive connection the server
        # closed as the request went out) is retried. Each failed try is a Locust failure;
        # a tenant that cannot be resumed gets no mail, or the store check would count it.
        for attempt in range(RESUME_ATTEMPTS):
            if self._timed("daemon", "resume tenant", self._resume):
                return
            time.sleep(0.5 * 2**attempt)
        raise StopUser()

    def _resume(self) -> bool:
        ctx = self.shared
        assert ctx is not None
        url = ctx.config.api_urls[self.tenant.index % len(ctx.config.api_urls)]
        r = ctx.http.post(
            f"{url}/tenants/{self.tenant.id}/resume",
            headers={"Authorization": f"Bearer {ctx.config.api_token}"},
        )
        if r.status_code != 200:
            raise ProviderFailure(f"resume tenant {self.tenant.id}: {r.status_code} {r.text[:200]}")
        ctx.lag.resumed(self.tenant.id, time.time())
        return True

    def wait_time(self) -> float:
        if self.total_rate <= 0:
            return 3600.0
        return self.rng.expovariate(self.total_rate)

    def _timed(self, kind: str, name: str, fn: Callable[[], Any]) -> Any:
        ctx = self.shared
        assert ctx is not None
        start = time.perf_counter()
        exc: Exception | None = None
        out = None
        try:
            out = fn()
        except (ProviderFailure, httpx.HTTPError, imaplib.IMAP4.error, OSError) as e:
            exc = e
        self.environment.events.request.fire(
            request_type=ctx.level(),
            name=f"{name}",
            response_time=(time.perf_counter() - start) * 1000.0,
            response_length=0,
            exception=exc,
            context={"kind": kind},
        )
        return out

    def _mock(self, m: MailboxSpec, action: str, body: dict[str, Any]) -> dict[str, Any]:
        ctx = self.shared
        assert ctx is not None
        r = ctx.http.post(f"{ctx.config.mock_url}/_mock/mailboxes/{m.address}/{action}", json=body)
        if r.status_code != 200:
            raise ProviderFailure(f"{action} {m.address}: {r.status_code} {r.text[:200]}")
        out: dict[str, Any] = r.json()
        return out

    def _deliver(self, m: MailboxSpec) -> None:
        ctx = self.shared
        assert ctx is not None
        self.serial += 1
        if m.provider == "imap":
            pid = self.imap[m.id].deliver(self.serial)
        else:
            pid = self._mock(m, "deliver", {"count": 1})["ids"][0]
        ctx.lag.delivered(m.id, pid, m.provider, time.time())
        if ctx.config.push_share and self.rng.random() < ctx.config.push_share:
            url = ctx.config.api_urls[m.id % len(ctx.config.api_urls)]
            r = ctx.http.post(
                f"{url}/mailboxes/{m.id}/sync",
                headers={"Authorization": f"Bearer {ctx.config.api_token}"},
            )
            if r.status_code not in (202, 409):
                raise ProviderFailure(f"push for mailbox {m.id}: {r.status_code}")

    def _change(self, m: MailboxSpec, action: str) -> None:
        ctx = self.shared
        assert ctx is not None
        if m.provider == "imap":
            deliverer = self.imap[m.id]
            deliverer.pending_uids = {
                int(pid.rsplit(":", 1)[1]) for pid in ctx.lag.pending_ids(m.id)
            }
            (deliverer.flag if action == "flag" else deliverer.delete)()
            return
        exclude = ctx.lag.pending_ids(m.id)
        if action == "flag":
            self._mock(
                m, "flags", {"count": 1, "read": self.rng.random() < 0.5, "exclude": exclude}
            )
        elif action == "delete":
            self._mock(m, "delete", {"count": 1, "exclude": exclude})
        else:
            self._mock(m, "expire-cursor", {})

    @task
    def act(self) -> None:
        """One event of the tenant's Poisson stream."""
        if self.total_rate <= 0:
            return
        u = self.rng.random() * self.total_rate
        pick = self.streams[-1]
        for stream in self.streams:
            u -= stream[0]
            if u <= 0:
                pick = stream
                break
        _rate, action, m = pick
        if action == "deliver":
            self._timed(m.provider, f"deliver {m.provider}", lambda: self._deliver(m))
        else:
            self._timed(m.provider, f"{action} {m.provider}", lambda: self._change(m, action))
