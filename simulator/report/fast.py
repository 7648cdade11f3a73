"""``mailsync report --fast``: the analytic fast path only, no event simulation (seconds)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from simulator.checks.validation import fast_for
from simulator.fast import profiles
from simulator.fast.analytic import RATIO_NAMES, largest_interval
from simulator.inputs.loader import load_scenario, shipped_scenarios
from simulator.render import formatting as fm
from simulator.render import html as h
from simulator.report.plan_b import Options, jsonable, prepare, write_csv
from simulator.report.plan_sections import files_html, quota_html, scaling_html, sweep_html
from simulator.report.summary import capacity_table_html
from simulator.runs.frames import capacity_frame, records, tidy
from simulator.runs.sweep import capacity_table

# (key, label, ``formatting`` unit) of the fast path's figures.
FIGURES = [
    ("demand_per_min", "offered syncs", "/min"),
    ("throughput_per_min", "throughput", "/min"),
    ("capacity_per_min", "capacity (drain)", "/min"),
    ("wait_mean", "queue wait, mean", fm.DURATION),
    ("lag_mean", "due → synced lag, mean", fm.DURATION),
    ("staleness_mean", "staleness, mean", fm.DURATION),
    ("staleness_p95", "staleness p95", fm.DURATION),
    ("staleness_q", "staleness at the criterion quantile", fm.DURATION),
    ("util_workers", "worker utilisation (steady tier)", fm.SHARE),
    ("cpu_pct_host", "CPU of a host (share of its vCPUs)", "%"),
    ("ram_gb_host", "RAM per host", "GB"),
    ("imap_conn_account_peak", "IMAP connections of one account, peak", ""),
    ("imap_conn_process_mean", "IMAP pooled connections per process, mean", ""),
    ("db_util", "PostgreSQL utilisation", fm.SHARE),
    ("cost_month", "cost", "USD/month"),
    ("cost_per_tenant", "cost per tenant", "USD/month"),
]


def fast_report(refs: Sequence[str], o: Options) -> Path:
    """Fast-path figures, verdicts and a capacity table for the scenarios (or the presets)."""
    scen = [prepare(load_scenario(r), o) for r in (refs or shipped_scenarios())]
    rows: list[dict[str, Any]] = []
    for s in scen:
        f = fast_for(s)
        c = s.criteria
        row: dict[str, Any] = {"scenario": s.name, **{k: f[k] for k, _, _ in FIGURES}}
        row["stable"] = bool(f["stable"])
        row["pass_throughput"] = f["capacity_per_min"] >= c.throughput_per_min
        row["pass_cpu"] = f["cpu_pct_host"] < c.cpu_pct_max
        row["pass_ram"] = f["ram_gb_host"] < c.ram_gb_max
        row["pass_freshness"] = f["staleness_q"] <= c.fresh_within_s
        row["bottleneck"] = RATIO_NAMES[int(f["bottleneck"])]
        row["largest_interval_s"] = largest_interval(
            s, profiles.profile(s), s.population.tenants, s.daemon.processes
        )
        rows.append(row)
    base = scen[0].updated({"criteria.fresh_quantile": 0.99})
    table, n = capacity_table(base, verify=False, progress=o.progress)
    out = o.out / o.name
    out.mkdir(parents=True, exist_ok=True)
    header = ["figure", *[s.name for s in scen]]
    body_rows = [
        [label, *[fm.quantity(float(r[k]), None, unit) for r in rows]] for k, label, unit in FIGURES
    ]
    verdicts = [
        [f"meets {v}", *["✓ yes" if r[f"pass_{v}"] else "✗ no" for r in rows]]
        for v in ("throughput", "cpu", "ram", "freshness")
    ]
    extra = [
        ["stable", *["yes" if r["stable"] else "no" for r in rows]],
        ["busiest resource", *[str(r["bottleneck"]) for r in rows]],
        [
            "largest interval meeting freshness",
            *[
                "none"
                if math.isnan(r["largest_interval_s"])
                else fm.duration(r["largest_interval_s"])
                for r in rows
            ],
        ],
    ]
    summary = (
        "<p class='lead'>Closed-form estimates without event simulation (fast path only): "
        "batch-drain waits, capacity ceilings, resources and cost. Run without "
        "<code>--fast</code> for simulated figures with confidence intervals, the plan's "
        f"claims and the dynamics. Cheapest passing configuration per tenant count, from "
        f"{n:,} configurations:</p>" + capacity_table_html(base, table)
    )
    sections = [
        h.section("Summary", summary, folded=False),
        h.section("Scenarios (fast path)", h.table(header, body_rows + verdicts + extra)),
        h.fold(sweep_html(base, "fast path only, not re-simulated", table, n)),
        h.fold(scaling_html(scen, [])),
        h.fold(quota_html()),
        h.fold(files_html()),
    ]
    title = "mailsync capacity report (fast path only)"
    (out / "index.html").write_text(h.page(title, h.header(title, sections)), "utf-8")
    write_csv(out / "scenarios.csv", tidy(records(rows)))
    write_csv(out / "capacity.csv", capacity_frame(table))
    (out / "report.json").write_text(
        json.dumps(jsonable({"scenarios": rows, "capacity": table}), indent=1),
        encoding="utf-8",
    )
    return out / "index.html"
