"""What the run samples while it runs, in a thread of its own.

Every second: CPU time and RSS of each daemon process and of the other processes on the
machine (PostgreSQL, Redis, the mock, Dovecot and its proxy, the load generator) with
psutil. Every ``slow_s``: the staleness of every active mailbox (a histogram per tier on the
simulator's bins), the daemons' ``/metrics`` (request counts and latency histograms) and
``/email-sync/status``, the mock's counters, and the IMAP connections each daemon holds.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil
import psycopg
from prometheus_client.parser import text_string_to_metric_families

from simulator.model.metrics import EDGES, NB, TIER_NAMES

Groups = Callable[[], dict[str, list[psutil.Process]]]


@dataclass
class ProcessSample:
    """Cumulative CPU seconds and RSS of one process at one instant."""

    t: float
    cpu_s: float
    rss_mb: float


@dataclass
class Samples:
    """Everything sampled, in time order."""

    # name -> pid -> samples (a restarted daemon is a new pid).
    procs: dict[str, dict[int, list[ProcessSample]]] = field(default_factory=dict)
    machine: list[tuple[float, float, float]] = field(default_factory=list)  # t, busy s, total s
    staleness: list[tuple[float, np.ndarray]] = field(default_factory=list)  # (3, NB) counts
    active: list[tuple[float, int]] = field(default_factory=list)
    metrics: list[tuple[float, int, dict[tuple[str, tuple[tuple[str, str], ...]], float]]] = field(
        default_factory=list
    )
    status: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    mock: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    imap_connections: list[tuple[float, int, int]] = field(default_factory=list)  # t, daemon, n
    events: list[tuple[float, str]] = field(default_factory=list)


def parse_metrics(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Prometheus text as {(sample name, sorted labels): value}."""
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = float(s.value)
    return out


class Sampler:
    """Samples in the background until ``stop``."""

    def __init__(
        self,
        groups: Groups,
        daemons: Callable[[], list[tuple[int, psutil.Process | None, str]]],
        database_url: str,
        api_token: str,
        mock_url: str,
        imap_port: int | None,
        slow_s: float = 5.0,
        resumes: Path | None = None,
    ) -> None:
        self.groups = groups
        self.daemons = daemons
        self.dsn = database_url
        self.token = api_token
        self.mock_url = mock_url
        self.imap_port = imap_port
        self.slow_s = slow_s
        # Where the load generator notes when it resumed each tenant: a paused mailbox's
        # staleness is time it was not meant to sync, so it counts from its resumption.
        self.resumes = resumes
        self._resumed: dict[int, float] = {}
        self._read: dict[Path, int] = {}
        self.data = Samples()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="sampler", daemon=True)
        self._lock = threading.Lock()

    def start(self) -> None:
        """Begin sampling."""
        self._thread.start()

    def stop(self) -> Samples:
        """Stop and return what was sampled."""
        self._stop.set()
        self._thread.join(30)
        return self.data

    def mark(self, what: str) -> None:
        """Note an event (a killed daemon, a phase change) on the timeline."""
        with self._lock:
            self.data.events.append((time.time(), what))

    def _loop(self) -> None:
        last_slow = 0.0
        db: psycopg.Connection[Any] | None = None
        http = httpx.Client(timeout=20)
        while not self._stop.is_set():
            t = time.time()
            self._fast(t)
            if t - last_slow >= self.slow_s:
                last_slow = t
                try:
                    if db is None or db.closed:
                        db = psycopg.connect(self.dsn, autocommit=True)
                    self._staleness(db, t)
                except psycopg.Error:
                    db = None
                self._scrape(http, t)
            self._stop.wait(max(0.0, 1.0 - (time.time() - t)))
        http.close()
        if db is not None:
            db.close()

    def _record(self, name: str, procs: Iterable[psutil.Process], t: float) -> None:
        by_pid = self.data.procs.setdefault(name, {})
        for p in procs:
            with contextlib.suppress(psutil.Error):
                cpu = p.cpu_times()
                rss = p.memory_info().rss / 2**20
                by_pid.setdefault(p.pid, []).append(ProcessSample(t, cpu.user + cpu.system, rss))

    def _fast(self, t: float) -> None:
        ct = psutil.cpu_times()
        busy = ct.user + ct.system + getattr(ct, "irq", 0) + getattr(ct, "softirq", 0)
        with self._lock:
            self.data.machine.append((t, busy, sum(ct)))
            for i, proc, _url in self.daemons():
                if proc is not None:
                    self._record(f"daemon-{i}", [proc], t)
            for name, procs in self.groups().items():
                self._record(name, procs, t)

    def _read_resumes(self) -> None:
        if self.resumes is None:
            return
        for f in self.resumes.glob("*/resumed-*.csv"):
            with f.open() as fh:
                fh.seek(self._read.get(f, 0))
                for line in fh:
                    tenant, _, when = line.strip().partition(",")
                    if when:
                        self._resumed[int(tenant)] = float(when)
                self._read[f] = fh.tell()

    def _staleness(self, db: psycopg.Connection[Any], t: float) -> None:
        rows = db.execute(
            "SELECT extract(epoch FROM coalesce(last_success_at, created_at)), tier, tenant_id,"
            " extract(epoch FROM now()) FROM mailboxes WHERE status = 'active'"
        ).fetchall()
        self._read_resumes()
        hist = np.zeros((3, NB), dtype=np.int64)
        if rows:
            now = float(rows[0][3])
            since = [max(float(r[0]), self._resumed.get(int(r[2]), 0.0)) for r in rows]
            age = now - np.array(since)
            tier = np.array([TIER_NAMES.index(r[1]) if r[1] in TIER_NAMES else 0 for r in rows])
            idx = np.searchsorted(EDGES, np.maximum(age, 0.0), side="right")
            hist += np.bincount(idx + tier * NB, minlength=3 * NB).reshape(3, NB)
        with self._lock:
            self.data.staleness.append((t, hist))
            self.data.active.append((t, len(rows)))

    def _scrape(self, http: httpx.Client, t: float) -> None:
        auth = {"Authorization": f"Bearer {self.token}"}
        for i, proc, url in self.daemons():
            if proc is None:
                continue
            with contextlib.suppress(httpx.HTTPError, ValueError):
                r = http.get(f"{url}/metrics", headers=auth)
                if r.status_code == 200:
                    parsed = parse_metrics(r.text)
                    with self._lock:
                        self.data.metrics.append((t, i, parsed))
            if self.imap_port:
                with contextlib.suppress(psutil.Error):
                    n = sum(
                        1
                        for c in proc.net_connections(kind="tcp")
                        if c.raddr and c.raddr.port == self.imap_port and c.status == "ESTABLISHED"
                    )
                    with self._lock:
                        self.data.imap_connections.append((t, i, n))
        daemons = self.daemons()
        if daemons:
            with contextlib.suppress(httpx.HTTPError, ValueError):
                r = http.get(f"{daemons[0][2]}/email-sync/status", headers=auth)
                if r.status_code == 200:
                    with self._lock:
                        self.data.status.append((t, r.json()))
        with contextlib.suppress(httpx.HTTPError, ValueError):
            r = http.get(f"{self.mock_url}/_mock/stats")
            if r.status_code == 200:
                with self._lock:
                    self.data.mock.append((t, r.json()))
