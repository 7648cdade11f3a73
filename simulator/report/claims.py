"""The plan's own claims, checked against the model under the plan's and the model's assumptions.

The figures below are the plan's statements under test, not policy values: the policy comes
from ``daemon.policy`` through the scenarios.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from daemon import policy
from daemon.policy import SyncKind
from simulator.fast import profiles
from simulator.fast.analytic import JobProfile, evaluate
from simulator.inputs.scenario import Scenario, plan_job_time
from simulator.model.gate import split_requests
from simulator.render import formatting as fm
from simulator.runs.results import ScenarioResult

# What the plan asserts.
PLAN_JOB_S = 10.0  # "the original 10 s per job"
PLAN_THROUGHPUT = {"original": 60.0, "plan-b": 500.0}  # mailboxes/min
PLAN_CAPACITY = {"original": 300.0, "plan-b": 1530.0}  # tenants
PLAN_DRAIN = (1000, 120.0)  # "1,000 in 2 minutes"
PLAN_GRAPH_REQ = (200.0, 400.0)  # "200 syncs/min ≈ 400 Graph req/min"
PLAN_GMAIL_REQ = 60.0  # "≈ 60 Gmail req/min"

ASSUMPTIONS = {"plan": "the plan's 10 s per job", "model": "the model's latency defaults"}


@dataclass(frozen=True)
class Check:
    """One claim under one assumption."""

    claim: str
    plan: str
    assumption: str
    model: str
    holds: bool
    note: str = ""


def variants(presets: list[Scenario]) -> list[Scenario]:
    """Each preset under the plan's job time and under the model's defaults."""
    out = []
    for s in presets:
        out.append(s.updated({"name": f"{s.name}@model"}))
        out.append(s.updated({**plan_job_time(PLAN_JOB_S), "name": f"{s.name}@plan"}))
    return out


def profile(s: Scenario) -> JobProfile:
    """``job_profile`` memoised per scenario within the process (``simulator.fast.profiles``)."""
    return profiles.profile(s)


def _capacity_tenants(s: Scenario) -> float:
    # Largest tenant count the deployment keeps stable at its interval (fast path).
    p = profile(s)
    tenants = np.arange(10.0, 40_001.0, 10.0)
    out = evaluate(s, p, tenants, np.full_like(tenants, s.daemon.processes))
    ok = out["stable"]
    return float(tenants[ok].max()) if ok.any() else 0.0


def check(results: dict[str, ScenarioResult]) -> list[Check]:
    """Evaluate every claim from the variants' results (keyed by scenario name)."""
    out: list[Check] = []
    for profile_name, plan_thr in PLAN_THROUGHPUT.items():
        prof = policy.get_profile(profile_name)
        arithmetic = prof.concurrency.total * 60 / PLAN_JOB_S
        high_only = prof.concurrency.high * 60 / PLAN_JOB_S
        for key, res in results.items():
            base, _, assumption = key.partition("@")
            if not assumption:
                continue
            if res.scenario.daemon.profile != profile_name or res.scenario.daemon.processes != 1:
                continue
            if not res.scenario.run.steady:  # drain-only runs serve other claims
                continue
            cap = res.get("capacity_per_min")
            holds = cap >= 0.95 * plan_thr
            note = ""
            if assumption == "plan":
                note = (
                    f"{prof.concurrency.total} workers x 6 jobs/min = {arithmetic:.0f}/min; "
                    f"only the {prof.concurrency.high} high-tier workers serve fresh mailboxes "
                    f"= {high_only:.0f}/min"
                )
            out.append(
                Check(
                    f"throughput {plan_thr:.0f} mailboxes/min ({profile_name})",
                    f"{plan_thr:.0f}/min",
                    ASSUMPTIONS[assumption],
                    f"{cap:.0f}/min (drain of {base})",
                    holds,
                    note,
                )
            )
            if base.endswith("1500"):
                continue
            tenants = _capacity_tenants(res.scenario)
            plan_cap = PLAN_CAPACITY[profile_name]
            out.append(
                Check(
                    f"capacity {plan_cap:,.0f} tenants ({profile_name})",
                    f"{plan_cap:,.0f} tenants",
                    ASSUMPTIONS[assumption],
                    f"{tenants:,.0f} tenants stay stable at a 5-min interval",
                    tenants >= 0.95 * plan_cap,
                )
            )
    for key, res in results.items():
        if not key.startswith("plan-b-1000@"):
            continue
        assumption = key.partition("@")[2]
        n, limit = PLAN_DRAIN
        d_all = res.get("drain_s")
        d95 = res.get("drain95_s")
        out.append(
            Check(
                f"{n:,} mailboxes in {limit / 60:.0f} minutes",
                f"{limit:.0f} s",
                ASSUMPTIONS[assumption],
                f"95 % in {fm.duration(d95)}, all in {fm.duration(d_all)}",
                (not math.isnan(d_all)) and d_all <= limit,
                "the last few are full syncs when a cursor expired",
            )
        )
    out.extend(_api_claims(results))
    return out


def _api_claims(results: dict[str, ScenarioResult]) -> list[Check]:
    syncs, plan_req = PLAN_GRAPH_REQ
    # Requests of one incremental Graph sync with a handful of changes, by the call model.
    graph = sum(c.requests for c in policy.sync_calls("graph", SyncKind.INCREMENTAL, 0, 3, 1, 0))
    gmail = sum(
        len(split_requests(c.method, c.count, c.requests))
        for c in policy.sync_calls("gmail", SyncKind.INCREMENTAL, 0, 3, 1, 0)
    )
    out = []
    for assumption, label in ASSUMPTIONS.items():
        res = results.get(f"plan-b-1000@{assumption}")
        if res is None:
            continue
        thr = res.get("throughput_per_min")
        shares = res.scenario.population.providers
        # Requests per sync of each provider as simulated, scaled to 200 syncs/min.
        per_graph = res.get("requests_per_min_graph") / (thr * shares.get("graph", 0.0) or 1.0)
        g_req, g_units = res.get("requests_per_min_gmail"), res.get("units_per_min_gmail")
        scaled = g_req * syncs / thr if thr > 0 else math.nan
        out.append(
            Check(
                f"{syncs:.0f} syncs/min ≈ {plan_req:.0f} Graph requests/min",
                f"{plan_req:.0f}/min",
                label,
                f"{fm.num(per_graph * syncs, '/min')} if every sync is Graph "
                f"({fm.num(per_graph)} requests per Graph sync, {res.scenario.name})",
                abs(per_graph * syncs - plan_req) <= 0.1 * plan_req,
                f"the call model: {graph} requests per incremental sync (folder lists, then "
                "delta per folder); full syncs after expired cursors add pages",
            )
        )
        out.append(
            Check(
                f"≈ {PLAN_GMAIL_REQ:.0f} Gmail requests/min at {syncs:.0f} syncs/min",
                f"{PLAN_GMAIL_REQ:.0f}/min",
                label,
                f"{fm.num(scaled, '/min')} requests "
                f"({fm.num(g_units * syncs / thr, 'units/min')} quota units) at a "
                f"{fm.pct(shares.get('gmail', 0.0))} Gmail mix",
                abs(scaled - PLAN_GMAIL_REQ) <= 0.2 * PLAN_GMAIL_REQ,
                f"{gmail} requests per incremental sync with new mail; Gmail counts "
                "quota units, not requests",
            )
        )
        for q in ("graph.app", "gmail.project", "gmail.user", "graph.mailbox"):
            u = res.get(f"quota_util_{q}")
            if not math.isnan(u):
                out.append(
                    Check(
                        f"API margin: {q} (documented quotas)",
                        "ample",
                        label,
                        f"{fm.pct(u)} of the quota used ({res.scenario.daemon.quota_preset})",
                        u < 0.5,
                        "mailbox quotas: the busiest mailbox"
                        if q.endswith((".user", ".mailbox"))
                        else "",
                    )
                )
    return out
