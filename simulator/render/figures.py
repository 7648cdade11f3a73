"""Report figures (matplotlib, Agg) returned as base64 PNG for a self-contained HTML page."""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import PercentFormatter

from simulator.model.metrics import EDGES, TIER_NAMES
from simulator.runs.results import ScenarioResult


def _png(fig: Any, bottom: float = 0.6, top: float = 0.45) -> str:
    """The figure as base64 PNG. Margins are fixed in inches (``bottom``: tick labels and
    axis label; ``top``: the title) rather than fitted by ``tight_layout``, which lays every
    tick label out once more and cost about 40 % of the report's plotting time."""
    buf = io.BytesIO()
    w, h = fig.get_size_inches()
    left, right = 0.85, 0.2
    rows, cols = fig.axes[0].get_subplotspec().get_gridspec().get_geometry()
    # Space between panels as a share of a panel: the next panel's y label and ticks beside,
    # this panel's x label and the next one's title below.
    panel_w = (w - left - right) / cols
    panel_h = (h - bottom - top) / rows
    fig.subplots_adjust(
        left=left / w,
        right=1 - right / w,
        bottom=bottom / h,
        top=1 - top / h,
        wspace=(left + 0.15) / max(panel_w - left, 0.5),
        hspace=(bottom + top) / max(panel_h - bottom - top, 0.5),
    )
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def scaling(
    fast: dict[str, dict[str, np.ndarray]], tenants: np.ndarray, points: Sequence[ScenarioResult]
) -> str:
    """Throughput and staleness against tenants (fast path lines, event points)."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    for label, out in fast.items():
        a.plot(tenants, out["throughput_per_min"], label=f"throughput, {label}")
        a.plot(tenants, out["capacity_per_min"], "--", label=f"capacity, {label}")
        st = np.where(np.isfinite(out["staleness_p95"]), out["staleness_p95"], np.nan)
        b.plot(tenants, st / 60, label=f"p95 staleness, {label}")
    for r in points:
        t = r.scenario.population.tenants
        a.errorbar(
            t,
            r.get("throughput_per_min"),
            yerr=r.metrics["throughput_per_min"].half,
            fmt="o",
            color="k",
        )
        b.errorbar(t, r.get("staleness_p95_all") / 60, fmt="o", color="k")
    a.set_xlabel("tenants")
    a.set_ylabel("mailboxes / min")
    a.set_title("Throughput and drain capacity (lines: fast path, dots: simulation)")
    a.legend(fontsize=7)
    b.set_xlabel("tenants")
    b.set_ylabel("minutes")
    b.set_title("p95 staleness (unstable configurations leave the plot)")
    b.axhline(5, color="r", lw=0.8, ls=":")
    b.legend(fontsize=7)
    return _png(fig)


def staleness_cdf(results: Sequence[ScenarioResult]) -> str:
    """Distribution of sampled staleness per tier, one panel per scenario in a two-column
    grid (readable at laptop width)."""
    n = len(results)
    cols = min(n, 2)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(11, 3.3 * rows), squeeze=False)
    centers = np.concatenate([[0.5], np.sqrt(EDGES[1:] * np.maximum(EDGES[:-1], 0.5)), [EDGES[-1]]])
    flat = list(axes.flat)
    for ax in flat[n:]:
        ax.set_visible(False)
    for ax, r in zip(flat[:n], results, strict=True):
        for i, tier in enumerate(TIER_NAMES):
            h = r.staleness_hist[i] if r.staleness_hist.size else np.zeros(1)
            if h.sum() == 0:
                continue
            cdf = np.cumsum(h) / h.sum()
            ax.plot(
                centers[: cdf.size] / 60,
                cdf,
                label=f"{tier} ({h.sum() / r.staleness_hist.sum():.0%})",
            )
        ax.set_xscale("log")
        nz: Any = np.flatnonzero(r.staleness_hist.sum(axis=0)) if r.staleness_hist.size else []
        if len(nz):
            ax.set_xlim(max(centers[nz[0]] / 60, 0.05), centers[nz[-1]] / 60 * 1.5)
        ax.axvline(5, color="r", lw=0.8, ls=":")
        ax.set_title(r.scenario.name, fontsize=10)
        ax.set_xlabel("staleness, minutes")
        ax.set_ylabel("share of samples")
        ax.yaxis.set_major_formatter(PercentFormatter(xmax=1))
        ax.legend(fontsize=8)
    return _png(fig)


def utilisation(results: Sequence[ScenarioResult]) -> str:
    """Worker utilisation per tier, CPU (percent of the busiest host's vCPUs), RAM against
    its limit and database load per scenario, all in percent."""
    keys = [
        ("util_high", "workers high", 1.0),
        ("util_normal", "workers normal", 1.0),
        ("util_low", "workers low", 1.0),
        ("cpu_pct_host", "CPU, % of host", 0.01),
        ("ratio_ram", "RAM, % of limit", 1.0),
        ("db_util", "database", 1.0),
    ]
    fig, ax = plt.subplots(figsize=(11, 3.8))
    width = 0.8 / len(keys)
    x = np.arange(len(results))
    for j, (k, label, scale) in enumerate(keys):
        vals = [r.get(k) * scale for r in results]
        vals = [0.0 if math.isnan(v) else v for v in vals]
        ax.bar(x + j * width, vals, width, label=label)
    ax.set_xticks(x + 0.4 - width / 2, [r.scenario.name for r in results], fontsize=9)
    ax.set_ylabel("busy, % of capacity")
    ax.yaxis.set_major_formatter(PercentFormatter(xmax=1))
    ax.axhline(1.0, color="r", lw=0.8, ls=":")
    ax.legend(fontsize=8, ncol=3)
    ax.set_title("Utilisation")
    return _png(fig)


def quota_use(results: Sequence[ScenarioResult]) -> str:
    """API use against every enforced quota (app: whole app; mailbox: the busiest mailbox)."""
    fig, ax = plt.subplots(figsize=(11, 3.6))
    names = sorted(
        {
            k.removeprefix("quota_util_")
            for r in results
            for k in r.metrics
            if k.startswith("quota_util_")
        }
    )
    width = 0.8 / max(len(names), 1)
    x = np.arange(len(results))
    for j, q in enumerate(names):
        vals = [r.get(f"quota_util_{q}") for r in results]
        ax.bar(x + j * width, [0 if math.isnan(v) else v for v in vals], width, label=q)
    ax.set_xticks(x + 0.4 - width / 2, [r.scenario.name for r in results], fontsize=8)
    ax.set_yscale("symlog", linthresh=1e-3)
    ax.yaxis.set_major_formatter(PercentFormatter(xmax=1, decimals=1))
    ax.axhline(1.0, color="r", lw=0.8, ls=":")
    ax.set_ylabel("use, % of limit")
    ax.legend(fontsize=8, ncol=4)
    ax.set_title("API use against each quota (mailbox quotas: the busiest mailbox)")
    return _png(fig)


def cost_per_tenant(rows: Sequence[dict[str, Any]]) -> str:
    """Cost per tenant of the cheapest passing configuration per tenant count."""
    ok = [r for r in rows if r.get("feasible")]
    fig, ax = plt.subplots(figsize=(6, 3.6))
    if ok:
        t = [r["tenants"] for r in ok]
        ax.plot(t, [r["cost_per_tenant"] for r in ok], "o-")
        for r in ok:
            ax.annotate(
                f"{r['processes']}p/{r['hosts']}×{r['instance']}",
                (r["tenants"], r["cost_per_tenant"]),
                fontsize=7,
            )
    ax.set_xscale("log")
    ax.set_xlabel("tenants")
    ax.set_ylabel("USD / tenant / month")
    ax.set_title("Cost per tenant of the cheapest passing configuration")
    return _png(fig)


def dynamics(r: ScenarioResult) -> str:
    """Tier shares and staleness over time in an overloaded run (the demotion loop)."""
    s = r.series
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.6))
    if s and s["t"].size:
        h = s["t"] / 3600
        a.stackplot(
            h, 1 - s["normal"] - s["low"], s["normal"], s["low"], labels=["high", "normal", "low"]
        )
        a.set_ylim(0, 1)
        a.legend(fontsize=7, loc="lower left")
        b.plot(h, s["p50"] / 3600, label="p50")
        b.plot(h, s["p95"] / 3600, label="p95")
        b.plot(h, s["max"] / 3600, label="max")
        b.legend(fontsize=7)
    a.set_xlabel("hours")
    a.set_ylabel("share of mailboxes by last tier")
    a.set_title(f"Tier of each mailbox over time: {r.scenario.name}", fontsize=9)
    b.set_xlabel("hours")
    b.set_ylabel("staleness, hours")
    b.set_title("Staleness over time")
    return _png(fig)


def onboarding_label(r: ScenarioResult) -> str:
    """The quota preset, and whether full syncs waited for their quota inline (before
    chunking)."""
    inline = r.scenario.daemon.overrides.get("full_sync_quota_wait_s", 0) >= 1e6
    return r.scenario.daemon.quota_preset + (" (inline)" if inline else "")


def onboarding(results: Sequence[ScenarioResult]) -> str:
    """Time to sync every never-synced mailbox once, per quota preset."""
    fig, ax = plt.subplots(figsize=(6, 3.4))
    names = [onboarding_label(r).replace(" (", "\n(") for r in results]
    vals = [r.get("drain_s") / 3600 for r in results]
    v95 = [r.get("drain95_s") / 3600 for r in results]
    x = np.arange(len(results))
    ax.bar(x - 0.2, v95, 0.4, label="95 % synced")
    ax.bar(x + 0.2, vals, 0.4, label="all synced")
    ax.set_xticks(x, names, fontsize=8)
    ax.set_ylabel("hours")
    ax.legend(fontsize=7)
    ax.set_title("Onboarding: first full sync of every mailbox")
    return _png(fig, bottom=0.75)
