"""Report sections built from scenario results."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from daemon.policy import Profile
from simulator.inputs.scenario import Scenario
from simulator.render import figures
from simulator.render import formatting as fm
from simulator.render import html as h
from simulator.runs.results import ScenarioResult

# (metric key, label, unit) rows of the detail table; the unit is a ``formatting`` unit
# (``DURATION``: seconds shown in s/min/h, ``SHARE``: a fraction shown as a percentage).
S, P = fm.DURATION, fm.SHARE
DETAIL: list[tuple[str, str, str]] = [
    ("demand_per_min", "offered syncs (mailboxes / interval)", "/min"),
    ("throughput_per_min", "throughput, successful syncs", "/min"),
    ("capacity_per_min", "capacity, mailboxes (drain test)", "/min"),
    ("drain95_s", "drain: 95 % of mailboxes synced after", S),
    ("wait_mean_high", "queue wait high, mean", S),
    ("wait_p95_high", "queue wait high, p95", S),
    ("wait_mean_normal", "queue wait normal, mean", S),
    ("wait_mean_low", "queue wait low, mean", S),
    ("duration_mean_incremental", "incremental sync, mean", S),
    ("duration_p95_incremental", "incremental sync, p95", S),
    ("duration_mean_full", "full sync, mean", S),
    ("duration_p95_full", "full sync, p95", S),
    ("full_share", "share of full syncs", P),
    ("lag_mean", "due → synced lag, mean", S),
    ("lag_p95", "due → synced lag, p95", S),
    ("staleness_p50_all", "staleness p50", S),
    ("staleness_p95_all", "staleness p95", S),
    ("staleness_max_all", "staleness max", S),
    *[
        (f"staleness_{q}_{t}", f"staleness {q} ({t} tier)", S)
        for t in ("high", "normal", "low")
        for q in ("p50", "p95", "max")
    ],
    ("fresh_share", "share of samples within 5 min", P),
    ("tier_share_normal", "share of mailboxes last in normal", P),
    ("tier_share_low", "share of mailboxes last in low", P),
    ("util_high", "worker utilisation high", P),
    ("util_normal", "worker utilisation normal", P),
    ("util_low", "worker utilisation low", P),
    ("requests_per_min_gmail", "Gmail HTTP requests", "/min"),
    ("calls_per_min_gmail", "Gmail calls (batched gets counted singly)", "/min"),
    ("units_per_min_gmail", "Gmail quota units", "/min"),
    ("api_time_mean_gmail", "Gmail API time per sync, mean", S),
    ("requests_per_min_graph", "Graph requests", "/min"),
    ("api_time_mean_graph", "Graph API time per sync, mean", S),
    ("requests_per_min_imap", "IMAP round trips (handshakes included)", "/min"),
    ("calls_per_min_imap", "IMAP commands", "/min"),
    ("calls_per_sync_imap", "IMAP commands per sync, mean", ""),
    ("api_time_mean_imap", "IMAP time in commands per sync, mean", S),
    ("imap_login_share", "IMAP syncs opening a connection (login)", P),
    ("imap_noop_share", "IMAP syncs checking an idle connection (NOOP)", P),
    ("imap_conn_account_peak", "IMAP connections of one account, peak", ""),
    ("imap_conn_limit", "IMAP server limit per account", ""),
    ("imap_conn_process_mean", "IMAP pooled connections per process, mean", ""),
    ("imap_conn_process_peak", "IMAP pooled connections per process, peak", ""),
    ("throttled_gmail", "Gmail 429 answers", ""),
    ("throttled_graph", "Graph 429 answers", ""),
    ("error_rate", "failed syncs / attempts", P),
    ("rate_limited_share", "syncs failed rate-limited / attempts", P),
    ("cpu_pct_host", "CPU of the busiest host (share of its vCPUs)", "%"),
    ("cpu_core_per_process", "event-loop load per process (share of one core)", P),
    ("rss_mb_process", "RSS per process", "MB"),
    ("ram_gb_host", "RAM per host", "GB"),
    ("db_util", "PostgreSQL vCPU utilisation", P),
    ("redis_ops_per_s", "Redis commands", "/s"),
    ("cost_month", "cost", "USD/month"),
    ("cost_per_tenant", "cost per tenant", "USD/month"),
    ("little_err_high", "Little's law error, high queue", P),
]

# The unit of each verdict's value (``results.Verdict.name``).
VERDICT_UNITS = {"throughput": "/min", "cpu": "%", "ram": "GB", "errors": P, "freshness": S}

# How the raw (unformatted) figures of ``mailsync simulate`` are labelled.
_RAW = {S: ", s", P: " (fraction)", "": ""}


def detail_rows(metrics: Sequence[str]) -> list[tuple[str, str, str]]:
    """DETAIL plus one row per enforced quota found in the results: (key, label, unit)."""
    quotas = sorted({k.removeprefix("quota_util_") for k in metrics if k.startswith("quota_util_")})
    return [*DETAIL, *[(f"quota_util_{q}", f"quota {q}: use / limit", P) for q in quotas]]


def detail_keys(metrics: Sequence[str]) -> list[tuple[str, str]]:
    """(key, label with the raw figure's unit) for printing unformatted estimates."""
    out = []
    for key, label, unit in detail_rows(metrics):
        suffix = _RAW.get(unit, f", per {unit[1:]}" if unit.startswith("/") else f", {unit}")
        out.append((key, label + suffix))
    return out


def summary_section(
    scenarios: Sequence[Scenario], quick: bool, seconds: float, most: int = 0
) -> str:
    """How the report was made: what was modelled, the calibration notice, definitions
    (a section body without its title). ``most``: the replications sequential stopping
    may go up to (``simulator.runs.sequential``; 0 when the count is fixed)."""
    from simulator.report.summary import provenance_html
    from simulator.runs.sequential import TARGET

    s0 = scenarios[0]
    mode = " Quick mode: shorter horizon and fewer replications." if quick else ""
    reps = f"{s0.run.replications} replications per scenario"
    if most > s0.run.replications:
        reps = (
            f"{s0.run.replications} replications per scenario, and more (up to {most}) where "
            "the 95 % confidence interval of throughput or p50 / p95 staleness was still wider "
            f"than {fm.pct(TARGET)} of its mean (sequential stopping)"
        )
    return (
        f"<p>Discrete-event simulation of the daemon (schedulers claiming batches every cycle, "
        f"three tier queues with their own workers, quota gates as GCRA, 429 / Retry-After, "
        f"mail arrival and cursor expiry) with every policy decision taken by "
        f"<code>daemon.policy</code>. {reps}, "
        f"horizon {fm.duration(s0.run.horizon_s)} including {fm.duration(s0.run.warmup_s)} of "
        f"warm-up; figures are means with 95 % confidence intervals, shown as "
        f"<code>mean ± half-width</code>.{mode} Produced in {fm.duration(seconds)}.</p>"
        + provenance_html(scenarios, None)
        + "<p><b>Definitions.</b> Throughput: successful syncs per minute. Capacity: the drain "
        "test (every mailbox due at once; 95 % of them divided by the time to sync them). "
        "Staleness: time since a mailbox's last successful sync, sampled over time. Due → "
        "synced lag: from <code>next_sync_at</code> to the end of the sync that served it. "
        "Error rate: failed sync attempts over all attempts. CPU: busy time of the daemon "
        "processes on the busiest host as a percentage of its vCPUs; RAM: resident memory of "
        "the processes on a host. Per-mailbox quotas are shown for the busiest mailbox. IMAP "
        "has no request quota: its limit is the connections an account may hold at once, and "
        "each pooled connection costs the process memory.</p>"
    )


def presets_section(title: str, results: Sequence[ScenarioResult]) -> str:
    """Verdicts, a detail table with CIs and the per-scenario figures."""
    crit = results[0].scenario.criteria
    vnames = [v.text for v in results[0].verdicts]
    rows, cls = [], []
    for r in results:
        s = r.scenario
        cells = [s.name, f"{s.population.tenants:,}", f"{s.daemon.profile} × {s.daemon.processes}"]
        cells += [
            f"{fm.estimate(v.value, VERDICT_UNITS.get(v.name, ''))} {'✓' if v.passed else '✗'}"
            for v in r.verdicts
        ]
        cells.append(r.bottleneck)
        rows.append(cells)
        cls.append("pass" if r.passed else "fail")
    verdicts = h.table(
        ["scenario", "tenants", "profile × processes", *vnames, "binding bottleneck"], rows, 1, cls
    )
    detail_rows_ = []
    for key, label, unit in detail_rows([k for r in results for k in r.metrics]):
        cells = [fm.estimate(r.metrics.get(key), unit) for r in results]
        # A figure no scenario has (n/a in every column) is left out.
        if all(c == fm.MISSING for c in cells):
            continue
        detail_rows_.append([label, *cells])
    detail = h.table(["figure", *[r.scenario.name for r in results]], detail_rows_)
    criteria = (
        f"Criteria: capacity ≥ {fm.num(crit.throughput_per_min, '/min')}, "
        f"host CPU < {fm.num(crit.cpu_pct_max, '%')}, RAM < {fm.num(crit.ram_gb_max, 'GB')}, "
        f"failed syncs < {fm.pct(crit.error_rate_max)}, staleness (quantile "
        f"{fm.pct(crit.fresh_quantile)}) ≤ {fm.duration(crit.fresh_within_s)}. Rows are "
        "scenarios (✓ met, ✗ not met); the detail table below lists every figure, mean ± 95 % "
        "confidence interval."
    )
    return (
        f"<h2>{h.esc(title)}</h2><p>{h.esc(criteria)}</p>"
        + verdicts
        + detail
        + h.figure(
            figures.staleness_cdf(results),
            "Staleness distribution per tier",
            "One panel per scenario: the share of sampled mailboxes (y) whose time since their "
            "last successful sync is at most x minutes, per tier. The red dotted line is the "
            "5-minute target: where a curve crosses it is the share that is fresh; a curve far "
            "to the right of it is a tier that waits.",
        )
        + h.figure(
            figures.utilisation(results),
            "Utilisation",
            "How busy each resource is, in percent: worker pools per tier, CPU of the busiest "
            "host (of its vCPUs), RAM against its limit, and the database. A bar at the red "
            "line (100 %) is a saturated resource; the tallest bar names the bottleneck.",
        )
        + h.figure(
            figures.quota_use(results),
            "API use against quotas",
            "Each enforced provider quota's use as a percentage of its limit (log scale; "
            "mailbox quotas: the busiest mailbox). Bars near the red line (100 %) mean 429 "
            "answers and slowed syncs.",
        )
    )


def _recovered_h(r: ScenarioResult, limit_s: float) -> float:
    # First sample after which p95 staleness stays near its settled level (the last
    # quarter of the run) or within the limit, 10 % allowed for sampling noise.
    se = r.series
    if not se or se["t"].size == 0:
        return float("nan")
    tail = se["p95"][-max(1, se["p95"].size // 4) :]
    level = 1.1 * max(limit_s, float(np.nanmedian(tail)))
    bad = np.flatnonzero(se["p95"] > level)
    if bad.size == 0:
        return float(se["t"][0] / 3600)
    i = int(bad[-1]) + 1
    return float(se["t"][i] / 3600) if i < se["t"].size else float("nan")


def dynamics_section(
    timelines: Sequence[ScenarioResult], onboarding: Sequence[ScenarioResult]
) -> str:
    """Overload, recovery from outages, onboarding time per quota preset."""
    over, long_out, short_out = timelines
    return (
        "<h2>Dynamics the plan missed</h2>"
        + _overload_html(over)
        + _recovery_html(long_out, short_out)
        + _onboarding_html(onboarding, long_out.scenario.profile())
    )


def _overload_html(over: ScenarioResult) -> str:
    po = over.scenario.profile()
    n_over = over.scenario.population.tenants
    return (
        f"<h3>Overload does not demote: it queues</h3><p>{n_over:,} tenants on "
        f"<code>{po.name}</code> with 10 s jobs: demand is "
        f"{fm.num(over.get('demand_per_min'), 'syncs/min')}, the {po.concurrency.high} "
        f"high-tier workers do {fm.num(over.get('throughput_per_min'), '/min')}. The scheduler "
        f"claims {po.batch_size} mailboxes every {po.scheduler_interval_s:g} s, far more than "
        "the workers take, so every mailbox is claimed as soon as it is due, classified "
        "<em>at that moment</em> as fresh (high tier, incremental) and then waits in one long "
        f"high queue. Staleness settles near tenants ÷ throughput (p95 "
        f"{fm.duration(over.get('staleness_p95_all'))}) and nothing is demoted "
        f"({fm.pct(over.get('tier_share_normal') + over.get('tier_share_low'))} of samples in "
        f"lower tiers): the tier rule never sees the queue wait. The normal and low workers stay "
        f"idle (utilisation {fm.pct(over.get('util_normal'))} / {fm.pct(over.get('util_low'))}) "
        f"while the high pool runs at {fm.pct(over.get('util_high'))}.</p>"
        + h.figure(
            figures.dynamics(over),
            "Overload: tier shares and staleness",
            "Left: the share of mailboxes by the tier they were last queued in, over time; it "
            "stays (almost) all high, so overload does not demote. Right: p50, p95 and maximum "
            "staleness over time; a line that keeps rising is a queue that never drains.",
        )
    )


def _recovery_html(long_out: ScenarioResult, short_out: ScenarioResult) -> str:
    pb = long_out.scenario.profile()
    lim = long_out.scenario.criteria.fresh_within_s
    rec_long, rec_short = _recovered_h(long_out, lim), _recovered_h(short_out, lim)
    stale_long = long_out.scenario.population.stale_h
    stale_short = short_out.scenario.population.stale_h
    return (
        f"<h3>Recovery from an outage: the demotion loop</h3><p>The same 1,000 mailboxes on "
        f"<code>{pb.name}</code> come back from an outage of {stale_long:g} h: every mailbox "
        f"is older than normal_after_h = {pb.normal_after_h:g} h, so all of them are demoted to "
        f"the normal queue ({pb.concurrency.normal} workers) and, being older than "
        f"incremental_threshold_h = {pb.incremental_threshold_h:g} h, each needs a full sync. "
        f"The {pb.concurrency.high} high-tier workers sit almost idle (utilisation "
        f"{fm.pct(long_out.get('util_high'))} against {fm.pct(long_out.get('util_normal'))} in "
        "normal): there is no work stealing between tiers. Gmail full syncs are slowed "
        "further by the per-user quota. p95 staleness is back within "
        f"{fm.duration(lim)} after <b>{fm.duration(rec_long * 3600)}</b>; after an outage of "
        f"{stale_short:g} h (just under the threshold) it takes {fm.duration(rec_short * 3600)}. "
        "The rule "
        "meant to keep stale mailboxes from crowding out fresh ones turns a long outage into "
        "a recovery many times longer than the outage.</p>"
        + h.figure(
            figures.dynamics(long_out),
            "Recovery after the long outage",
            "Left: every mailbox starts demoted (normal tier) and moves back to high as it is "
            "synced. Right: staleness over time; recovery is where p95 falls back under the "
            "target and stays there.",
        )
    )


def _onboarding_html(onboarding: Sequence[ScenarioResult], pb: Profile) -> str:
    rows = [
        (
            figures.onboarding_label(r),
            fm.duration(r.get("onboard_p50_s_all")),
            fm.duration(r.get("onboard_p95_s_small")),
            fm.duration(r.get("drain95_s")),
            fm.duration(r.get("drain_s")),
            fm.num(r.get("partial_runs")),
        )
        for r in onboarding
    ]
    n = onboarding[0].scenario.population.tenants if onboarding else 0
    return (
        f"<h3>Onboarding: every mailbox new</h3><p>{n:,} never-synced mailboxes start on the "
        f"low tier ({pb.concurrency.low} workers per process on <code>{pb.name}</code>) with a "
        "full sync each. Under the plan's quota assumption a Gmail full sync is limited by the "
        "shared app budget; under the documented limits by the per-user budget (2026 projects: "
        "6,000 units/min, 20 units per message fetched). <em>Inline</em> is the daemon "
        "before chunked full syncs: a Gmail full sync held its worker for all of its quota "
        "wait (a 1,500-message mailbox about 5 minutes), so a few large mailboxes blocked "
        "the low tier. Now a run waits at most <code>full_sync_quota_wait_s</code> "
        f"({pb.full_sync_quota_wait_s:g} s), commits what it fetched and is queued again once "
        "the quota has refilled (<code>daemon.policy.quota_deferral</code>, which the model "
        "calls too): small mailboxes no longer wait behind large ones, and every Gmail "
        "mailbox advances at its own per-user pace.</p>"
        + h.table(
            [
                "quota preset",
                "half synced after",
                "smaller half: 95 % after",
                "95 % synced after",
                "all synced after",
                "runs that freed their worker",
            ],
            rows,
        )
        + (
            h.figure(
                figures.onboarding(onboarding),
                "Onboarding time",
                "Hours until 95 % and all of the never-synced mailboxes have had their first "
                "full sync, per quota preset; shorter is better. The gap between the two bars "
                "is the few large mailboxes held back by the per-user quota.",
            )
            if onboarding
            else ""
        )
    )
