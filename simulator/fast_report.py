"""``mailsync report --fast``: the analytic fast path only, no event simulation (seconds)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from simulator import html as h
from simulator.analytic import RATIO_NAMES, job_profile, largest_interval
from simulator.loader import load_scenario, shipped_scenarios
from simulator.plan_sections import files_html, quota_html, scaling_html, sweep_html
from simulator.report import Options, jsonable, prepare, write_csv
from simulator.sweep import capacity_table
from simulator.validation import fast_for

FIGURES = [
    ("demand_per_min", "offered syncs/min"),
    ("throughput_per_min", "throughput/min"),
    ("capacity_per_min", "capacity/min (drain)"),
    ("wait_mean", "queue wait, mean s"),
    ("lag_mean", "due → synced lag, mean s"),
    ("staleness_mean", "staleness, mean s"),
    ("staleness_p95", "staleness p95, s"),
    ("staleness_q", "staleness at the criterion quantile, s"),
    ("util_workers", "worker utilisation (steady tier)"),
    ("cpu_pct_host", "CPU % of a host"),
    ("ram_gb_host", "RAM per host, GB"),
    ("imap_conn_account_peak", "IMAP connections of one account, peak"),
    ("imap_conn_process_mean", "IMAP pooled connections per process, mean"),
    ("db_util", "PostgreSQL utilisation"),
    ("cost_month", "cost, USD/month"),
    ("cost_per_tenant", "cost per tenant, USD/month"),
]


def fast_report(refs: Sequence[str], o: Options) -> Path:
    """Fast-path figures, verdicts and a capacity table for the scenarios (or the presets)."""
    scen = [prepare(load_scenario(r), o) for r in (refs or shipped_scenarios())]
    rows: list[dict[str, Any]] = []
    for s in scen:
        f = fast_for(s)
        c = s.criteria
        row: dict[str, Any] = {"scenario": s.name, **{k: f[k] for k, _ in FIGURES}}
        row["stable"] = bool(f["stable"])
        row["pass_throughput"] = f["capacity_per_min"] >= c.throughput_per_min
        row["pass_cpu"] = f["cpu_pct_host"] < c.cpu_pct_max
        row["pass_ram"] = f["ram_gb_host"] < c.ram_gb_max
        row["pass_freshness"] = f["staleness_q"] <= c.fresh_within_s
        row["bottleneck"] = RATIO_NAMES[int(f["bottleneck"])]
        row["largest_interval_s"] = largest_interval(
            s, job_profile(s), s.population.tenants, s.daemon.processes
        )
        rows.append(row)
    base = scen[0].updated({"criteria.fresh_quantile": 0.99})
    table, n = capacity_table(base, verify=False, progress=o.progress)
    out = o.out / o.name
    out.mkdir(parents=True, exist_ok=True)
    header = ["figure", *[s.name for s in scen]]
    body_rows = [[label, *[h.fmt(float(r[k])) for r in rows]] for k, label in FIGURES]
    verdicts = [
        [f"pass: {v}", *[str(r[f"pass_{v}"]) for r in rows]]
        for v in ("throughput", "cpu", "ram", "freshness")
    ]
    extra = [
        ["stable", *[str(r["stable"]) for r in rows]],
        ["busiest resource", *[str(r["bottleneck"]) for r in rows]],
        [
            "largest interval meeting freshness",
            *[
                "none"
                if math.isnan(r["largest_interval_s"])
                else f"{r['largest_interval_s']:.0f} s"
                for r in rows
            ],
        ],
    ]
    body = (
        "<h1>mailsync capacity report (fast path only)</h1><p>Closed-form estimates without "
        "event simulation: batch-drain waits, capacity ceilings, resources and cost. Run "
        "without <code>--fast</code> for simulated figures with confidence intervals, the "
        "plan's claims and the dynamics.</p>"
        + h.table(header, body_rows + verdicts + extra)
        + sweep_html(base, "fast path only, not re-simulated", table, n)
        + scaling_html(scen, [])
        + quota_html()
        + files_html()
    )
    (out / "index.html").write_text(h.page("mailsync fast capacity report", body), "utf-8")
    write_csv(out / "scenarios.csv", rows)
    write_csv(out / "capacity.csv", table)
    (out / "report.json").write_text(
        json.dumps(jsonable({"scenarios": rows, "capacity": table}), indent=1),
        encoding="utf-8",
    )
    return out / "index.html"
