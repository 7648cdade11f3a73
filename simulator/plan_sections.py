"""Report sections about the plan: claims, freshness, capacity tables, scaling, agreement."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from daemon import policy
from simulator import claims, figures
from simulator import html as h
from simulator.analytic import evaluate, job_profile, largest_interval
from simulator.results import ScenarioResult
from simulator.scenario import Scenario


def claims_html(checks: Sequence[claims.Check]) -> str:
    rows = [
        (c.claim, c.plan, c.assumption, c.model, "holds" if c.holds else "does not hold", c.note)
        for c in checks
    ]
    cls = ["pass" if c.holds else "fail" for c in checks]
    return (
        "<h2>The plan's claims</h2><p>Each claim is checked under the plan's own "
        "assumption (every job takes 10 s) and under the model's latency defaults. "
        "Capacity is measured by the drain test: every mailbox due at once, rate = 95 % of "
        "them over the time to sync them.</p>"
        + h.table(["claim", "plan", "assumption", "model", "verdict", "why"], rows, 1, cls)
    )


def freshness_html(presets: Sequence[Scenario]) -> str:
    rows = []
    for s in presets:
        p = job_profile(s)
        strict = largest_interval(s, p, s.population.tenants, s.daemon.processes)
        ops = largest_interval(
            s.updated({"criteria.fresh_quantile": 0.99}),
            p,
            s.population.tenants,
            s.daemon.processes,
        )
        rows.append(
            (
                s.name,
                h.fmt(s.profile().sync_interval_s),
                "none" if math.isnan(strict) else f"{strict:.0f} s",
                "none" if math.isnan(ops) else f"{ops:.0f} s",
            )
        )
    return (
        '<h2>Freshness: what "all mailboxes synced within 5 minutes" can mean</h2>'
        "<p>Staleness is <code>now − last_success_at</code>, sampled for every active "
        "mailbox every sample interval after warm-up. <b>Strict</b>: the largest sampled "
        "staleness (every mailbox, every moment) is within 5 minutes. <b>Operational</b>: "
        "99 % of samples are. With a 5-minute interval staleness necessarily exceeds 5 "
        "minutes by the scheduler cycle and the queue wait, so the table gives the largest "
        "interval that meets each reading (fast path). A full sync after an expired cursor "
        "can take tens of minutes under the 2026 Gmail per-user quota, which is why the "
        "strict reading has no solution while cursors expire.</p>"
        + h.table(
            [
                "scenario",
                "profile interval",
                "largest interval (strict)",
                "largest interval (operational, p99)",
            ],
            rows,
        )
    )


def sweep_html(s: Scenario, label: str, table: Sequence[dict[str, Any]], n: int) -> str:
    header = [
        "tenants",
        "processes",
        "hosts × instance",
        "concurrency h/n/l",
        "interval",
        "$/month",
        "$/tenant",
        "capacity/min",
        "p99 staleness",
        "CPU %",
        "RAM GB",
        "binding bottleneck",
        "event check",
    ]
    rows, cls = [], []
    for r in table:
        if not r["feasible"]:
            rows.append((r["tenants"], "no configuration of the grid passes", *[""] * 11))
            cls.append("fail")
            continue
        ev = (
            "—"
            if "event_pass" not in r
            else ("pass" if r["event_pass"] else f"fails: {r['event_failed']}")
        )
        rows.append(
            (
                r["tenants"],
                r["processes"],
                f"{r['hosts']} × {r['instance']}",
                r["concurrency"],
                f"{r['interval_s']:.0f} s",
                h.fmt(r["cost_month"]),
                h.fmt(r["cost_per_tenant"]),
                h.fmt(r["capacity_per_min"]),
                f"{r['staleness_q_s']:.0f} s",
                h.fmt(r["cpu_pct_host"]),
                h.fmt(r["ram_gb_host"]),
                f"{r['bottleneck']} ({r['bottleneck_ratio']:.0%})",
                ev,
            )
        )
        cls.append("pass" if r.get("event_pass", True) else "fail")
    return (
        f"<h2>Capacity table: {h.esc(label)}</h2><p>Cheapest configuration per tenant count "
        f"that meets "
        f"every criterion (freshness read operationally: p99 of staleness ≤ "
        f"{s.criteria.fresh_within_s:.0f} s), from {n:,} configurations of tenants × "
        f"concurrency × processes × hosts × instance × interval evaluated by the fast path; "
        f"each choice then re-run with the event simulation. Base: {h.esc(s.name)}, "
        f"quotas <code>{h.esc(s.daemon.quota_preset)}</code> enforced at "
        f"{s.daemon.quota_margin:.0%} (the daemon's quota margin).</p>"
        + h.table(header, rows, 1, cls)
        + h.figure(figures.cost_per_tenant(table), f"Cost per tenant ({label})")
    )


def scaling_html(presets: Sequence[Scenario], model: Sequence[ScenarioResult]) -> str:
    tenants = np.geomspace(100, 30_000, 60)
    fast = {}
    chosen = [s for s in presets if s.name in ("plan-b-1000", "plan-c-5000")] or presets[:2]
    for s in chosen:
        p = job_profile(s)
        fast[f"{s.daemon.profile} × {s.daemon.processes}"] = evaluate(
            s, p, tenants, np.full_like(tenants, s.daemon.processes)
        )
    return "<h2>Scaling</h2>" + h.figure(
        figures.scaling(fast, tenants, model), "Throughput, capacity and staleness against tenants"
    )


def agreement_html(rows: Sequence[Any]) -> str:
    bad = sum(1 for a in rows if not a.ok)
    body = [
        (
            a.scenario,
            a.metric,
            h.fmt(a.fast),
            h.fmt(a.event),
            h.fmt(a.event_ci),
            h.fmt(a.tolerance),
            "ok" if a.ok else "outside",
        )
        for a in rows
    ]
    return (
        f"<h2>Fast path against the event simulation</h2><p>{len(rows) - bad} of "
        f"{len(rows)} figures agree within the stated tolerance (overloaded scenarios "
        f"are skipped: the fast path reports them as unstable).</p>"
        + h.table(
            ["scenario", "figure", "fast path", "simulation", "± CI", "tolerance", ""],
            body,
            2,
            ["" if a.ok else "fail" for a in rows],
        )
    )


def quota_html() -> str:
    rows = [
        (preset, *row)
        for preset in ("as-planned", "documented-legacy", "documented-2026")
        for row in policy.quota_table(preset)
    ]
    return (
        "<h2>Quota presets (from the daemon's policy)</h2><p>The providers' limits. The "
        f"daemon enforces {policy.QUOTA_MARGIN_DEFAULT:.0%} of each by default "
        "(<code>policy.quota_margin</code>; scenarios: <code>daemon.quota_margin</code>), "
        "leaving headroom for clock skew and other clients.</p>"
        + h.table(["preset", "provider", "quota", "scope", "limit", "period s", "burst"], rows, 4)
    )


def files_html() -> str:
    return (
        "<h2>Data</h2><p>The numbers behind this page are in <code>scenarios.csv</code>, "
        "<code>claims.csv</code>, <code>capacity.csv</code>, <code>agreement.csv</code> "
        "and <code>report.json</code> beside it.</p>"
    )
