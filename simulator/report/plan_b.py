"""``mailsync report``: the Plan B capacity report (or a report on given scenarios).

Writes ``<out>/<name>/index.html`` (self-contained, figures inline) and the numbers as CSV
and JSON beside it. Needs neither Redis nor PostgreSQL.
"""

from __future__ import annotations

import json
import math
import os
import time
import webbrowser
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import structlog

from simulator.checks.validation import Agreement, compare
from simulator.inputs.calibration import apply as apply_calibration
from simulator.inputs.calibration import load_calibration
from simulator.inputs.loader import load_scenario, shipped_scenarios
from simulator.inputs.scenario import Scenario, plan_job_time
from simulator.render import html as h
from simulator.report import claims, plan_claims
from simulator.report.claims import Check
from simulator.report.plan_sections import (
    agreement_html,
    claims_html,
    files_html,
    freshness_html,
    quota_html,
    scaling_html,
    sweep_html,
)
from simulator.report.pool_sections import pool_variants, pools_html
from simulator.report.sections import dynamics_section, presets_section, summary_section
from simulator.report.summary import summary_html
from simulator.runs import frames, run_cost, sequential
from simulator.runs.frames import capacity_frame, records
from simulator.runs.results import ScenarioResult, results_frame
from simulator.runs.runner import run_many
from simulator.runs.sweep import capacity_table, verification, verified

log = structlog.get_logger(__name__)
# (base scenario, label, capacity table, configurations tried) of one capacity table.
CapacityTable = tuple[Scenario, str, list[dict[str, Any]], int]


@dataclass(frozen=True)
class Options:
    """How a report is produced."""

    name: str = "plan-b-capacity"
    out: Path = Path("reports")
    replications: int | None = None
    quick: bool = False
    fast: bool = False
    calibration: Path | None = None
    jobs: int | None = None
    progress: bool = True
    # Run event simulations past the cost limits (``run_cost.guard``).
    force: bool = False


def prepare(s: Scenario, o: Options) -> Scenario:
    """Calibration, replication count and the quick mode's shorter horizon."""
    if o.calibration is not None:
        s = apply_calibration(s, load_calibration(o.calibration), str(o.calibration.name))
    changes: dict[str, Any] = {}
    if o.replications is not None:
        changes["run.replications"] = o.replications
    if o.quick:
        changes |= {
            "run.replications": min(s.run.replications, o.replications or 2),
            "run.horizon_s": min(s.run.horizon_s, 3600.0),
            "run.warmup_s": min(s.run.warmup_s, 900.0),
        }
    return s.updated(changes) if changes else s


def write_csv(path: Path, table: pd.DataFrame | Sequence[dict[str, Any]]) -> None:
    """A table as CSV, always through a DataFrame (``simulator.runs.frames``): one tabular form."""
    frame = table if isinstance(table, pd.DataFrame) else records(table)
    frames.write_csv(frame, path)


def jsonable(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [jsonable(v) for v in x]
    if isinstance(x, np.generic):
        return jsonable(x.item())
    return x


def _timeline(base: Scenario, name: str, hours: float, changes: dict[str, Any]) -> Scenario:
    return base.updated(
        {
            "name": name,
            "run.horizon_s": hours * 3600,
            "run.warmup_s": 0.0,
            "run.replications": 1,
            "run.sample_interval_s": 300.0,
            "run.drain": False,
            **changes,
        }
    )


def dynamics_scenarios(presets: Sequence[Scenario], quick: bool) -> list[Scenario]:
    """Overload (10 s jobs, 2,400 tenants on ``original``) and recovery from outages just
    past and just short of the profile's ``normal_after_h``."""
    original = next(s for s in presets if s.daemon.profile == "original")
    planb = next(s for s in presets if s.name == "plan-b-1000")
    after = planb.profile().normal_after_h
    return [
        _timeline(
            original,
            "overload-2400-original",
            4.0 if quick else 12.0,
            {**plan_job_time(claims.PLAN_JOB_S), "population.tenants": 2400},
        ),
        _timeline(
            planb,
            f"outage-{after + 2:g}h-plan-b",
            18.0 if quick else 24.0,
            {"population.initial": "stale", "population.stale_h": after + 2},
        ),
        _timeline(
            planb,
            f"outage-{after - 1:g}h-plan-b",
            3.0 if quick else 6.0,
            {"population.initial": "stale", "population.stale_h": after - 1},
        ),
    ]


# "Before" chunked full syncs: a run waits for its quota however long that takes.
INLINE_WAIT = {"full_sync_quota_wait_s": 1e9}


def _onboarding(base: Scenario, o: Options) -> list[Scenario]:
    n = 300 if o.quick else base.population.tenants
    variants: list[tuple[str, str, dict[str, Any]]] = [
        ("as-planned", "as-planned", {}),
        ("documented-legacy", "documented-legacy", {}),
        ("documented-2026-inline", "documented-2026", INLINE_WAIT),
        ("documented-2026", "documented-2026", {}),
    ]
    return [
        base.updated(
            {
                "name": f"onboarding-{n}-{label}",
                "population.tenants": n,
                "population.initial": "never_synced",
                "daemon.quota_preset": preset,
                "daemon.overrides": {**base.daemon.overrides, **extra},
                "run.steady": False,
                "run.drain": True,
                "run.replications": 1,
                "run.horizon_s": 72 * 3600.0,
            }
        )
        for label, preset, extra in variants
    ]


# Replications per preset in ``plan_b_report`` unless ``--replications`` says otherwise.
REPORT_REPLICATIONS = 3
# The presets' steady runs: an hour with a quarter of it warm-up, three replications and
# more (up to ``sequential.MOST``) where an interval is wider than ``sequential.TARGET``.
STEADY_HORIZON_S = 3600.0
STEADY_WARMUP_S = 900.0
# The capacity tables' event check: one run per row, 15 minutes measured after 5 minutes of
# warm-up. The populations start in their steady state (sync times spread over the interval),
# and every row's configuration keeps 3 % headroom on p99 staleness and 15 % on its busiest
# resource, so a verdict needs a few sync intervals (270-300 s), not an hour: at 300 tenants
# that is still 9,000 staleness samples for the p99.
VERIFY_HORIZON_S = 1200.0
VERIFY_WARMUP_S = 300.0


class Phases:
    """Wall-clock and CPU seconds (this process and its finished children) per phase."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, float, float]] = []
        self._t, self._cpu = time.perf_counter(), self._cpu_now()

    @staticmethod
    def _cpu_now() -> float:
        t = os.times()
        return t.user + t.system + t.children_user + t.children_system

    def done(self, name: str) -> None:
        """Close the phase running since the previous call."""
        t, cpu = time.perf_counter(), self._cpu_now()
        self.rows.append((name, t - self._t, cpu - self._cpu))
        log.info("phase", name=name, wall_s=round(t - self._t, 1), cpu_s=round(cpu - self._cpu, 1))
        self._t, self._cpu = t, cpu


def _report_presets(o: Options) -> list[Scenario]:
    """The shipped scenarios as the report runs them."""
    presets = [prepare(load_scenario(n), o) for n in shipped_scenarios()]
    if o.replications is None:
        # Three replications keep every confidence interval (t with 2 degrees of freedom)
        # at 60 % of the event work of the scenarios' five.
        presets = [
            s.updated({"run.replications": min(s.run.replications, REPORT_REPLICATIONS)})
            for s in presets
        ]
    # Steady runs of an hour, with more replications where an interval is still wide
    # (``sequential``). A drain run ends when every mailbox has synced once (half an hour at
    # most for the presets); the hour caps only a drain that never ends, where a mailbox
    # failed for good.
    presets = [
        s.updated(
            {
                "run.horizon_s": min(s.run.horizon_s, STEADY_HORIZON_S),
                "run.warmup_s": min(s.run.warmup_s, STEADY_WARMUP_S),
            }
        )
        for s in presets
    ]
    return presets


def _capacity_tables(presets: Sequence[Scenario], quick: bool) -> list[CapacityTable]:
    """(base scenario, label, table, configurations tried) of each capacity table, picked on
    the fast path; their event verification runs later with every other simulation."""
    # The capacity tables' event check is a verdict per row (no interval is shown): one
    # replication of 20 minutes each (``VERIFY_HORIZON_S``).
    sweep_base = next(s for s in presets if s.name == "plan-b-1000").updated(
        {
            "criteria.fresh_quantile": 0.99,
            "run.replications": 1,
            "run.horizon_s": min(VERIFY_HORIZON_S, presets[0].run.horizon_s),
            "run.warmup_s": min(VERIFY_WARMUP_S, presets[0].run.warmup_s),
        }
    )
    tenants = (300, 1000, 5000, 20_000) if quick else (300, 1000, 1500, 3000, 5000, 10_000, 20_000)
    processes = (1, 2, 4, 8) if quick else (1, 2, 4, 8, 16, 32)
    sweeps = [(sweep_base, "the model's latency defaults")]
    if not quick:
        sweeps.append(
            (
                sweep_base.updated({**plan_job_time(claims.PLAN_JOB_S), "name": "plan-b-10s-jobs"}),
                "the plan's 10 s per job",
            )
        )
    # The capacity tables' picks first (fast path), so that their verification runs in the
    # same pool as every other simulation: one queue keeps both cores busy to the end.
    tables = []
    for base, label in sweeps:
        table, n_configs = capacity_table(
            base, tenants=tenants, processes=processes, verify=False, p=claims.profile(base)
        )
        tables.append((base, label, table, n_configs))
    return tables


def _write_data(
    out: Path,
    runs: Sequence[ScenarioResult],
    checks: Sequence[Check],
    tables: Sequence[CapacityTable],
    agreement: Sequence[Agreement],
    by_name: Mapping[str, ScenarioResult],
    dyn: Sequence[Scenario],
    onboard: Sequence[Scenario],
) -> None:
    """The report's CSVs and ``report.json``."""
    rows = [r.row() for r in runs]
    write_csv(out / "scenarios.csv", results_frame(runs))
    write_csv(out / "claims.csv", [c.__dict__ for c in checks])
    for i, (_, _, table, _) in enumerate(tables):
        name = "capacity.csv" if i == 0 else "capacity-plan-10s.csv"
        write_csv(out / name, capacity_frame(table))
    write_csv(out / "agreement.csv", [a.__dict__ for a in agreement])
    doc = {
        "scenarios": rows,
        "claims": [c.__dict__ for c in checks],
        "capacity": tables[0][2],
        "capacity_plan_10s": tables[1][2] if len(tables) > 1 else [],
        "agreement": [a.__dict__ for a in agreement],
        "onboarding": [by_name[s.name].row() for s in onboard],
        "dynamics": [by_name[s.name].row() for s in dyn],
    }
    (out / "report.json").write_text(json.dumps(jsonable(doc), indent=1), encoding="utf-8")


def plan_b_report(o: Options) -> Path:
    """The default report: presets, plan claims, dynamics, sweep, fast-vs-event check."""
    t0 = time.perf_counter()
    ph = Phases()
    presets = _report_presets(o)
    variants = (
        claims.variants(presets) + plan_claims.drain_variants(presets) + pool_variants(presets)
    )
    dyn = dynamics_scenarios(presets, o.quick)
    onboard = _onboarding(next(s for s in presets if s.name == "plan-b-1000"), o)
    tables = _capacity_tables(presets, o.quick)
    checks_scen = [verification(base, table) for base, _, table, _ in tables]
    ph.done("capacity tables (fast path)")
    others = [*dyn, *onboard, *[x for v in checks_scen for x in v]]
    most = sequential.MOST if o.replications is None and not o.quick else 0
    # The job profiles the sections read afterwards are computed behind the simulations.
    graded_runs, runs = sequential.run(
        variants,
        others,
        most=most,
        jobs=o.jobs,
        progress=o.progress,
        # The presets under both assumptions: what the claims, freshness, scaling and
        # fast-path sections read (not the drain-only and worker-pool variants).
        ahead=claims.variants(presets),
    )
    ph.done("event simulations")
    by_name = {r.scenario.name: r for r in [*graded_runs, *runs[: len(dyn) + len(onboard)]]}
    done = len(dyn) + len(onboard)
    for (_, _, table, _), scen in zip(tables, checks_scen, strict=True):
        verified(table, runs[done : done + len(scen)])
        done += len(scen)
    model = [by_name[f"{s.name}@model"] for s in presets]
    plan = [by_name[f"{s.name}@plan"] for s in presets]
    # The presets' claims are judged on the presets' own runs (not on the variants other
    # sections add, which would repeat a claim under another scenario's name).
    names = {s.name for s in presets}
    own = {k: r for k, r in by_name.items() if k.partition("@")[0] in names}
    checks = claims.check(own) + plan_claims.check_all(by_name)
    ph.done("claims")
    agreement = [a for r in model + plan for a in compare(r)]
    out = o.out / o.name
    out.mkdir(parents=True, exist_ok=True)
    seconds = time.perf_counter() - t0
    titles = (
        "Plan B presets: the model's latency defaults",
        "Plan B presets: the plan's 10 s per job",
    )
    cal = load_calibration(o.calibration) if o.calibration is not None else None
    graded = [(claims.ASSUMPTIONS["model"], model), (claims.ASSUMPTIONS["plan"], plan)]
    # The summary comes first and open; every detail section is folded under it.
    freshness = freshness_html(presets)
    scaling = scaling_html(presets, model)
    ph.done("fast-path sections")
    body = [
        h.section("Summary", summary_html(tables, graded, checks, presets, cal), folded=False),
        h.fold(presets_section(titles[0], model)),
        h.fold(presets_section(titles[1], plan)),
        h.fold(claims_html(checks)),
        h.fold(pools_html(presets, by_name)),
        h.fold(freshness),
        h.fold(
            dynamics_section([by_name[s.name] for s in dyn], [by_name[s.name] for s in onboard])
        ),
        *[h.fold(sweep_html(base, label, table, n)) for base, label, table, n in tables],
        h.fold(scaling),
        h.fold(agreement_html(agreement)),
        h.fold(quota_html()),
        h.section("How this report was made", summary_section(presets, o.quick, seconds, most)),
        h.fold(files_html()),
    ]
    (out / "index.html").write_text(
        h.page("mailsync capacity report", h.header("mailsync capacity report", body)),
        encoding="utf-8",
    )
    _write_data(out, model + plan, checks, tables, agreement, by_name, dyn, onboard)
    ph.done("sections, figures and files")
    log.info(
        "report written", path=str(out / "index.html"), seconds=round(time.perf_counter() - t0, 1)
    )
    for name, wall, cpu in ph.rows:
        log.info("timing", phase=name, wall_s=round(wall, 1), cpu_s=round(cpu, 1))
    return out / "index.html"


def open_in_browser(path: Path) -> bool:
    """Open a written report in the user's web browser; False when there is none (or it
    could not be started), never an error."""
    try:
        return webbrowser.open(path.resolve().as_uri())
    except webbrowser.Error:
        return False


def scenario_report(refs: Sequence[str], o: Options) -> Path:
    """A report on the given scenario files: results, verdicts, figures, fast-path check."""
    t0 = time.perf_counter()
    scen = [prepare(load_scenario(r), o) for r in refs]
    est = run_cost.guard(scen, o.jobs, o.force)
    log.info("estimate", text=est.text())
    results = run_many(scen, jobs=o.jobs, progress=o.progress)
    agreement = [a for r in results for a in compare(r)]
    out = o.out / o.name
    out.mkdir(parents=True, exist_ok=True)
    body = [
        h.fold(presets_section("Scenarios", results), folded=False),
        h.fold(freshness_html(scen)),
        h.fold(agreement_html(agreement)),
        h.section(
            "How this report was made", summary_section(scen, o.quick, time.perf_counter() - t0)
        ),
        h.fold(files_html()),
    ]
    (out / "index.html").write_text(
        h.page("mailsync scenario report", h.header("mailsync scenario report", body)),
        encoding="utf-8",
    )
    rows = [r.row() for r in results]
    write_csv(out / "scenarios.csv", results_frame(results))
    write_csv(out / "agreement.csv", [a.__dict__ for a in agreement])
    (out / "report.json").write_text(
        json.dumps(jsonable({"scenarios": rows}), indent=1), encoding="utf-8"
    )
    return out / "index.html"
