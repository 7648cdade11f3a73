"""Sync lag: from a message's delivery at the provider to the moment the daemon stored it.

Every delivery is registered here with its key as the daemon stores it ((mailbox id,
provider id)); a greenlet asks PostgreSQL once per ``poll_s`` which of the pending keys are
stored, and reports each found one as a Locust request event ``lag <provider>/<tier>``
whose response time is ``first_seen_at - delivered_at`` (PostgreSQL's commit-time clock
against ours: one machine, one clock). A message not stored within ``lag_timeout_s`` is a
Locust failure; it is still followed, and reported stored or lost at the end.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import gevent
import psycopg

from loadtest.run.loadgen.config import LevelSpec, label_at

_FIND = """
SELECT m.mailbox_id, m.provider_id, extract(epoch FROM m.first_seen_at), mb.tier
FROM messages m JOIN mailboxes mb ON mb.id = m.mailbox_id
WHERE (m.mailbox_id, m.provider_id) IN (SELECT * FROM unnest(%s::bigint[], %s::text[]))
"""

Fire = Callable[..., None]


class NeverStored(Exception):
    """A delivered message the daemon did not store within the lag timeout."""


@dataclass
class Pending:
    """A delivered message not seen in the store yet."""

    provider: str
    delivered_at: float
    late: bool = False


class LagTracker:
    """Follows this process's deliveries into the daemon's store."""

    def __init__(
        self,
        database_url: str,
        fire: Fire,
        levels: tuple[LevelSpec, ...],
        t0: float,
        out_dir: Path,
        timeout_s: float,
        poll_s: float,
    ) -> None:
        self._dsn = database_url
        self._fire = fire
        self._levels = levels
        self._t0 = t0
        self._timeout = timeout_s
        self._poll = poll_s
        self.pending: dict[tuple[int, str], Pending] = {}
        self.stored = 0
        out_dir.mkdir(parents=True, exist_ok=True)
        tag = f"{out_dir.name}-{id(self):x}"
        self._lag_file: TextIO = (out_dir / f"lag-{tag}.csv").open("w", newline="")
        self._lag = csv.writer(self._lag_file)
        self._lag.writerow(
            ["stored_at", "delivered_at", "provider", "tier", "mailbox_id", "provider_id"]
        )
        self._dlv_file: TextIO = (out_dir / f"deliveries-{tag}.csv").open("w", newline="")
        self._dlv = csv.writer(self._dlv_file)
        self._dlv.writerow(["delivered_at", "provider", "mailbox_id", "provider_id"])
        self._res_file: TextIO = (out_dir / f"resumed-{tag}.csv").open("w", newline="")
        self._res = csv.writer(self._res_file)
        self._greenlet: gevent.Greenlet[Any] | None = None

    def resumed(self, tenant_id: int, at: float) -> None:
        """A tenant was resumed (its mailboxes' staleness counts from here)."""
        self._res.writerow([tenant_id, f"{at:.6f}"])
        self._res_file.flush()

    def delivered(self, mailbox_id: int, provider_id: str, provider: str, at: float) -> None:
        """A message is at the provider now."""
        self.pending[(mailbox_id, provider_id)] = Pending(provider, at)
        self._dlv.writerow([f"{at:.6f}", provider, mailbox_id, provider_id])

    def pending_ids(self, mailbox_id: int) -> list[str]:
        """Provider ids of this mailbox's messages still on their way (never to be deleted)."""
        return [pid for (mid, pid) in self.pending if mid == mailbox_id]

    def start(self) -> None:
        """Poll in the background."""
        self._greenlet = gevent.spawn(self._run)

    def _run(self) -> None:
        conn: psycopg.Connection[Any] | None = None
        while True:
            try:
                if conn is None or conn.closed:
                    conn = psycopg.connect(self._dsn, autocommit=True)
                self.poll_once(conn)
            except psycopg.Error as e:
                self._fire(
                    request_type="loadgen",
                    name="lag poll",
                    response_time=0,
                    response_length=0,
                    exception=e,
                )
                conn = None
            gevent.sleep(self._poll)

    def poll_once(self, conn: psycopg.Connection[Any]) -> int:
        """Report every pending message now stored; returns how many."""
        if not self.pending:
            return 0
        keys = list(self.pending)
        rows = conn.execute(_FIND, ([k[0] for k in keys], [k[1] for k in keys])).fetchall()
        for mailbox_id, provider_id, stored_at, tier in rows:
            p = self.pending.pop((mailbox_id, provider_id))
            stored = float(stored_at)
            lag = max(0.0, stored - p.delivered_at)
            self.stored += 1
            self._lag.writerow(
                [
                    f"{stored:.6f}",
                    f"{p.delivered_at:.6f}",
                    p.provider,
                    tier,
                    mailbox_id,
                    provider_id,
                ]
            )
            self._fire(
                request_type=label_at(self._levels, stored - self._t0),
                name=f"lag {p.provider}/{tier}",
                response_time=lag * 1000.0,
                response_length=0,
                exception=None,
            )
        now = time.time()
        for key, p in self.pending.items():
            if not p.late and now - p.delivered_at > self._timeout:
                p.late = True
                self._fire(
                    request_type=label_at(self._levels, now - self._t0),
                    name=f"lag {p.provider}/never stored",
                    response_time=(now - p.delivered_at) * 1000.0,
                    response_length=0,
                    exception=NeverStored(
                        f"mailbox {key[0]} message {key[1]}: not stored {self._timeout:.0f} s "
                        "after delivery"
                    ),
                )
        self._lag_file.flush()
        self._dlv_file.flush()
        return len(rows)

    def close(self) -> None:
        """Stop polling and write the files out."""
        if self._greenlet is not None:
            self._greenlet.kill()
        self._lag_file.close()
        self._dlv_file.close()
        self._res_file.close()
