"""The report's plots over time (throughput, sync lag, staleness, CPU and memory of the
daemon processes), each against the model's level averages, as PNG data URIs.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after choosing the backend
import numpy as np

from loadtest.run.compare import Row
from loadtest.run.measure import RunData, Window
from loadtest.run.report import ReportData
from loadtest.run.sampler import Samples
from simulator.model.metrics import hist_quantile


def _img(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _shade(ax: Any, windows: Sequence[Window], t0: float, spans: Sequence[Window]) -> None:
    for full in spans:
        ax.axvspan((full.start - t0) / 60, (full.end - t0) / 60, color="0.93", zorder=0)
    for w in windows:
        ax.axvspan((w.start - t0) / 60, (w.end - t0) / 60, color="#e3eefc", zorder=0)
        ax.text(
            (w.start - t0) / 60,
            1.0,
            w.name,
            transform=ax.get_xaxis_transform(),
            fontsize=8,
            va="bottom",
        )


def _predicted(
    ax: Any,
    windows: Sequence[Window],
    t0: float,
    values: Mapping[str, float],
    style: str,
    label: str,
) -> None:
    first = True
    for w in windows:
        v = values.get(w.name, math.nan)
        if math.isfinite(v):
            ax.hlines(
                v,
                (w.start - t0) / 60,
                (w.end - t0) / 60,
                colors="k",
                linestyles=style,
                label=label if first else None,
            )
            first = False


def _pred_map(rows: Sequence[Row], key: str) -> dict[str, float]:
    return {r.level: r.predicted for r in rows if r.key == key}


def figures(
    d: ReportData, data: RunData, samples: Samples, processes: int, spans: Sequence[Window]
) -> list[tuple[str, str]]:
    """(caption, image) of each plot."""
    end = max(w.end for w in spans)
    out = [_throughput_plot(d, data, end, spans)]
    if data.lag_s.size:
        out.append(_lag_plot(d, data, end, spans))
    if samples.staleness:
        out.append(_staleness_plot(d, samples, spans))
    out.append(_resources_plot(d, samples, processes, spans))
    return out


def _throughput_plot(
    d: ReportData, data: RunData, end: float, spans: Sequence[Window]
) -> tuple[str, str]:
    t0: float = d.t0
    fig, ax = plt.subplots(figsize=(9, 3.2))
    step = float(np.clip(round((end - t0) / 80), 5, 30))
    bins = np.arange(t0 - 60, end + 60, step)
    ok = data.finished[data.ok]
    counts, edges = np.histogram(ok, bins=bins)
    ax.plot((edges[:-1] - t0) / 60, counts * 60 / step, lw=1, label=f"measured ({step:g} s bins)")
    _predicted(ax, d.windows, t0, _pred_map(d.before, "throughput_per_min"), "--", "predicted")
    _predicted(ax, d.windows, t0, _pred_map(d.after, "throughput_per_min"), "-", "calibrated")
    for t, _what in d.events:
        ax.axvline((t - t0) / 60, color="tab:red", lw=0.8)
    _shade(ax, d.windows, t0, spans)
    ax.set_xlabel("minutes since the first level started")
    ax.set_ylabel("successful syncs / min")
    ax.legend(fontsize=8)
    return (
        "Throughput: measured syncs per minute against the model's level averages "
        "(dashed: the scenario's figures, solid: calibrated). Red lines mark daemon "
        "processes killed on purpose.",
        _img(fig),
    )


def _lag_plot(d: ReportData, data: RunData, end: float, spans: Sequence[Window]) -> tuple[str, str]:
    t0: float = d.t0
    fig, ax = plt.subplots(figsize=(9, 3.2))
    b = np.arange(t0, end + 30, 30.0)
    idx = np.digitize(data.lag_stored, b)
    xs, p50, p95 = [], [], []
    for i in range(1, b.size):
        v = data.lag_s[idx == i]
        if v.size >= 3:
            xs.append((b[i - 1] - t0) / 60)
            p50.append(np.percentile(v, 50))
            p95.append(np.percentile(v, 95))
    ax.plot(xs, p50, lw=1, label="measured p50 (30 s bins)")
    ax.plot(xs, p95, lw=1, label="measured p95")
    _predicted(ax, d.windows, t0, _pred_map(d.after, "msg_lag_p50"), "-", "calibrated p50")
    _predicted(ax, d.windows, t0, _pred_map(d.after, "msg_lag_p95"), ":", "calibrated p95")
    _shade(ax, d.windows, t0, spans)
    ax.set_xlabel("minutes since the first level started")
    ax.set_ylabel("delivered → stored, s")
    ax.legend(fontsize=8)
    return (
        "Sync lag, from delivery at the provider to the row in PostgreSQL, by when "
        "it was stored; the model's p50 and p95 per level.",
        _img(fig),
    )


def _staleness_plot(d: ReportData, samples: Samples, spans: Sequence[Window]) -> tuple[str, str]:
    t0: float = d.t0
    fig, ax = plt.subplots(figsize=(9, 3.2))
    ts = np.array([t for t, _ in samples.staleness])
    qs = np.array(
        [[hist_quantile(h.sum(axis=0), q) for q in (0.5, 0.95, 1.0)] for _, h in samples.staleness]
    )
    sel = ts >= t0 - 30
    for j, name in enumerate(("p50", "p95", "max")):
        ax.plot((ts[sel] - t0) / 60, qs[sel, j], lw=1, label=f"measured {name}")
    _predicted(ax, d.windows, t0, _pred_map(d.after, "staleness_p95_all"), "-", "calibrated p95")
    _shade(ax, d.windows, t0, spans)
    ax.set_xlabel("minutes since the first level started")
    ax.set_ylabel("seconds since last sync")
    ax.legend(fontsize=8)
    return (
        "Staleness of the active mailboxes (time since their last successful "
        "sync), sampled every 5 s.",
        _img(fig),
    )


def _resources_plot(
    d: ReportData, samples: Samples, processes: int, spans: Sequence[Window]
) -> tuple[str, str]:
    """CPU and memory of each daemon process."""
    t0: float = d.t0
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.2))
    for i in range(processes):
        for series in samples.procs.get(f"daemon-{i}", {}).values():
            tt = np.array([x.t for x in series])
            cc = np.array([x.cpu_s for x in series])
            rr = np.array([x.rss_mb for x in series])
            if tt.size > 2:
                a1.plot((tt[1:] - t0) / 60, np.diff(cc) / np.diff(tt), lw=0.6, label=f"daemon {i}")
                a2.plot((tt - t0) / 60, rr, lw=1, label=f"daemon {i}")
    _predicted(a1, d.windows, t0, _pred_map(d.after, "cpu_core_per_process"), "-", "calibrated")
    _predicted(a2, d.windows, t0, _pred_map(d.after, "rss_mb_process"), "-", "calibrated")
    a1.set_ylabel("CPU, cores")
    a2.set_ylabel("RSS, MB")
    for ax in (a1, a2):
        _shade(ax, d.windows, t0, spans)
        ax.set_xlabel("minutes")
        ax.legend(fontsize=7)
    return (
        "CPU (1 s samples) and resident memory of each daemon process against the "
        "calibrated model.",
        _img(fig),
    )
