"""What the run measured, per level, under the simulator's metric names.

``RunData`` is read once at the end (the ``sync_runs`` log, the mailboxes, the load
generator's lag and delivery files); ``measure`` turns it and the samples into the figures
of one window. Names follow ``simulator.model.metrics`` so that measured and predicted sit side
by side without a translation table: ``throughput_per_min``, ``lag_p50_high``,
``msg_lag_p50``, ``staleness_p95_all``, ``cpu_core_per_process``, ``rss_mb_process``, ...
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psycopg

from loadtest.run.sampler import Samples
from simulator.inputs.providers import PROVIDERS
from simulator.model.metrics import TIER_NAMES, hist_quantile

_RUNS = """
SELECT s.mailbox_id, s.tier, s.kind, extract(epoch FROM s.queued_at),
       extract(epoch FROM s.started_at), extract(epoch FROM s.finished_at),
       s.error_kind IS NULL, s.added + s.changed, s.api_calls, s.fell_back_to_full
FROM sync_runs s WHERE NOT s.partial ORDER BY s.mailbox_id, s.started_at
"""
_MAILBOXES = """
SELECT m.id, m.provider, COALESCE(m.sync_interval_s, t.sync_interval_s, 300)
FROM mailboxes m JOIN tenants t ON t.id = m.tenant_id
"""


@dataclass(frozen=True)
class Window:
    """A measured span of wall-clock time (epoch seconds)."""

    name: str
    start: float
    end: float

    @property
    def seconds(self) -> float:
        """Its length."""
        return self.end - self.start


@dataclass
class RunData:
    """The daemon's log of runs and the load generator's records, as arrays."""

    mailbox: np.ndarray
    tier: np.ndarray  # index into TIER_NAMES
    full: np.ndarray
    queued: np.ndarray
    started: np.ndarray
    finished: np.ndarray
    ok: np.ndarray
    stored: np.ndarray
    calls: np.ndarray
    due: np.ndarray  # previous successful start + interval; NaN for a first run
    provider_of: dict[int, str]
    lag_stored: np.ndarray  # message lag samples: when stored
    lag_s: np.ndarray
    lag_provider: np.ndarray
    lag_tier: np.ndarray
    deliveries: list[tuple[float, str, int, str]]

    @classmethod
    def load(cls, database_url: str, loadgen_out: Path, since: float = 0.0) -> RunData:
        """Read everything from the run's database and the load generator's files.

        A run's due instant is known only when the mailbox's previous successful sync
        started after ``since`` (the load's start): the first sync after a tenant is resumed
        was due when it was resumed, which the log does not hold.
        """
        with psycopg.connect(database_url) as db:
            runs = db.execute(_RUNS).fetchall()
            boxes = db.execute(_MAILBOXES).fetchall()
        interval = {int(r[0]): float(r[2]) for r in boxes}
        provider_of = {int(r[0]): str(r[1]) for r in boxes}

        def col(i: int, dtype: Any = float) -> np.ndarray:
            return np.array([np.nan if r[i] is None else r[i] for r in runs], dtype=dtype)

        mailbox = np.array([int(r[0]) for r in runs], dtype=np.int64)
        tier = np.array([TIER_NAMES.index(r[1]) for r in runs], dtype=np.int64)
        started, ok = col(4), np.array([bool(r[6]) for r in runs])
        due = np.full(len(runs), np.nan)
        last_ok: dict[int, float] = {}
        for j, m in enumerate(mailbox.tolist()):
            prev = last_ok.get(m)
            if prev is not None and prev >= since:
                due[j] = prev + interval[m]
            if ok[j]:
                last_ok[m] = float(started[j])
        lag_rows: list[list[str]] = []
        deliveries: list[tuple[float, str, int, str]] = []
        for f in sorted(loadgen_out.glob("lag/*/lag-*.csv")):
            with f.open() as fh:
                lag_rows += list(csv.reader(fh))[1:]
        for f in sorted(loadgen_out.glob("lag/*/deliveries-*.csv")):
            with f.open() as fh:
                deliveries += [
                    (float(r[0]), r[1], int(r[2]), r[3]) for r in list(csv.reader(fh))[1:]
                ]
        return cls(
            mailbox=mailbox,
            tier=tier,
            full=np.array([r[2] == "full" for r in runs]),
            queued=col(3),
            started=started,
            finished=col(5),
            ok=ok,
            stored=col(7),
            calls=col(8),
            due=due,
            provider_of=provider_of,
            lag_stored=np.array([float(r[0]) for r in lag_rows]),
            lag_s=np.array([max(0.0, float(r[0]) - float(r[1])) for r in lag_rows]),
            lag_provider=np.array([r[2] for r in lag_rows], dtype=object),
            lag_tier=np.array([r[3] for r in lag_rows], dtype=object),
            deliveries=deliveries,
        )


def _pct(v: np.ndarray, q: float) -> float:
    return float(np.percentile(v, q)) if v.size else math.nan


def _delta(series: Sequence[tuple[float, float]], w: Window) -> float:
    """Increase of a cumulative counter over the window (interpolated at its edges)."""
    if len(series) < 2:
        return math.nan
    t = np.array([x[0] for x in series])
    v = np.array([x[1] for x in series])
    if t[0] > w.start + 5 or t[-1] < w.end - 5:
        return math.nan
    return float(np.interp(w.end, t, v) - np.interp(w.start, t, v))


def process_cpu(samples: Samples, name: str, w: Window) -> tuple[float, float]:
    """(CPU cores used on average, peak RSS MB) of a named process group over the window;
    processes that came and went (a restarted daemon) count for the part they lived."""
    cores = 0.0
    rss = 0.0
    for series in samples.procs.get(name, {}).values():
        inside = [s for s in series if w.start <= s.t <= w.end]
        if len(inside) >= 2:
            cores += (inside[-1].cpu_s - inside[0].cpu_s) / w.seconds
            rss = max(rss, max(s.rss_mb for s in inside))
    return cores, rss


class Counters:
    """The daemons' scraped metrics as time series, indexed once: (name, labels) -> per
    process (times, values)."""

    def __init__(self, samples: Samples) -> None:
        raw: dict[tuple[str, tuple[tuple[str, str], ...]], dict[int, list[tuple[float, float]]]]
        raw = {}
        for t, d, parsed in samples.metrics:
            for key, v in parsed.items():
                raw.setdefault(key, {}).setdefault(d, []).append((t, v))
        self.series = {
            key: {
                d: (np.array([x[0] for x in pts]), np.array([x[1] for x in pts]))
                for d, pts in per.items()
            }
            for key, per in raw.items()
        }
        self.by_name: dict[str, list[tuple[tuple[str, str], ...]]] = {}
        for name, labels in self.series:
            self.by_name.setdefault(name, []).append(labels)

    def labels(self, name: str) -> list[dict[str, str]]:
        """Every label set a metric was seen with."""
        return [dict(lab) for lab in self.by_name.get(name, [])]

    def delta(self, w: Window, name: str, **labels: str) -> float:
        """Increase of a counter over the window, summed over processes and matching label
        sets; a restarted process's counter starting again from zero counts from zero."""
        total = 0.0
        for lab in self.by_name.get(name, []):
            have = dict(lab)
            if any(have.get(k) != x for k, x in labels.items()):
                continue
            for t, v in self.series[(name, lab)].values():
                inside = (t[1:] > w.start) & (t[1:] <= w.end)
                step = np.where(v[1:] >= v[:-1], v[1:] - v[:-1], v[1:])
                total += float(step[inside].sum())
        return total


def measure(
    w: Window,
    data: RunData,
    samples: Samples,
    counters: Counters,
    processes: int,
    vcpu: int,
    providers: Sequence[str],
    fresh_within_s: float,
    connect_round_trips: int = 2,
) -> dict[str, float]:
    """The measured figures of one window."""
    out: dict[str, float] = {"window_s": w.seconds}
    out |= _syncs(w, data)
    out |= _message_lag(w, data, providers)
    out |= _staleness(w, samples, fresh_within_s)
    act = [n for t, n in samples.active if w.start <= t <= w.end]
    out["mailboxes"] = float(np.mean(act)) if act else math.nan
    out |= _resources(w, samples, processes, vcpu)
    out |= _requests(w, counters, providers, connect_round_trips)
    infl = [
        v
        for t, _i, parsed in samples.metrics
        if w.start <= t <= w.end
        for (n, _lab), v in parsed.items()
        if n == "mailsync_jobs_in_flight"
    ]
    out["max_inflight_process"] = float(max(infl)) if infl else math.nan
    return out


def _syncs(w: Window, data: RunData) -> dict[str, float]:
    """Throughput, errors, durations, lag behind the due time and queue waits of the syncs
    finished (or started) in the window."""
    out: dict[str, float] = {}
    fin = (data.finished >= w.start) & (data.finished < w.end)
    ok = fin & data.ok
    n_done = int(fin.sum())
    out["throughput_per_min"] = ok.sum() / w.seconds * 60
    out["error_rate"] = float((fin & ~data.ok).sum() / n_done) if n_done else 0.0
    out["full_share"] = float((ok & data.full).sum() / max(1, int(ok.sum())))
    inc = ok & ~data.full
    dur = data.finished[inc] - data.started[inc]
    out["duration_mean_incremental"] = float(dur.mean()) if dur.size else math.nan
    out["duration_p95_incremental"] = _pct(dur, 95)
    sched = ok & np.isfinite(data.due)
    lag = data.finished[sched] - data.due[sched]
    out["lag_p50"], out["lag_p95"] = _pct(lag, 50), _pct(lag, 95)
    started = (data.started >= w.start) & (data.started < w.end)
    for i, tier in enumerate(TIER_NAMES):
        sel = sched & (data.tier == i)
        if sel.any():
            tl = data.finished[sel] - data.due[sel]
            out[f"lag_p50_{tier}"], out[f"lag_p95_{tier}"] = _pct(tl, 50), _pct(tl, 95)
        ws = started & (data.tier == i) & np.isfinite(data.queued)
        if ws.any():
            out[f"wait_mean_{tier}"] = float(np.mean(data.started[ws] - data.queued[ws]))
    return out


def _message_lag(w: Window, data: RunData, providers: Sequence[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    # Delivered -> stored, by when it was stored (as the model records it).
    sel = (data.lag_stored >= w.start) & (data.lag_stored < w.end)
    v = data.lag_s[sel]
    out["msg_lag_n"] = float(v.size)
    if v.size:
        out["msg_lag_mean"] = float(v.mean())
        out["msg_lag_p50"], out["msg_lag_p95"] = _pct(v, 50), _pct(v, 95)
    for p in providers:
        for tier in TIER_NAMES:
            s2 = sel & (data.lag_provider == p) & (data.lag_tier == tier)
            if s2.sum() >= 5:
                out[f"msg_lag_p50_{p}_{tier}"] = _pct(data.lag_s[s2], 50)
                out[f"msg_lag_p95_{p}_{tier}"] = _pct(data.lag_s[s2], 95)
    return out


def _staleness(w: Window, samples: Samples, fresh_within_s: float) -> dict[str, float]:
    out: dict[str, float] = {}
    # Staleness, pooled over the samples in the window.
    hists = [h for t, h in samples.staleness if w.start <= t <= w.end]
    if hists:
        hist = np.sum(hists, axis=0)
        total = hist.sum(axis=0)
        for i, name in enumerate([*TIER_NAMES, "all"]):
            h = hist[i] if i < 3 else total
            if h.sum():
                out[f"staleness_p50_{name}"] = hist_quantile(h, 0.5)
                out[f"staleness_p95_{name}"] = hist_quantile(h, 0.95)
                out[f"staleness_max_{name}"] = hist_quantile(h, 1.0)
        out["staleness_q"] = out.get("staleness_max_all", math.nan)
        from simulator.model.metrics import EDGES

        within = int(np.searchsorted(EDGES, fresh_within_s, side="right"))
        out["fresh_share"] = float(total[: within + 1].sum() / max(1, total.sum()))
    return out


def _resources(w: Window, samples: Samples, processes: int, vcpu: int) -> dict[str, float]:
    """CPU and memory of the daemon processes and the services, IMAP connections."""
    out: dict[str, float] = {}
    cores_total, rss_peak, rss_sum = 0.0, 0.0, 0.0
    for i in range(processes):
        c, r = process_cpu(samples, f"daemon-{i}", w)
        cores_total += c
        rss_peak = max(rss_peak, r)
        rss_sum += r
    out["cpu_cores_total"] = cores_total
    out["cpu_core_per_process"] = cores_total / processes
    out["cpu_pct_host"] = cores_total / vcpu * 100
    out["rss_mb_process"] = rss_peak
    out["ram_gb_host"] = rss_sum / 1024
    for name in ("postgres", "redis", "mock", "dovecot", "loadgen"):
        if name in samples.procs:
            out[f"cpu_cores_{name}"] = process_cpu(samples, name, w)[0]
    mach = [(t, b, a) for t, b, a in samples.machine if w.start <= t <= w.end]
    if len(mach) >= 2:
        out["machine_cpu_pct"] = (mach[-1][1] - mach[0][1]) / (mach[-1][2] - mach[0][2]) * 100
    conns = [n for t, _i, n in samples.imap_connections if w.start <= t <= w.end]
    if conns:
        out["imap_conn_process_peak"] = float(max(conns))
    return out


def _requests(
    w: Window, counters: Counters, providers: Sequence[str], connect_round_trips: int
) -> dict[str, float]:
    """Provider requests, API calls and throttled answers per provider."""
    out: dict[str, float] = {}
    for p in providers:
        reqs = counters.delta(w, "mailsync_provider_request_seconds_count", provider=p)
        if p == "imap":
            # The daemon times a connection's handshakes as one; the model counts each.
            connects = counters.delta(
                w, "mailsync_provider_request_seconds_count", provider=p, method="imap.connect"
            )
            reqs += connects * (connect_round_trips - 1)
        out[f"requests_per_min_{p}"] = reqs / w.seconds * 60
        calls = counters.delta(w, "mailsync_api_calls_total", provider=p)
        out[f"calls_per_min_{p}"] = calls / w.seconds * 60
        out[f"throttled_{p}"] = counters.delta(w, "mailsync_provider_throttled_total", provider=p)
    return out


def provider_names(data: RunData) -> list[str]:
    """Providers present in the run, in the simulator's order."""
    used = set(data.provider_of.values())
    return [p for p in PROVIDERS if p in used]
