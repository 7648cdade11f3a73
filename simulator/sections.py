"""Report sections built from scenario results."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from simulator import figures
from simulator import html as h
from simulator.results import ScenarioResult
from simulator.scenario import Scenario

# (metric key, label) rows of the detail table; "±" columns carry the 95 % CI.
DETAIL = [
    ("demand_per_min", "offered syncs/min (mailboxes / interval)"),
    ("throughput_per_min", "throughput, successful syncs/min"),
    ("capacity_per_min", "capacity, mailboxes/min (drain test)"),
    ("drain95_s", "drain: 95 % of mailboxes synced after, s"),
    ("wait_mean_high", "queue wait high, mean s"),
    ("wait_p95_high", "queue wait high, p95 s"),
    ("wait_mean_normal", "queue wait normal, mean s"),
    ("wait_mean_low", "queue wait low, mean s"),
    ("duration_mean_incremental", "incremental sync, mean s"),
    ("duration_p95_incremental", "incremental sync, p95 s"),
    ("duration_mean_full", "full sync, mean s"),
    ("duration_p95_full", "full sync, p95 s"),
    ("full_share", "share of full syncs"),
    ("lag_mean", "due → synced lag, mean s"),
    ("lag_p95", "due → synced lag, p95 s"),
    ("staleness_p50_all", "staleness p50, s"),
    ("staleness_p95_all", "staleness p95, s"),
    ("staleness_max_all", "staleness max, s"),
    *[
        (f"staleness_{q}_{t}", f"staleness {q} ({t} tier), s")
        for t in ("high", "normal", "low")
        for q in ("p50", "p95", "max")
    ],
    ("fresh_share", "share of samples within 5 min"),
    ("tier_share_normal", "share of mailboxes last in normal"),
    ("tier_share_low", "share of mailboxes last in low"),
    ("util_high", "worker utilisation high"),
    ("util_normal", "worker utilisation normal"),
    ("util_low", "worker utilisation low"),
    ("requests_per_min_gmail", "Gmail HTTP requests/min"),
    ("calls_per_min_gmail", "Gmail calls/min (batched gets counted singly)"),
    ("units_per_min_gmail", "Gmail quota units/min"),
    ("api_time_mean_gmail", "Gmail API time per sync, mean s"),
    ("requests_per_min_graph", "Graph requests/min"),
    ("api_time_mean_graph", "Graph API time per sync, mean s"),
    ("requests_per_min_imap", "IMAP round trips/min (handshakes included)"),
    ("calls_per_min_imap", "IMAP commands/min"),
    ("calls_per_sync_imap", "IMAP commands per sync, mean"),
    ("api_time_mean_imap", "IMAP time in commands per sync, mean s"),
    ("imap_login_share", "IMAP syncs opening a connection (login)"),
    ("imap_noop_share", "IMAP syncs checking an idle connection (NOOP)"),
    ("imap_conn_account_peak", "IMAP connections of one account, peak"),
    ("imap_conn_limit", "IMAP server limit per account"),
    ("imap_conn_process_mean", "IMAP pooled connections per process, mean"),
    ("imap_conn_process_peak", "IMAP pooled connections per process, peak"),
    ("throttled_gmail", "Gmail 429 answers"),
    ("throttled_graph", "Graph 429 answers"),
    ("error_rate", "failed syncs / attempts"),
    ("rate_limited_share", "syncs failed rate-limited / attempts"),
    ("cpu_pct_host", "CPU % of a host"),
    ("cpu_core_per_process", "event-loop load per process (cores)"),
    ("rss_mb_process", "RSS per process, MB"),
    ("ram_gb_host", "RAM per host, GB"),
    ("db_util", "PostgreSQL vCPU utilisation"),
    ("redis_ops_per_s", "Redis commands/s"),
    ("cost_month", "cost, USD/month"),
    ("cost_per_tenant", "cost per tenant, USD/month"),
    ("little_err_high", "Little's law error, high queue"),
]


def detail_keys(metrics: Sequence[str]) -> list[tuple[str, str]]:
    """DETAIL plus one row per enforced quota found in the results."""
    quotas = sorted({k.removeprefix("quota_util_") for k in metrics if k.startswith("quota_util_")})
    return [*DETAIL, *[(f"quota_util_{q}", f"quota {q}: use / limit") for q in quotas]]


def summary_section(scenarios: Sequence[Scenario], quick: bool, seconds: float) -> str:
    """Title, what was modelled, the calibration notice and the definitions."""
    calibrated = {s.calibrated_from for s in scenarios if s.calibrated_from}
    if calibrated:
        cal = f"<p>Calibrated from: {h.esc(', '.join(sorted(calibrated)))}.</p>"
    else:
        cal = (
            "<p class='note'><b>Uncalibrated defaults.</b> Provider latency (lognormal, mean "
            "150 ms per request), CPU (1 ms per API call, 0.05 ms per stored message), memory "
            "(80 MB + 0.5 MB per job in flight + 2 KB per mailbox) and database costs (1 ms "
            "per commit) are placeholders documented in the shipped <code>base.yaml</code>, "
            "not measurements of the daemon. Pass <code>--calibration FILE</code> to replace "
            "them with measured figures.</p>"
        )
    s0 = scenarios[0]
    mode = " Quick mode: shorter horizon and fewer replications." if quick else ""
    return (
        "<h1>mailsync capacity report</h1>"
        f"<p>Discrete-event simulation of the daemon (schedulers claiming batches every cycle, "
        f"three tier queues with their own workers, quota gates as GCRA, 429 / Retry-After, "
        f"mail arrival and cursor expiry) with every policy decision taken by "
        f"<code>daemon.policy</code>. {s0.run.replications} replications per scenario, "
        f"horizon {s0.run.horizon_s / 3600:g} h after {s0.run.warmup_s / 60:g} min warm-up; "
        f"figures are means with 95 % confidence intervals.{mode} Produced in "
        f"{seconds:.0f} s.</p>{cal}"
        "<p><b>Definitions.</b> Throughput: successful syncs per minute. Capacity: the drain "
        "test (every mailbox due at once; 95 % of them divided by the time to sync them). "
        "Staleness: time since a mailbox's last successful sync, sampled over time. Due → "
        "synced lag: from <code>next_sync_at</code> to the end of the sync that served it. "
        "Error rate: failed sync attempts over all attempts. CPU %: busy time of the daemon "
        "processes on the busiest host over its vCPUs; RAM: resident memory of the processes "
        "on a host. Per-mailbox quotas are shown for the busiest mailbox. IMAP has no request "
        "quota: its limit is the connections an account may hold at once, and each pooled "
        "connection costs the process memory.</p>"
    )


def presets_section(title: str, results: Sequence[ScenarioResult]) -> str:
    """Verdicts, a detail table with CIs and the per-scenario figures."""
    crit = results[0].scenario.criteria
    vnames = [v.text for v in results[0].verdicts]
    rows, cls = [], []
    for r in results:
        s = r.scenario
        cells = [s.name, s.population.tenants, f"{s.daemon.profile} × {s.daemon.processes}"]
        cells += [f"{v.value.text()} {'✓' if v.passed else '✗'}" for v in r.verdicts]
        cells.append(r.bottleneck)
        rows.append(cells)
        cls.append("pass" if r.passed else "fail")
    verdicts = h.table(
        ["scenario", "tenants", "profile × processes", *vnames, "binding bottleneck"], rows, 1, cls
    )
    detail_rows = []
    for key, label in detail_keys([k for r in results for k in r.metrics]):
        if not any(key in r.metrics for r in results):
            continue
        cells = [label]
        for r in results:
            e = r.metrics.get(key)
            cells.append("n/a" if e is None else e.text())
        detail_rows.append(cells)
    detail = h.table(["figure", *[r.scenario.name for r in results]], detail_rows)
    criteria = (
        f"Criteria: capacity ≥ {crit.throughput_per_min:g}/min, "
        f"CPU < {crit.cpu_pct_max:g} %, RAM < {crit.ram_gb_max:g} GB, errors < "
        f"{crit.error_rate_max:.0%}, staleness (quantile {crit.fresh_quantile:g}) ≤ "
        f"{crit.fresh_within_s:g} s."
    )
    return (
        f"<h2>{h.esc(title)}</h2><p>{h.esc(criteria)}</p>"
        + verdicts
        + detail
        + h.figure(figures.staleness_cdf(results), "Staleness distribution per tier")
        + h.figure(figures.utilisation(results), "Utilisation")
        + h.figure(figures.quota_use(results), "API use against quotas")
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
    po, pb = over.scenario.profile(), long_out.scenario.profile()
    lim = long_out.scenario.criteria.fresh_within_s
    n_over = over.scenario.population.tenants
    rec_long, rec_short = _recovered_h(long_out, lim), _recovered_h(short_out, lim)
    rows = [
        (
            figures.onboarding_label(r),
            h.fmt(r.get("onboard_p50_s_all") / 60),
            h.fmt(r.get("onboard_p95_s_small") / 60),
            h.fmt(r.get("drain95_s") / 3600),
            h.fmt(r.get("drain_s") / 3600),
            f"{r.get('partial_runs'):,.0f}",
        )
        for r in onboarding
    ]
    n = onboarding[0].scenario.population.tenants if onboarding else 0
    stale_long = long_out.scenario.population.stale_h
    stale_short = short_out.scenario.population.stale_h
    return (
        "<h2>Dynamics the plan missed</h2>"
        f"<h3>Overload does not demote: it queues</h3><p>{n_over} tenants on "
        f"<code>{po.name}</code> with 10 s jobs: demand is "
        f"{over.get('demand_per_min'):.0f} syncs/min, the {po.concurrency.high} high-tier "
        f"workers do {over.get('throughput_per_min'):.0f}/min. The scheduler "
        f"claims {po.batch_size} mailboxes every {po.scheduler_interval_s:g} s, far more than "
        "the workers take, so every mailbox is claimed as soon as it is due, classified "
        "<em>at that moment</em> as fresh (high tier, incremental) and then waits in one long "
        f"high queue. Staleness settles near tenants ÷ throughput (p95 "
        f"{h.fmt(over.get('staleness_p95_all') / 60)} min) and nothing is demoted "
        f"({over.get('tier_share_normal') + over.get('tier_share_low'):.0%} of samples in lower "
        f"tiers): the tier rule never sees the queue wait. The normal and low workers stay "
        f"idle (utilisation {h.fmt(over.get('util_normal'))} / {h.fmt(over.get('util_low'))}) "
        f"while the high pool runs at {h.fmt(over.get('util_high'))}.</p>"
        + h.figure(figures.dynamics(over), "Overload: tier shares and staleness")
        + f"<h3>Recovery from an outage: the demotion loop</h3><p>The same 1,000 mailboxes on "
        f"<code>{pb.name}</code> come back from an outage of {stale_long:g} h: every mailbox "
        f"is older than normal_after_h = {pb.normal_after_h:g} h, so all of them are demoted to "
        f"the normal queue ({pb.concurrency.normal} workers) and, being older than "
        f"incremental_threshold_h = {pb.incremental_threshold_h:g} h, each needs a full sync. "
        f"The {pb.concurrency.high} high-tier workers sit almost idle (utilisation "
        f"{h.fmt(long_out.get('util_high'))} against {h.fmt(long_out.get('util_normal'))} in "
        "normal): there is no work stealing between tiers. Gmail full syncs are slowed "
        "further by the per-user quota. p95 staleness is back within "
        f"{lim / 60:g} min after <b>{h.fmt(rec_long)} h</b>; after an outage of "
        f"{stale_short:g} h (just under the threshold) it takes {h.fmt(rec_short)} h. The rule "
        "meant to keep stale mailboxes from crowding out fresh ones turns a long outage into "
        "a recovery many times longer than the outage.</p>"
        + h.figure(figures.dynamics(long_out), "Recovery after the long outage")
        + f"<h3>Onboarding: every mailbox new</h3><p>{n} never-synced mailboxes start on the "
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
                "half synced after, min",
                "smaller half: 95 % after, min",
                "95 % synced after, h",
                "all synced after, h",
                "runs that freed their worker",
            ],
            rows,
        )
        + (h.figure(figures.onboarding(onboarding), "Onboarding time") if onboarding else "")
    )
