"""Report sections about the plan: claims, freshness, capacity tables, scaling, agreement."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from daemon import policy
from simulator.fast.analytic import evaluate, largest_interval, mean_interval
from simulator.inputs.scenario import Scenario
from simulator.render import figures
from simulator.render import formatting as fm
from simulator.render import html as h
from simulator.report import claims
from simulator.runs.results import ScenarioResult


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
        p = claims.profile(s)
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
        "Redis, PostgreSQL",
        "concurrency h/n/l",
        "sync interval (changed)",
        "cost",
        "cost per tenant",
        "capacity",
        "p99 staleness",
        "CPU, share of the host",
        "RAM per host",
        "binding bottleneck",
        "event check",
    ]
    rows, cls = [], []
    for r in table:
        if not r["feasible"]:
            rows.append((r["tenants"], "no configuration of the grid passes", *[""] * 12))
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
                r.get("services", ""),
                r["concurrency"],
                fm.duration(r["interval_s"]),
                fm.usd_month(r["cost_month"]),
                fm.usd_month(r["cost_per_tenant"]),
                fm.num(r["capacity_per_min"], "/min"),
                fm.duration(r["staleness_q_s"]),
                fm.num(r["cpu_pct_host"], "%"),
                fm.num(r["ram_gb_host"], "GB"),
                f"{r['bottleneck']} ({fm.pct(r['bottleneck_ratio'], digits=2)})",
                ev,
            )
        )
        cls.append("pass" if r.get("event_pass", True) else "fail")
    base_iv = mean_interval(s)
    changed = sorted({r["interval_s"] for r in table if r["feasible"]} - {base_iv})
    iv_note = (
        f", sync interval changed from {fm.duration(base_iv)} to "
        f"{', '.join(fm.duration(x) for x in changed)}"
        if changed
        else ""
    )
    return (
        f"<h2>Capacity table: {h.esc(label)}{h.esc(iv_note)}</h2><p>Cheapest configuration "
        "per tenant count that meets "
        f"every criterion (freshness read operationally: p99 of staleness ≤ "
        f"{s.criteria.fresh_within_s:.0f} s), from {n:,} configurations of tenants × "
        f"concurrency × processes × hosts × instance × interval evaluated by the fast path; "
        f"each choice then re-run with the event simulation. Base: {h.esc(s.name)}, "
        f"quotas <code>{h.esc(s.daemon.quota_preset)}</code> enforced at "
        f"{fm.pct(s.daemon.quota_margin)} (the daemon's quota margin). This table changes "
        "inputs of the base scenario: the sync interval, the workers per process, the "
        "processes, hosts and instance. Costs come from the same function as every other "
        "table (hosts × instance + Redis tier + PostgreSQL tier); a deployment costs the same "
        "wherever it appears.</p>"
        + h.table(header, rows, 1, cls)
        + h.figure(figures.cost_per_tenant(table), f"Cost per tenant ({label})")
    )


def scaling_html(presets: Sequence[Scenario], model: Sequence[ScenarioResult]) -> str:
    tenants = np.geomspace(100, 30_000, 60)
    fast = {}
    chosen = [s for s in presets if s.name in ("plan-b-1000", "plan-c-5000")] or presets[:2]
    for s in chosen:
        p = claims.profile(s)
        fast[f"{s.daemon.profile} × {s.daemon.processes}"] = evaluate(
            s, p, tenants, np.full_like(tenants, s.daemon.processes)
        )
    return "<h2>Scaling</h2>" + h.figure(
        figures.scaling(fast, tenants, model), "Throughput, capacity and staleness against tenants"
    )


def _agreement_verdict(a: Any) -> str:
    if a.resolved:
        return "ok" if a.ok else "outside"
    return "within CI" if a.ok else "outside CI"


def agreement_html(rows: Sequence[Any]) -> str:
    bad = sum(1 for a in rows if not a.ok)
    resolved = [a for a in rows if a.resolved]
    good = sum(1 for a in resolved if a.ok)
    unresolved = len(rows) - len(resolved)
    body = [
        (
            a.scenario,
            a.metric,
            h.fmt(a.fast),
            h.fmt(a.event),
            h.fmt(a.event_ci),
            ("+" if a.error > 0 else "") + fm.num(a.error * 100, "%"),
            fm.num(a.tolerance * 100, "%"),
            _agreement_verdict(a),
            a.note,
        )
        for a in rows
    ]
    return (
        f"<h2>Fast path against the event simulation</h2><p>{good} of {len(resolved)} "
        "figures the simulation resolves agree within their relative tolerance "
        f"({bad} of all {len(rows)} do not). A figure is resolved when the simulation's 95 % "
        "confidence interval is narrower than the tolerance; "
        f"{unresolved} are not (too few replications), and are held to the interval instead. "
        "Error = (fast − simulation) / simulation. Overloaded scenarios are skipped: the fast "
        "path reports them as unstable. Where the fast path is not expected to agree, the "
        "last column says why. Where one scheduler releases more mailboxes than it has "
        "workers and full syncs run in quota-sized chunks, the batches walk round the "
        "interval's slots and the chunks fall in step with the drains; there the fast "
        "path's figures for a run take the batches' spread, the chunks busy at a release "
        "and their waits from the cycle map (a seeded reduced simulation of the release "
        "cycle, about a second per configuration), and the tables' sweeps keep the "
        "closed forms, whose mean wait there is off by −12 % to +6 % with 2 s syncs. With "
        "several schedulers a run's wait depends on the phases it draws; there the fast "
        "path's figure for a run is the phased map's mean over drawn phases.</p>"
        + h.table(
            [
                "scenario",
                "figure",
                "fast path",
                "simulation",
                "± CI",
                "error",
                "tolerance",
                "",
                "not expected to agree",
            ],
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
