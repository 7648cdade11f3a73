"""The report's first screen: the capacity question answered from the results already computed.

Per tenant count the cheapest configuration of the capacity table that meets the criteria,
what it costs, its headroom, bottleneck and verdict; one sentence per assumption of the plan
claims check; how the shipped presets fare; and which input figures are measured and which
are placeholders. Nothing here computes a figure the report does not already have.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from simulator.inputs.calibration import Calibration
from simulator.inputs.distributions import mean as dist_mean
from simulator.inputs.scenario import Scenario
from simulator.render import formatting as fm
from simulator.render import html as h
from simulator.report.claims import Check
from simulator.runs.results import ScenarioResult

SUMMARY_TABLE_ID = "summary-table"


def _config(base: Scenario, r: dict[str, Any]) -> list[str]:
    return [
        f"{base.daemon.profile}, workers {r['concurrency']}",
        f"{r['processes']}",
        f"{r['hosts']} × {r['instance']}",
        fm.duration(r["interval_s"]),
    ]


def _verdict(r: dict[str, Any]) -> tuple[str, bool]:
    if not r["feasible"]:
        return "✗ nothing in the grid passes", False
    if "event_pass" not in r:
        return "✓ passes (fast path only)", True
    if r["event_pass"]:
        return "✓ passes (simulated)", True
    return f"✗ simulated: fails {r['event_failed']}", False


def capacity_rows(
    base: Scenario, table: Sequence[dict[str, Any]]
) -> tuple[list[list[str]], list[str]]:
    """One row per tenant count of a capacity table (``sweep.cheapest`` rows), and the row
    classes (pass / fail)."""
    rows, cls = [], []
    for r in table:
        verdict, ok = _verdict(r)
        if not r["feasible"]:
            rows.append([f"{r['tenants']:,}", verdict, *["—"] * 8])
        else:
            ratio = r["bottleneck_ratio"]
            rows.append(
                [
                    f"{r['tenants']:,}",
                    verdict,
                    *_config(base, r),
                    fm.usd_month(r["cost_month"]),
                    fm.usd_month(r["cost_per_tenant"]),
                    fm.pct(max(0.0, 1 - ratio), digits=2),
                    f"{r['bottleneck']}, {fm.pct(ratio, digits=2)} busy",
                ]
            )
        cls.append("pass" if ok else "fail")
    return rows, cls


CAPACITY_HEADER = [
    "tenants",
    "verdict",
    "profile, workers h/n/l per process",
    "processes",
    "hosts × instance",
    "sync interval",
    "cost",
    "cost per tenant",
    "headroom",
    "binding bottleneck",
]


def capacity_table_html(
    base: Scenario, table: Sequence[dict[str, Any]], ident: str | None = SUMMARY_TABLE_ID
) -> str:
    """The summary table of the cheapest passing configuration per tenant count."""
    rows, cls = capacity_rows(base, table)
    return h.table(CAPACITY_HEADER, rows, 2, cls, ident)


def _costs_sentence(label: str, table: Sequence[dict[str, Any]]) -> str:
    # A further capacity table (another assumption) in one sentence: processes and cost per
    # tenant count, the cost said once when it is the same everywhere.
    ok = [r for r in table if r["feasible"] and r.get("event_pass", True)]
    none = [f"{r['tenants']:,}" for r in table if r not in ok]
    costs = {fm.usd_month(r["cost_month"]) for r in ok}
    if len(costs) == 1:
        (cost,) = costs
        parts = [f"{r['tenants']:,}: {r['processes']}" for r in ok]
        text = f"all cost {cost}; processes per tenant count: {', '.join(parts)}"
    else:
        parts = [
            f"{r['tenants']:,}: {r['processes']} on {r['hosts']} × {r['instance']}, "
            f"{fm.usd_month(r['cost_month'])}"
            for r in ok
        ]
        text = "are " + ("; ".join(parts) or "none")
    tail = f". Nothing passes for {', '.join(none)} tenants" if none else ""
    return (
        f"<p>Under {h.esc(label)}, the cheapest passing configurations {h.esc(text)}"
        f"{h.esc(tail)}.</p>"
    )


def claims_sentences(checks: Sequence[Check]) -> str:
    """One sentence per assumption: how many of the plan's claims hold, and which do not."""
    by: dict[str, list[Check]] = {}
    for c in checks:
        by.setdefault(c.assumption, []).append(c)
    items = []
    for assumption, cs in by.items():
        held = sum(c.holds for c in cs)
        failed = sorted({c.claim for c in cs if not c.holds})
        tail = f"; not: {', '.join(failed)}" if failed else ""
        items.append(
            f"<li>Under <b>{h.esc(assumption)}</b>, {held} of {len(cs)} of the plan's "
            f"claims hold{h.esc(tail)}.</li>"
        )
    return f"<ul>{''.join(items)}</ul>"


def presets_sentences(graded: Sequence[tuple[str, Sequence[ScenarioResult]]]) -> str:
    """Per assumption: how many shipped presets meet every criterion, and which criteria
    fail how often."""
    parts, strict = [], False
    for label, results in graded:
        if not results:
            continue
        ok = sum(r.passed for r in results)
        fails: dict[str, int] = {}
        for r in results:
            for v in r.verdicts:
                if not v.passed:
                    fails[v.name] = fails.get(v.name, 0) + 1
        why = ", ".join(f"{name} in {n}" for name, n in fails.items())
        strict |= "freshness" in fails and results[0].scenario.criteria.fresh_quantile >= 1
        parts.append(
            f"under {h.esc(label)}, {ok} of {len(results)} meet every criterion"
            + (f" (not met: {h.esc(why)})" if why else "")
        )
    if not parts:
        return ""
    note = (
        " Their freshness is read strictly (every mailbox at every sample); the Freshness "
        "section gives the longest interval each reading allows."
        if strict
        else ""
    )
    return f"<p><b>Shipped presets:</b> {'; '.join(parts)}.{note}</p>"


def _unit(field: str) -> str:
    for suffix, unit in (("_ms", "ms"), ("_mb", "MB"), ("_kb", "KB")):
        if f"{suffix}_" in field or field.endswith(suffix):
            return unit
    return ""


def provenance_html(scenarios: Sequence[Scenario], cal: Calibration | None) -> str:
    """Which input figures are measured (the calibration file's) and which are the
    placeholders of the shipped ``base.yaml``, with their values."""
    s0 = scenarios[0]
    fields = [f for f in Calibration.model_fields if f not in ("source", "latency_s")]
    providers = sorted({p for s in scenarios for p in s.population.providers})
    measured_latency = sorted(cal.latency_s) if cal else []
    measured = [f for f in fields if cal is not None and getattr(cal, f) is not None]

    def value(f: str) -> str:
        return f"<code>{f}</code> {fm.num(getattr(s0.resources, f), _unit(f))}"

    def latency(p: str) -> str:
        return f"{p} {fm.duration(dist_mean(s0.providers[p].latency_s))}"

    placeholders = [latency(p) for p in providers if p not in measured_latency]
    placeholder_res = [value(f) for f in fields if f not in measured]
    calibrated = sorted({s.calibrated_from for s in scenarios if s.calibrated_from})
    if not calibrated:
        return (
            "<p class='note'><b>Uncalibrated defaults.</b> No input figure is measured: "
            f"provider latency (mean per request: {', '.join(placeholders)}) and the CPU, "
            f"memory and database costs ({', '.join(placeholder_res)}) are placeholders "
            "documented in the shipped <code>base.yaml</code>, not measurements of the "
            "daemon. Pass <code>--calibration FILE</code> to replace them with measured "
            "figures.</p>"
        )
    head = f"<p>Calibrated from: {h.esc(', '.join(calibrated))}."
    if cal is None:
        return head + "</p>"
    got = [f"{p} latency" for p in measured_latency] + [value(f) for f in measured]
    rest = placeholders + placeholder_res
    return (
        f"{head} Measured: {', '.join(got) or 'nothing'}. "
        f"Still placeholders: {', '.join(rest) or 'none'}.</p>"
    )


def summary_html(
    sweeps: Sequence[tuple[Scenario, str, Sequence[dict[str, Any]], int]],
    presets: Sequence[tuple[str, Sequence[ScenarioResult]]],
    checks: Sequence[Check],
    scenarios: Sequence[Scenario],
    cal: Calibration | None,
) -> str:
    """The summary section's body: capacity table, claims, presets, provenance."""
    base, label, table, n = sweeps[0]
    c = base.criteria
    lead = (
        f"<p class='lead'>Cheapest configuration per tenant count that meets the Plan B "
        f"criteria (capacity ≥ {fm.num(c.throughput_per_min, '/min')}, host CPU < "
        f"{fm.num(c.cpu_pct_max, '%')}, RAM < {fm.num(c.ram_gb_max, 'GB')}, failed syncs < "
        f"{fm.pct(c.error_rate_max)}, {fm.pct(c.fresh_quantile)} of sampled staleness ≤ "
        f"{fm.duration(c.fresh_within_s)}), chosen by the fast path from {n:,} configurations "
        f"under {h.esc(label)} and re-run with the event simulation. Headroom (fast path): how "
        "far the busiest resource is from its limit.</p>"
    )
    more = "".join(_costs_sentence(lbl, t) for _, lbl, t, _ in sweeps[1:])
    return (
        lead
        + capacity_table_html(base, table)
        + more
        + "<p><b>The plan's claims</b> (details in the section of that name):</p>"
        + claims_sentences(checks)
        + presets_sentences(presets)
        + provenance_html(scenarios, cal)
    )
