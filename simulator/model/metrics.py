"""What one replication measures, kept in arrays while it runs and summarised at the end."""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from daemon import policy
from daemon.policy import ErrorKind, Outcome, QuotaScope, SyncKind
from simulator.inputs.providers import PROVIDERS
from simulator.inputs.scenario import Scenario

if TYPE_CHECKING:  # import cycle: the engine imports this module
    from simulator.model.gate import ProviderRuntime
    from simulator.model.mailboxes import MailboxTable
    from simulator.model.station import PoolView

TIER_NAMES = [str(t) for t in policy.TIERS]
# Staleness histogram: log bins from 1 s to ~4 months, 1.5 % wide.
EDGES = np.concatenate([[0.0], np.geomspace(1.0, 1e7, 1084)])
NB = EDGES.size + 1


@dataclass
class RunMetrics:
    """Scalars by name, the staleness histogram per tier and sampled time series."""

    scalars: dict[str, float]
    staleness_hist: np.ndarray  # shape (3, NB): counts per tier
    series: dict[str, np.ndarray] = field(default_factory=dict)


def hist_quantile(counts: np.ndarray, q: float) -> float:
    """Quantile ``q`` of a histogram over ``EDGES`` (log-interpolated in the bin)."""
    total = counts.sum()
    if total == 0:
        return float("nan")
    cum = np.cumsum(counts)
    i = int(np.searchsorted(cum, q * total, side="left"))
    lo = EDGES[i - 1] if 0 < i <= EDGES.size else EDGES[-1]
    hi = EDGES[i] if i < EDGES.size else EDGES[-1]
    if i == 0 or lo <= 0:
        return float(hi if i else 0.0)
    prev = cum[i - 1] if i > 0 else 0
    frac = (q * total - prev) / max(counts[i], 1)
    return float(lo * (hi / lo) ** min(max(frac, 0.0), 1.0))


def _pct(a: array[float], q: float) -> float:
    return float(np.percentile(np.frombuffer(a, dtype=float), q)) if len(a) else float("nan")


def _mean(a: array[float]) -> float:
    return float(np.mean(np.frombuffer(a, dtype=float))) if len(a) else float("nan")


# EDGES past the first, as log10 of their ratio to 1 s (geomspace steps), and with +inf
# after the last so that ``bin_index`` can compare with both neighbours of any bin.
_STEPS = (EDGES.size - 2) / 7.0
_EDGES_INF = np.append(EDGES, np.inf)


def bin_index(st: np.ndarray) -> np.ndarray:
    """``np.searchsorted(EDGES, st, side="right")``, a sixth of its cost on 10,000 values:
    the bin is guessed from log10 (the edges are geometric from 1 s) and moved until
    ``EDGES[i - 1] <= st < EDGES[i]`` (within 0 and ``EDGES.size``), the exact answer."""
    with np.errstate(divide="ignore", invalid="ignore"):
        guess = np.floor(np.log10(st) * _STEPS) + 2
    # (NaN, from a negative or NaN value, starts at the top: searchsorted puts NaN there.)
    guess = np.nan_to_num(guess, nan=float(EDGES.size), neginf=1.0)
    idx: np.ndarray = np.clip(guess, 1, EDGES.size).astype(np.intp)
    while True:
        low = (_EDGES_INF[idx - 1] > st) & (idx > 0)
        high = (_EDGES_INF[idx] <= st) & (idx < EDGES.size)
        if not (low.any() or high.any()):
            return idx
        idx = idx - low + high


class Recorder:
    """Counters and samples of one replication (only the window after warm-up counts)."""

    def __init__(
        self, s: Scenario, n: int, last: np.ndarray, tier: np.ndarray, warm: float
    ) -> None:
        self.s = s
        self.n = n
        self.warm = warm
        self.t0 = warm
        self.last = last.astype(float).copy()  # NaN: never synced (stale since t=0)
        self.tier = tier.astype(np.int64)
        # The same memory, written once per sync: a store through a memoryview costs two
        # thirds of a store into the numpy array.
        self.last_w: memoryview[float] = cast("memoryview[float]", self.last.data)
        self.tier_w: memoryview[int] = self.tier.data
        self._zero()

    def _zero(self) -> None:
        self.waits = [array("d") for _ in range(3)]
        # Time in the station's queue (waits less the dispatch), for Little's law.
        self.queued_s = [0.0, 0.0, 0.0]
        self.durations = {SyncKind.FULL: array("d"), SyncKind.INCREMENTAL: array("d")}
        self.lag = array("d")
        self.lag_tier = [array("d") for _ in range(3)]
        # Delivered -> stored, per (provider index, tier index) of the run that stored it.
        self.msg_lag: dict[tuple[int, int], array[float]] = {}
        self.parked = self.pushes = 0
        self.failures: dict[str, int] = {str(k): 0 for k in ErrorKind}
        self.cycles = self.claimed = self.stored = 0
        # Chunks of full syncs that gave their worker back for quota.
        self.chunks = 0
        self.cpu_ms = self.db_ms = 0.0
        self.fresh = self.samples = 0
        self.hist = np.zeros((3, NB), dtype=np.int64)
        self.smax = np.zeros(3)
        self.max_inflight = 0
        self.series: dict[str, list[float]] = {
            k: [] for k in ("t", "p50", "p95", "max", "normal", "low", "inflight", "done", "full")
        }
        # Successful syncs and full ones at the last sample (the series count those since).
        self._done_mark = self._full_mark = 0

    @property
    def successes(self) -> int:
        """Successful syncs in the window: one duration is kept per success."""
        return len(self.durations[SyncKind.FULL]) + len(self.durations[SyncKind.INCREMENTAL])

    @property
    def attempts(self) -> int:
        """Syncs that ended in the window, successful or failed."""
        return self.successes + sum(self.failures.values())

    def reset(self, now: float) -> None:
        """Start the measurement window."""
        self._zero()
        self.t0 = now

    def cycle(self, now: float, claimed: int) -> None:
        """A scheduler cycle ran."""
        if now >= self.warm:
            self.cycles += 1
            self.claimed += claimed

    def push(self, now: float) -> None:
        """A push notification enqueued a sync."""
        if now >= self.warm:
            self.pushes += 1

    def start(self, tier: int, wait: float, now: float) -> None:
        """A job left its queue."""
        if now >= self.warm:
            self.waits[tier].append(wait)

    def resources(self, now: float, cpu_ms: float, db_ms: float, stored: int) -> None:
        """CPU and database time of a job."""
        if now < self.warm:
            return
        self.cpu_ms += cpu_ms
        self.db_ms += db_ms
        self.stored += stored

    def provider(
        self,
        pv: ProviderRuntime,
        m: int,
        started: float,
        requests: int,
        calls: int,
        units: int,
        throttled: int,
        gate_wait: float,
        api_s: float,
    ) -> None:
        """API use of one job; ``api_s`` is its time in provider calls."""
        if started < self.warm:
            return
        c = pv.counters
        c.requests += requests
        c.calls += calls
        c.units += units
        c.throttled += throttled
        c.gate_wait_s += gate_wait
        c.syncs += 1
        c.api_s += api_s
        pv.units_by_mailbox[m] += units

    def failure(self, kind: ErrorKind, outcome: Outcome, now: float) -> None:
        """A sync failed."""
        if now >= self.warm:
            self.failures[str(kind)] += 1
            if outcome is not Outcome.RETRY:
                self.parked += 1

    def sample(self, now: float, active: np.ndarray, stations: Sequence[PoolView]) -> None:
        """Staleness of every active mailbox now, plus load figures."""
        st = now - np.where(np.isnan(self.last), 0.0, self.last)
        st = st[active]
        tier = self.tier[active]
        idx = bin_index(st)
        self.hist += np.bincount(idx + tier * NB, minlength=3 * NB).reshape(3, NB)
        # Each tier's largest staleness so far (max is exact, so in one pass).
        np.maximum.at(self.smax, tier, st)
        self.fresh += int((st <= self.s.criteria.fresh_within_s).sum())
        self.samples += st.size
        inflight = sum(x.busy for x in stations)
        self.max_inflight = max(self.max_inflight, inflight)
        ser = self.series
        ser["t"].append(now)
        if st.size:
            p50, p95 = np.percentile(st, [50, 95])
            ser["p50"].append(float(p50))
            ser["p95"].append(float(p95))
            ser["max"].append(float(st.max()))
            ser["normal"].append(float((tier == 1).mean()))
            ser["low"].append(float((tier == 2).mean()))
        else:
            for key in ("p50", "p95", "max", "normal", "low"):
                ser[key].append(float("nan"))
        ser["inflight"].append(float(inflight))
        done, full = self.successes, len(self.durations[SyncKind.FULL])
        ser["done"].append(float(done - self._done_mark))
        ser["full"].append(float(full - self._full_mark))
        self._done_mark, self._full_mark = done, full

    def finish(
        self,
        end: float,
        stations: Sequence[PoolView],
        prov: list[ProviderRuntime | None],
        drained_at: float | None,
        t95: float | None,
        table: MailboxTable,
    ) -> RunMetrics:
        """Summarise the window [warm-up, end]."""
        w = max(end - self.t0, 1e-9)
        s: dict[str, float] = {"window_s": w, "mailboxes": float(self.n)}
        s["demand_per_min"] = float(np.sum(60.0 / np.asarray(table.interval_s)))
        s["throughput_per_min"] = self.successes / w * 60
        s["attempts_per_min"] = self.attempts / w * 60
        s["error_rate"] = sum(self.failures.values()) / self.attempts if self.attempts else 0.0
        s["rate_limited_share"] = (
            self.failures[str(ErrorKind.RATE_LIMITED)] / self.attempts if self.attempts else 0.0
        )
        s["parked"] = float(self.parked)
        s["push_per_min"] = self.pushes / w * 60
        self._queue_figures(s, stations, w)
        self._staleness_figures(s)
        s["max_inflight"] = float(self.max_inflight)
        s["cycles_per_min"] = self.cycles / w * 60
        s["claimed_per_cycle"] = self.claimed / self.cycles if self.cycles else 0.0
        s["cpu_ms_total"] = self.cpu_ms
        s["db_ms_total"] = self.db_ms
        s["stored_per_min"] = self.stored / w * 60
        jobs = float(sum(len(x) for x in self.waits))
        s["jobs_per_s"] = jobs / w
        _provider_figures(s, prov, w)
        if drained_at is not None:
            s["drain_s"] = drained_at
        if t95 is not None:
            s["drain95_s"] = t95
            s["capacity_per_min"] = 0.95 * self.n / t95 * 60 if t95 > 0 else float("inf")
        series = {k: np.asarray(v, dtype=float) for k, v in self.series.items()}
        return RunMetrics(s, self.hist.copy(), series)

    def _queue_figures(self, s: dict[str, float], stations: Sequence[PoolView], w: float) -> None:
        """Waits, utilisation, queue lengths (and Little's law), durations and lags."""
        for i, name in enumerate(TIER_NAMES):
            st = stations[i]
            s[f"wait_mean_{name}"] = _mean(self.waits[i])
            s[f"wait_p95_{name}"] = _pct(self.waits[i], 95)
            s[f"wait_max_{name}"] = _pct(self.waits[i], 100)
            s[f"util_{name}"] = st.area_busy / (st.servers * w) if st.servers else float("nan")
            lq = st.area_queue / w
            lam = st.arrivals / w
            wq = self.queued_s[i] / len(self.waits[i]) if len(self.waits[i]) else 0.0
            s[f"queue_mean_{name}"] = lq
            s[f"little_err_{name}"] = abs(lq - lam * wq) / lq if lq > 1e-3 else 0.0
            s[f"jobs_{name}"] = float(len(self.waits[i]))
        for kind in SyncKind:
            s[f"duration_mean_{kind}"] = _mean(self.durations[kind])
            s[f"duration_p95_{kind}"] = _pct(self.durations[kind], 95)
        nfull = len(self.durations[SyncKind.FULL])
        ndone = nfull + len(self.durations[SyncKind.INCREMENTAL])
        s["full_share"] = nfull / ndone if ndone else 0.0
        s["lag_mean"] = _mean(self.lag)
        s["lag_p50"] = _pct(self.lag, 50)
        s["lag_p95"] = _pct(self.lag, 95)
        s["lag_max"] = _pct(self.lag, 100)
        for i, name in enumerate(TIER_NAMES):
            if len(self.lag_tier[i]):
                s[f"lag_p50_{name}"] = _pct(self.lag_tier[i], 50)
                s[f"lag_p95_{name}"] = _pct(self.lag_tier[i], 95)
        s.update(message_lag(self.msg_lag))

    def _staleness_figures(self, s: dict[str, float]) -> None:
        """Staleness quantiles per tier and over all, from the sampled histogram."""
        total = self.hist.sum(axis=0)
        for i, name in enumerate([*TIER_NAMES, "all"]):
            h = self.hist[i] if i < 3 else total
            s[f"staleness_p50_{name}"] = hist_quantile(h, 0.5)
            s[f"staleness_p95_{name}"] = hist_quantile(h, 0.95)
            smax = float(self.smax[i]) if i < 3 else float(self.smax.max())
            s[f"staleness_max_{name}"] = smax if h.sum() else float("nan")
            if i < 3:
                s[f"tier_share_{name}"] = float(h.sum() / total.sum()) if total.sum() else 0.0
        q = self.s.criteria.fresh_quantile
        s["staleness_q"] = s["staleness_max_all"] if q >= 1 else hist_quantile(total, q)
        s["fresh_share"] = self.fresh / self.samples if self.samples else float("nan")


def _provider_figures(s: dict[str, float], prov: list[ProviderRuntime | None], w: float) -> None:
    """Requests, calls, units, 429s, gate waits and quota use of each provider."""
    requests = gated = 0.0
    for pv in prov:
        if pv is None:
            continue
        c, p = pv.counters, pv.name
        requests += c.requests
        if pv.gated:
            gated += c.requests
        s[f"requests_per_min_{p}"] = c.requests / w * 60
        s[f"calls_per_min_{p}"] = c.calls / w * 60
        s[f"units_per_min_{p}"] = c.units / w * 60
        s[f"throttled_{p}"] = float(c.throttled)
        s[f"gate_wait_s_{p}"] = c.gate_wait_s
        s[f"api_time_mean_{p}"] = c.api_s / c.syncs if c.syncs else float("nan")
        s[f"requests_per_sync_{p}"] = c.requests / c.syncs if c.syncs else float("nan")
        s[f"calls_per_sync_{p}"] = c.calls / c.syncs if c.syncs else float("nan")
        for qt in pv.enforced.quotas if pv.enforced is not None else ():
            if qt.scope is QuotaScope.APP:
                use = c.units / w * qt.period_s
            else:
                use = max(pv.units_by_mailbox, default=0.0) / w * qt.period_s
            s[f"quota_use_{qt.name}"] = use
            s[f"quota_util_{qt.name}"] = use / qt.limit
    s["requests_per_s"] = requests / w
    # Requests that pass the daemon's Redis-backed quota gate (IMAP has no quota).
    s["gated_requests_per_s"] = gated / w


def message_lag(samples: dict[tuple[int, int], array[float]]) -> dict[str, float]:
    """Delivered -> stored percentiles per provider and tier and over all messages."""
    out: dict[str, float] = {}
    every: list[np.ndarray] = []
    for (p, t), a in sorted(samples.items()):
        if not len(a):
            continue
        key = f"{PROVIDERS[p]}_{TIER_NAMES[t]}"
        v = np.frombuffer(a, dtype=float)
        every.append(v)
        out[f"msg_lag_p50_{key}"] = float(np.percentile(v, 50))
        out[f"msg_lag_p95_{key}"] = float(np.percentile(v, 95))
        out[f"msg_lag_n_{key}"] = float(v.size)
    if every:
        v = np.concatenate(every)
        out["msg_lag_mean"] = float(v.mean())
        out["msg_lag_p50"] = float(np.percentile(v, 50))
        out["msg_lag_p95"] = float(np.percentile(v, 95))
    return out


def as_jsonable(m: RunMetrics) -> dict[str, Any]:
    """Plain types for JSON output."""
    return {"scalars": m.scalars, "series": {k: v.tolist() for k, v in m.series.items()}}
