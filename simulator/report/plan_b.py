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
from simulator.inputs.scenario import Scenario
from simulator.render import html as h
from simulator.report import claims, plan_claims
from simulator.report.claims import Check
from simulator.report.plan_runs import (
    CapacityTable,
    capacity_tables,
    dynamics_scenarios,
    onboarding,
    report_presets,
)
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
from simulator.runs.sweep import verification, verified

log = structlog.get_logger(__name__)


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
    presets = report_presets(
        [prepare(load_scenario(n), o) for n in shipped_scenarios()], o.replications
    )
    variants = (
        claims.variants(presets) + plan_claims.drain_variants(presets) + pool_variants(presets)
    )
    dyn = dynamics_scenarios(presets, o.quick)
    onboard = onboarding(next(s for s in presets if s.name == "plan-b-1000"), o.quick)
    tables = capacity_tables(presets, o.quick)
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
