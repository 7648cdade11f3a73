"""After the load: did every delivered message arrive, exactly once?

The run waits until every active mailbox has synced after the last delivery, then compares
each mailbox's stored messages with its provider's current ones (the mock's listing for
Gmail and Graph, ``UID SEARCH ALL`` per folder for Dovecot): nothing missing, nothing extra,
``message_count`` equal to the rows. A delivered message deleted later by the load
generator is gone on both sides, so the comparison covers every delivery.
"""

from __future__ import annotations

import contextlib
import imaplib
import ssl
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg

from daemon.providers.imap_message import provider_id


@dataclass(frozen=True)
class MailboxRef:
    """What the check needs to know of one mailbox."""

    id: int
    provider: str
    address: str
    username: str
    password: str
    folders: tuple[str, ...]


@dataclass
class Integrity:
    """The outcome of the comparison."""

    mailboxes: int = 0
    stored: int = 0
    missing: int = 0
    extra: int = 0
    count_mismatch: int = 0
    unchecked: int = 0
    examples: list[str] | None = None

    @property
    def ok(self) -> bool:
        """Store equals providers everywhere."""
        return not (self.missing or self.extra or self.count_mismatch or self.unchecked)


def wait_synced_after(
    database_url: str, since: float, timeout_s: float, check: Callable[[], None]
) -> tuple[bool, int]:
    """Wait until every active mailbox finished a successful sync that started after
    ``since`` (the last delivery); returns (all done, how many were still behind)."""
    deadline = time.monotonic() + timeout_s
    behind = -1
    with psycopg.connect(database_url, autocommit=True) as db:
        while time.monotonic() < deadline:
            check()
            row = db.execute(
                "SELECT count(*) FROM mailboxes m WHERE m.status = 'active' AND NOT EXISTS"
                " (SELECT 1 FROM sync_runs r WHERE r.mailbox_id = m.id AND r.error_kind IS NULL"
                "  AND r.started_at > to_timestamp(%s))",
                (since,),
            ).fetchone()
            assert row is not None
            behind = int(row[0])
            if behind == 0:
                return True, 0
            time.sleep(1.0)
    return False, behind


def _provider_ids(
    m: MailboxRef,
    mock_url: str,
    http: httpx.Client,
    imap_port: int | None,
    ctx: ssl.SSLContext | None,
) -> set[str]:
    if m.provider in ("gmail", "graph"):
        r = http.get(f"{mock_url}/_mock/mailboxes/{m.address}/messages")
        r.raise_for_status()
        # The daemon syncs whole mailboxes (Graph: every folder, by default).
        return {x["id"] for x in r.json()["messages"]}
    assert imap_port is not None
    out: set[str] = set()
    c = imaplib.IMAP4_SSL("127.0.0.1", imap_port, ssl_context=ctx, timeout=30)
    try:
        c.login(m.username, m.password)
        for folder in m.folders:
            c.select(folder, readonly=True)
            uv = int(c.response("UIDVALIDITY")[1][0] or b"0")
            typ, data = c.uid("SEARCH", "ALL")
            uids = (data[0] or b"").split() if typ == "OK" else []
            out |= {provider_id(folder, uv, int(u)) for u in uids}
    finally:
        with contextlib.suppress(imaplib.IMAP4.error, OSError):
            c.logout()
    return out


def compare_store(
    database_url: str,
    mailboxes: Sequence[MailboxRef],
    mock_url: str,
    imap_port: int | None,
    ca_file: str | None,
) -> Integrity:
    """Every mailbox's rows against its provider's messages."""
    ctx = ssl.create_default_context(cafile=ca_file) if ca_file else None
    result = Integrity(examples=[])
    with psycopg.connect(database_url) as db:
        rows = db.execute("SELECT mailbox_id, provider_id FROM messages").fetchall()
        counts: dict[int, int] = {
            int(r[0]): int(r[1])
            for r in db.execute("SELECT id, message_count FROM mailboxes").fetchall()
        }
    stored: dict[int, set[str]] = {}
    for mid, pid in rows:
        stored.setdefault(int(mid), set()).add(str(pid))

    def one(m: MailboxRef) -> tuple[MailboxRef, set[str] | None]:
        with httpx.Client(timeout=60) as http:
            try:
                return m, _provider_ids(m, mock_url, http, imap_port, ctx)
            except (httpx.HTTPError, imaplib.IMAP4.error, OSError, ValueError):
                return m, None

    with ThreadPoolExecutor(8) as pool:
        for m, have in pool.map(one, mailboxes):
            result.mailboxes += 1
            mine = stored.get(m.id, set())
            result.stored += len(mine)
            if have is None:
                result.unchecked += 1
                continue
            lost, extra = have - mine, mine - have
            result.missing += len(lost)
            result.extra += len(extra)
            if counts.get(m.id) != len(mine):
                result.count_mismatch += 1
            if (lost or extra) and result.examples is not None and len(result.examples) < 5:
                result.examples.append(
                    f"mailbox {m.id} ({m.provider}): missing {sorted(lost)[:3]}, "
                    f"extra {sorted(extra)[:3]}"
                )
    return result


def summary(
    i: Integrity, synced: bool, behind: int, never_stored: int
) -> list[tuple[str, str, bool]]:
    """Rows of the report's integrity table."""
    return [
        (
            "every active mailbox synced after the last delivery",
            "yes" if synced else f"{behind:,} mailboxes still behind",
            synced,
        ),
        (
            "mailboxes compared with their provider",
            f"{i.mailboxes:,} ({i.unchecked:,} unreadable)",
            i.unchecked == 0,
        ),
        ("messages stored", f"{i.stored:,}", True),
        ("messages at the provider but not stored", f"{i.missing:,}", i.missing == 0),
        ("messages stored but not at the provider", f"{i.extra:,}", i.extra == 0),
        (
            "mailboxes whose message_count differs from their rows",
            f"{i.count_mismatch:,}",
            i.count_mismatch == 0,
        ),
        (
            "deliveries not stored within the lag timeout (Locust failures)",
            f"{never_stored:,}",
            True,
        ),
    ]


def as_json(i: Integrity) -> dict[str, Any]:
    """Plain data."""
    return {**i.__dict__, "ok": i.ok}
