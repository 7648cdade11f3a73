"""A calibration file (``simulator.inputs.calibration.Calibration``) made from what a run measured.

* Latency per provider and method: the daemons' ``mailsync_provider_request_seconds``
  histograms over the measured windows, turned into samples by their inverse CDF (log
  interpolation inside a bucket) and rescaled to the exact mean (``_sum / _count``).
* CPU: non-negative least squares over 20-second chunks of the whole run (warm-up full
  syncs, idle, every level) of the daemons' CPU seconds against requests' calls, stored
  messages, jobs and process-seconds (the idle cost of a process).
* Memory: the idle processes' RSS is the base; per job in flight, per mailbox and per
  pooled IMAP connection come from each process's peak in each level (least squares).
* PostgreSQL: its CPU against commits, stored messages and time (least squares).
"""

from __future__ import annotations

import math
import os
import platform
import subprocess
from collections.abc import Sequence
from datetime import UTC, datetime

import numpy as np
from scipy.optimize import nnls

from daemon.metrics import REQUEST_BUCKETS
from loadtest.run.measure import Counters, RunData, Window, process_cpu
from loadtest.run.sampler import Samples
from simulator.inputs.calibration import Calibration
from simulator.inputs.scenario import Scenario

QUANTILES = 400
CHUNK_S = 20.0


def histogram_samples(
    bounds: Sequence[float], cumulative: Sequence[float], total_sum: float, n: int = QUANTILES
) -> list[float]:
    """Samples standing for a Prometheus histogram: its inverse CDF at ``n`` quantiles,
    log-interpolated inside each bucket, scaled to the histogram's exact mean."""
    cum = np.asarray(cumulative, dtype=float)
    count = cum[-1] if cum.size else 0.0
    if count <= 0:
        return []
    edges = np.asarray(bounds, dtype=float)
    out = []
    for q in (np.arange(n) + 0.5) / n:
        target = q * count
        i = int(np.searchsorted(cum, target, side="left"))
        i = min(i, edges.size - 1)
        lo = edges[i - 1] if i > 0 else edges[0] / 1.32
        hi = edges[i]
        prev = cum[i - 1] if i > 0 else 0.0
        frac = (target - prev) / max(cum[i] - prev, 1e-12)
        out.append(float(lo * (hi / lo) ** min(max(frac, 0.0), 1.0)))
    mean = total_sum / count
    scale = mean / float(np.mean(out)) if np.mean(out) > 0 else 1.0
    return [round(x * scale, 6) for x in out]


def latency(
    counters: Counters, windows: Sequence[Window], connect_round_trips: int
) -> dict[str, dict[str, list[float]]]:
    """Per provider and method: latency samples from the daemons' histograms."""
    keys = {
        (lab["provider"], lab["method"])
        for lab in counters.labels("mailsync_provider_request_seconds_count")
    }
    out: dict[str, dict[str, list[float]]] = {}
    for provider, method in sorted(keys):
        cum = []
        for le in REQUEST_BUCKETS:
            cum.append(
                sum(
                    counters.delta(
                        w,
                        "mailsync_provider_request_seconds_bucket",
                        provider=provider,
                        method=method,
                        le=_le(le),
                    )
                    for w in windows
                )
            )
        total = sum(
            counters.delta(
                w, "mailsync_provider_request_seconds_sum", provider=provider, method=method
            )
            for w in windows
        )
        got = histogram_samples(REQUEST_BUCKETS, cum, total, min(QUANTILES, max(20, int(cum[-1]))))
        if not got:
            continue
        if method == "imap.connect" and connect_round_trips > 0:
            # The model draws one handshake per round trip; the daemon times the whole connect.
            got = [x / connect_round_trips for x in got]
        out.setdefault(provider, {})[method] = got
    return out


def _le(bound: float) -> str:
    # prometheus_client renders bucket bounds with repr-like floats ("0.001", "1.32").
    return str(float(bound))


def chunks(start: float, end: float, size: float = CHUNK_S) -> list[Window]:
    """Consecutive windows of ``size`` seconds (at least four per span, at least 4 s)."""
    size = max(4.0, min(size, (end - start) / 4))
    out = []
    t = start
    while t + size <= end:
        out.append(Window("chunk", t, t + size))
        t += size
    return out


def cpu_fit(
    samples: Samples, data: RunData, spans: Sequence[Window], processes: int, counters: Counters
) -> tuple[dict[str, float], float]:
    """CPU ms per call, per stored message, per job, per IMAP connection opened and per
    process-second; and the fit's relative error (RMS residual over mean)."""
    rows, y = [], []
    for span in spans:
        for w in chunks(span.start, span.end):
            cores = sum(process_cpu(samples, f"daemon-{i}", w)[0] for i in range(processes))
            fin = (data.finished >= w.start) & (data.finished < w.end)
            calls = float(data.calls[fin].sum())
            stored = float(np.nansum(data.stored[fin & data.ok]))
            jobs = float(fin.sum())
            connects = counters.delta(
                w, "mailsync_provider_request_seconds_count", provider="imap", method="imap.connect"
            )
            rows.append([calls, stored, jobs, connects, processes * w.seconds])
            y.append(cores * w.seconds * 1000)
    if len(rows) < 4:
        return {}, math.nan
    a, b = np.asarray(rows), np.asarray(y)
    # Relative errors count: a quiet chunk weighs as much as a busy one (the light level's
    # CPU is predicted from the same figures as the overload's).
    weight = 1.0 / np.maximum(b, 0.05 * max(float(np.max(b)), 1e-9))
    coef, _ = nnls(a * weight[:, None], b * weight)
    resid = (a @ coef - b) * weight
    err = float(np.sqrt(np.mean(resid**2)))
    return {
        "cpu_ms_per_call": float(coef[0]),
        "cpu_ms_per_message": float(coef[1]),
        "cpu_ms_per_job": float(coef[2]),
        "cpu_ms_per_connect": float(coef[3]),
        "cpu_ms_per_s_process": float(coef[4]),
    }, err


def db_fit(samples: Samples, data: RunData, spans: Sequence[Window]) -> dict[str, float]:
    """PostgreSQL ms per commit and per stored message (time-proportional load apart)."""
    rows, y = [], []
    for span in spans:
        for w in chunks(span.start, span.end):
            cores, _ = process_cpu(samples, "postgres", w)
            fin = (data.finished >= w.start) & (data.finished < w.end)
            rows.append([float(fin.sum()), float(np.nansum(data.stored[fin & data.ok])), w.seconds])
            y.append(cores * w.seconds * 1000)
    if len(rows) < 4:
        return {}
    coef, _ = nnls(np.asarray(rows), np.asarray(y))
    return {"db_commit_ms": float(coef[0]), "db_ms_per_message": float(coef[1])}


def rss_fit(
    base_mb: float, points: Sequence[tuple[float, float, float, float]], per_connection_kb: float
) -> dict[str, float]:
    """Per job, per mailbox and per pooled IMAP connection from (rss, jobs, mailboxes, IMAP
    connections) points.

    In a level, IMAP connections grow with the mailboxes, so a fit cannot tell the two apart;
    the warm-up's points, taken before any IMAP session is open, can. Without such points the
    connection's memory is ``per_connection_kb`` as given.
    """
    if not points:
        return {}
    separable = any(c > 0 for *_x, c in points) and any(c == 0 and m > 0 for _r, _j, m, c in points)
    b = np.array([max(0.0, r - base_mb) for r, *_x in points])
    if separable:
        a = np.array([[j, m / 1024, c / 1024] for _r, j, m, c in points])
        coef, _ = nnls(a, b)
        if coef[2] > 0:
            return {
                "rss_per_job_mb": float(coef[0]),
                "rss_per_mailbox_kb": float(coef[1]),
                "rss_per_imap_connection_kb": float(coef[2]),
            }
    a = np.array([[j, m / 1024] for _r, j, m, _c in points])
    b = b - np.array([c * per_connection_kb / 1024 for *_x, c in points])
    coef, _ = nnls(a, np.maximum(b, 0.0))
    return {"rss_per_job_mb": float(coef[0]), "rss_per_mailbox_kb": float(coef[1])}


def dispatch_fit(
    data: RunData, windows: Sequence[Window], enqueue_ms_per_job: float
) -> dict[str, float]:
    """Claim-to-start delay with a free worker. The runs claimed in one cycle share
    ``queued_at``; a batch's first ``started - queued_at`` is the dispatch when a worker was
    free, longer when all were busy: the 10th percentile over batches, less the batch's bulk
    enqueue (the scenario's per-job figure), stands for a free worker."""
    sel = np.zeros(data.queued.size, dtype=bool)
    for w in windows:
        sel |= (data.queued >= w.start) & (data.queued < w.end)
    q, st = data.queued[sel], data.started[sel]
    ok = np.isfinite(q) & np.isfinite(st)
    q, st = q[ok], st[ok]
    if q.size < 20:
        return {}
    keys, inverse, counts = np.unique(np.round(q, 6), return_inverse=True, return_counts=True)
    first = np.full(keys.size, np.inf)
    np.minimum.at(first, inverse, st - q)
    d = first * 1000 - enqueue_ms_per_job * counts
    return {"dispatch_ms": float(max(0.0, np.percentile(d, 10)))}


def overshoot_fit(
    data: RunData, counters: Counters, windows: Sequence[Window], period_s: float, processes: int
) -> dict[str, float]:
    """How much longer than its period a scheduler cycle lasts on average. With one
    process the claims' ``queued_at`` are its cycles' instants; with several, each
    process's cycles counter against the clock over the measured windows."""
    if processes == 1:
        sel = np.zeros(data.queued.size, dtype=bool)
        for w in windows:
            sel |= (data.queued >= w.start) & (data.queued < w.end)
        q = np.unique(np.round(data.queued[sel & np.isfinite(data.queued)], 6))
        d = np.diff(q)
        k = np.rint(d / period_s)
        ok = (k >= 1) & (k <= 5)
        if ok.sum() >= 20:
            late = (d[ok] - k[ok] * period_s) / k[ok]
            return {"scheduler_overshoot_ms": max(0.0, float(np.mean(late)) * 1000)}
    seconds = cycles = 0.0
    for w in windows:
        n = counters.delta(w, "mailsync_scheduler_cycles_total")
        if n > 0:
            cycles += n
            seconds += w.seconds * processes
    if cycles < 20:
        return {}
    return {"scheduler_overshoot_ms": max(0.0, (seconds / cycles - period_s) * 1000)}


def provenance(s: Scenario, source: str) -> str:
    """Scenario, date, machine and commit: what the report shows instead of the warning."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        commit = ""
    when = datetime.now(UTC).strftime("%Y-%m-%d")
    machine = f"{platform.machine()} {os.cpu_count()} cores"
    return (
        f"load test of {source} ({s.daemon.profile}, {s.daemon.processes} process"
        f"{'es' if s.daemon.processes != 1 else ''}) on {machine}, {when}"
        + (f", commit {commit}" if commit else "")
    )


def derive(
    s: Scenario,
    source: str,
    samples: Samples,
    data: RunData,
    levels: Sequence[Window],
    cpu_spans: Sequence[Window],
    idle: Window | None,
    rss_points: Sequence[tuple[float, float, float, float]],
    measured_by: str = "",
) -> tuple[Calibration, dict[str, float]]:
    """The calibration and the quality of its fits; ``measured_by`` is the run's own
    provenance (else this checkout's)."""
    k = s.daemon.processes
    fields: dict[str, object] = {"source": measured_by or provenance(s, source)}
    counters = Counters(samples)
    fields["latency_s"] = latency(counters, levels, s.providers.imap.connect_round_trips)
    cpu, cpu_err = cpu_fit(samples, data, cpu_spans, k, counters)
    fields.update(cpu)
    fields.update(db_fit(samples, data, cpu_spans))
    fields.update(dispatch_fit(data, levels, s.resources.enqueue_ms_per_job))
    fields.update(overshoot_fit(data, counters, levels, s.profile().scheduler_interval_s, k))
    quality = {"cpu_fit_rel_rms": cpu_err}
    if idle is not None:
        base = [process_cpu(samples, f"daemon-{i}", idle)[1] for i in range(k)]
        if all(b > 0 for b in base):
            fields["rss_base_mb"] = float(np.mean(base))
            fields.update(
                rss_fit(float(np.mean(base)), rss_points, s.resources.rss_per_imap_connection_kb)
            )
    fields["cpu_ms_per_cycle"] = 0.0  # folded into the per-process idle cost
    return Calibration.model_validate(fields), quality
