"""The report's comparison of the worker-pool profiles: ``original``, ``plan-b`` and
``plan-b-wc`` (``work_conserving``) on one population, under both assumptions.

The presets give ``plan-b-1000`` and ``plan-b-1000-wc``; ``pool_variants`` adds the same
population on every other compared profile, so each row differs from the others only in its
profile.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from daemon import policy
from daemon.policy import Tier
from simulator.inputs.scenario import Scenario
from simulator.render import formatting as fm
from simulator.render import html as h
from simulator.report import claims
from simulator.runs.results import ScenarioResult

POOL_BASE = "plan-b-1000"
POOL_PROFILES = ("original", "plan-b", "plan-b-wc")


def _same_but_profile(s: Scenario, base: Scenario) -> bool:
    keep = {"name": base.name, "description": base.description}
    return s.updated({**keep, "daemon.profile": base.daemon.profile}) == base


def pool_scenarios(presets: Sequence[Scenario]) -> dict[str, str]:
    """Scenario name per compared profile: a preset that is the base on that profile, or
    the variant ``pool_variants`` adds."""
    base = next(s for s in presets if s.name == POOL_BASE)
    out: dict[str, str] = {}
    for prof in POOL_PROFILES:
        same = [s for s in presets if s.daemon.profile == prof and _same_but_profile(s, base)]
        out[prof] = same[0].name if same else f"{POOL_BASE}-{prof}"
    return out


def pool_variants(presets: Sequence[Scenario]) -> list[Scenario]:
    """The base preset on each compared profile no preset covers, under both assumptions."""
    base = next(s for s in presets if s.name == POOL_BASE)
    names = {s.name for s in presets}
    extra = [
        base.updated(
            {
                "name": name,
                "description": f"{POOL_BASE} on the {prof} profile (worker-pool comparison)",
                "daemon.profile": prof,
            }
        )
        for prof, name in pool_scenarios(presets).items()
        if name not in names
    ]
    return claims.variants(extra)


def _workers(prof: policy.Profile) -> str:
    c = prof.concurrency
    return f"{c.high} + {c.normal} + {c.low} = {c.total}"


def _row(prof_name: str, assumption: str, r: ScenarioResult) -> list[str]:
    prof = r.scenario.profile()
    m = r.metrics
    return [
        prof_name,
        assumption,
        _workers(prof),
        str(r.scenario.daemon.processes * policy.workers_serving(Tier.HIGH, prof)),
        fm.estimate(m.get("util_high"), fm.SHARE),
        fm.estimate(m.get("util_normal"), fm.SHARE),
        fm.estimate(m.get("util_low"), fm.SHARE),
        fm.estimate(m.get("wait_mean_high"), fm.DURATION),
        fm.estimate(m.get("wait_p95_high"), fm.DURATION),
        fm.estimate(m.get("staleness_p95_all"), fm.DURATION),
        fm.estimate(m.get("throughput_per_min"), "/min"),
        fm.estimate(m.get("capacity_per_min"), "/min"),
    ]


def _change(before: float, after: float) -> str:
    if before == 0:
        return fm.num(after)
    return f"{'+' if after >= before else '−'}{fm.pct(abs(after / before - 1))}"


def pools_html(presets: Sequence[Scenario], by_name: Mapping[str, ScenarioResult]) -> str:
    """The section: the profiles' pools, what each pool does on schedule, and what
    ``work_conserving`` changes, measured by the event model."""
    names = pool_scenarios(presets)
    rows: list[list[str]] = []
    for key, label in claims.ASSUMPTIONS.items():
        for prof in POOL_PROFILES:
            r = by_name.get(f"{names[prof]}@{key}")
            if r is not None:
                rows.append(_row(prof, label, r))
    pb = policy.PLAN_B
    idle = pb.concurrency.normal + pb.concurrency.low
    base = by_name[f"{names['plan-b']}@model"]
    tier = policy.tier_for(pb.sync_interval_s / 3600, pb)
    text = [
        "<h2>Worker pools: original, plan-b and plan-b-wc</h2>",
        "<p>Each tier has its own queue and its own pool of workers; the scheduler gives a "
        "mailbox its tier from the hours since its last sync. On schedule (every "
        f"{fm.duration(pb.sync_interval_s)}) a mailbox is always younger than "
        f"<code>normal_after_h</code> ({fm.num(pb.normal_after_h)} h), so every on-schedule "
        f"sync is a {tier}-tier job: <b>Plan B's {pb.concurrency.high} high-tier workers serve "
        f"every on-schedule mailbox while {idle} of its {pb.concurrency.total} workers (the "
        f"normal and low pools) idle</b> — measured on {POOL_BASE}: normal pool "
        f"{fm.estimate(base.metrics.get('util_normal'), fm.SHARE)} busy, low pool "
        f"{fm.estimate(base.metrics.get('util_low'), fm.SHARE)}. That is Plan B's design: "
        "the lower pools are held for mailboxes that fell behind (after an outage), which "
        "then never wait behind on-schedule ones.</p>",
        "<p><code>plan-b-wc</code> is Plan B with <code>work_conserving: true</code> "
        "(<code>daemon.policy.serving_order</code>, shared by the daemon and this model): "
        "an idle normal worker takes a waiting high job before its own tier's, an idle low "
        "worker high, then normal, then low; a high worker never takes lower-tier work. No "
        "worker starts a lower tier's job while a higher tier's job it may serve waits, so "
        "the high tier only gains (job by job, in the parity tests). The price: while a "
        "high-tier backlog outlasts the idle workers, normal and low jobs wait until it "
        "clears.</p>",
    ]
    for key, label in claims.ASSUMPTIONS.items():
        off = by_name.get(f"{names['plan-b']}@{key}")
        on = by_name.get(f"{names['plan-b-wc']}@{key}")
        if off is None or on is None:
            continue
        text.append(
            f"<p>Under {label}, work conserving changes the high queue's mean wait from "
            f"{fm.duration(off.get('wait_mean_high'))} to {fm.duration(on.get('wait_mean_high'))}"
            f", its 95th percentile from {fm.duration(off.get('wait_p95_high'))} to "
            f"{fm.duration(on.get('wait_p95_high'))}, staleness p95 from "
            f"{fm.duration(off.get('staleness_p95_all'))} to "
            f"{fm.duration(on.get('staleness_p95_all'))}, and the drain capacity from "
            f"{fm.num(off.get('capacity_per_min'), '/min')} to "
            f"{fm.num(on.get('capacity_per_min'), '/min')} "
            f"({_change(off.get('capacity_per_min'), on.get('capacity_per_min'))}).</p>"
        )
    header = [
        "profile",
        "assumption",
        "workers high + normal + low",
        "workers serving the high queue",
        "high pool busy",
        "normal pool busy",
        "low pool busy",
        "high-queue wait (mean)",
        "high-queue wait (p95)",
        "staleness p95",
        "throughput",
        "drain capacity",
    ]
    text.append(
        h.table(header, rows, 2)
        + f"<p>{POOL_BASE}, one process, event model (mean ± 95 % CI over the "
        "replications). A pool's busy share counts every job its workers run, of any tier; "
        "drain capacity is 95 % of the mailboxes over the time to sync them when all are "
        "due at once.</p>"
    )
    return "".join(text)
