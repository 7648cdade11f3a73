"""Sweeps over tenants x concurrency x processes: the capacity table.

``capacity_table``: the whole grid (also hosts, instance size and sync interval) is evaluated
with the fast path in one vectorised call; for each tenant count the cheapest configuration
that meets every criterion is then re-run with the event simulation in parallel processes.
``event_grid``: every point of a smaller grid through the event simulation, in parallel.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from daemon.errors import ConfigError
from daemon.policy import TIERS
from simulator.fast.analytic import RATIO_NAMES, JobProfile, evaluate, job_profile
from simulator.inputs import bounds
from simulator.inputs.catalogue import load_catalogue
from simulator.inputs.distributions import mean as dist_mean
from simulator.inputs.scenario import Scenario
from simulator.runs import run_cost
from simulator.runs.frames import capacity_frame, fast_frame
from simulator.runs.runner import run_many

DEFAULT_TENANTS = (300, 1000, 1500, 3000, 5000, 10_000, 20_000)
DEFAULT_CONC = (0.5, 1.0, 1.5, 2.0)
DEFAULT_PROCESSES = (1, 2, 4, 8)
DEFAULT_INTERVALS = (300.0, 270.0, 240.0, 180.0, 120.0)


@dataclass(frozen=True)
class Grid:
    """The flattened grid: one entry per configuration."""

    tenants: np.ndarray
    conc: np.ndarray
    processes: np.ndarray
    hosts: np.ndarray
    instance: np.ndarray
    interval: np.ndarray

    @property
    def size(self) -> int:
        """Number of configurations."""
        return int(self.tenants.size)

    def to_frame(self, s: Scenario, out: dict[str, np.ndarray]) -> pd.DataFrame:
        """The grid with its fast-path figures (``evaluate_grid(s, self)``): one row per
        configuration, units in the column names."""
        g = self
        return fast_frame(s, out, g.tenants, g.processes, g.hosts, g.conc, g.interval, g.instance)


def to_frame(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """A capacity table (``capacity_table``'s rows, or either list ``event_grid`` returns) as
    a DataFrame with units in the column names."""
    return capacity_frame(rows)


def grid(
    s: Scenario,
    tenants: Sequence[int] = DEFAULT_TENANTS,
    conc: Sequence[float] = DEFAULT_CONC,
    processes: Sequence[int] = DEFAULT_PROCESSES,
    intervals: Sequence[float] = DEFAULT_INTERVALS,
) -> Grid:
    """Every combination; hosts run from one to one per process (dividing evenly)."""
    n_inst = len(load_catalogue(s.costs.catalogue).instances)
    hosts = sum(sum(1 for h in range(1, k + 1) if k % h == 0) for k in processes)
    size = len(tenants) * len(conc) * n_inst * len(intervals) * hosts
    if size > bounds.MAX_GRID:
        raise ConfigError(
            f"sweep: {size:,} configurations, more than {bounds.MAX_GRID:,} "
            "(about 40 numbers each); give fewer values"
        )
    rows = [
        (t, c, k, h, i, iv)
        for t, c, k, i, iv in itertools.product(tenants, conc, processes, range(n_inst), intervals)
        for h in range(1, k + 1)
        if k % h == 0
    ]
    a = np.array(rows, dtype=float)
    return Grid(a[:, 0], a[:, 1], a[:, 2], a[:, 3], a[:, 4].astype(int), a[:, 5])


def evaluate_grid(s: Scenario, g: Grid, p: JobProfile | None = None) -> dict[str, np.ndarray]:
    """Fast-path figures for every configuration of the grid."""
    p = p or job_profile(s)
    return evaluate(s, p, g.tenants, g.processes, g.hosts, g.conc, g.interval, g.instance)


def cheapest(
    s: Scenario, g: Grid, out: dict[str, np.ndarray], margin: float = 0.85
) -> list[dict[str, Any]]:
    """Per tenant count, the cheapest passing configuration (ties: fewer processes, longer
    interval), with its binding bottleneck named; a row without a fit says so.

    Only configurations whose busiest resource stays below ``margin`` and whose staleness
    keeps 3 % headroom qualify: the closed form is least accurate next to saturation.
    """
    cat = load_catalogue(s.costs.catalogue)
    names = list(cat.instances)
    prof = s.profile()
    rows: list[dict[str, Any]] = []
    for t in np.unique(g.tenants):
        ok = (
            out["passes"].astype(bool)
            & (out["bottleneck_ratio"] <= margin)
            & (out["staleness_q"] <= 0.97 * s.criteria.fresh_within_s)
        )
        sel = np.flatnonzero((g.tenants == t) & ok)
        if sel.size == 0:
            rows.append({"tenants": int(t), "feasible": False})
            continue
        key = np.lexsort((-g.interval[sel], g.processes[sel], out["cost_month"][sel]))
        i = int(sel[key[0]])
        scale = float(g.conc[i])
        rows.append(
            {
                "tenants": int(t),
                "feasible": True,
                "processes": int(g.processes[i]),
                "hosts": int(g.hosts[i]),
                "instance": names[int(g.instance[i])],
                "concurrency": "/".join(
                    str(max(1, round(scale * prof.concurrency.for_tier(tier)))) for tier in TIERS
                ),
                "conc_scale": scale,
                "interval_s": float(g.interval[i]),
                "services": f"{list(cat.redis)[int(out['redis_tier'][i])]}, "
                f"{list(cat.postgres)[int(out['postgres_tier'][i])]}",
                "redis": list(cat.redis)[int(out["redis_tier"][i])],
                "postgres": list(cat.postgres)[int(out["postgres_tier"][i])],
                "cost_month": float(out["cost_month"][i]),
                "cost_per_tenant": float(out["cost_per_tenant"][i]),
                "capacity_per_min": float(out["capacity_per_min"][i]),
                "staleness_q_s": float(out["staleness_q"][i]),
                "cpu_pct_host": float(out["cpu_pct_host"][i]),
                "ram_gb_host": float(out["ram_gb_host"][i]),
                "bottleneck": RATIO_NAMES[int(out["bottleneck"][i])],
                "bottleneck_ratio": float(out["bottleneck_ratio"][i]),
            }
        )
    return rows


def scenario_for(s: Scenario, row: dict[str, Any]) -> Scenario:
    """The event-simulation scenario of one capacity-table row."""
    prof = s.profile()
    scale = row["conc_scale"]
    return s.updated(
        {
            "name": f"{s.name}-{row['tenants']}",
            "population.tenants": row["tenants"],
            "daemon.processes": row["processes"],
            "daemon.hosts": row["hosts"],
            "daemon.instance": row["instance"],
            "daemon.overrides": {
                **s.daemon.overrides,
                **{
                    f"concurrency.{t}": max(1, round(scale * prof.concurrency.for_tier(t)))
                    for t in TIERS
                },
            },
            "population.sync_interval_s": {"kind": "constant", "value": row["interval_s"]},
            # The managed tiers the table priced: the simulation prices the same deployment.
            "costs.redis": row.get("redis", s.costs.redis),
            "costs.postgres": row.get("postgres", s.costs.postgres),
        }
    )


def capacity_table(
    s: Scenario,
    tenants: Sequence[int] = DEFAULT_TENANTS,
    conc: Sequence[float] = DEFAULT_CONC,
    processes: Sequence[int] = DEFAULT_PROCESSES,
    intervals: Sequence[float] = DEFAULT_INTERVALS,
    verify: bool = True,
    jobs: int | None = None,
    progress: bool = True,
    force: bool = True,
    p: JobProfile | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """The capacity table and the number of configurations evaluated; without ``force`` the
    verification refuses an event simulation past ``run_cost.guard``. ``p``: the base's job
    profile when already computed."""
    g = grid(s, tenants, conc, processes, intervals)
    out = evaluate_grid(s, g, p)
    rows = cheapest(s, g, out)
    if verify:
        scen = verification(s, rows)
        run_cost.guard(scen, jobs, force)
        verified(rows, run_many(scen, jobs=jobs, progress=progress, desc="verifying"))
    for r in rows:
        for k, v in list(r.items()):
            if isinstance(v, float) and math.isinf(v):
                r[k] = None
    return rows, g.size


def verification(s: Scenario, rows: Sequence[dict[str, Any]]) -> list[Scenario]:
    """The event simulations that check a capacity table's feasible rows (one per row, in
    order), for running together with other scenarios."""
    return [scenario_for(s, r) for r in rows if r["feasible"]]


def verified(rows: Sequence[dict[str, Any]], results: Sequence[Any]) -> None:
    """Write the event simulation's verdicts (``verification``'s results) into the rows."""
    todo = [r for r in rows if r["feasible"]]
    for r, res in zip(todo, results, strict=True):
        r["event_pass"] = res.passed
        r["event_capacity_per_min"] = res.get("capacity_per_min")
        r["event_staleness_q_s"] = res.get("staleness_q")
        r["event_bottleneck"] = res.bottleneck
        r["event_cost_month"] = res.get("cost_month")
        failed = [v.name for v in res.verdicts if not v.passed]
        r["event_failed"] = ",".join(failed)


def event_grid(
    s: Scenario,
    tenants: Sequence[int],
    conc: Sequence[float],
    processes: Sequence[int],
    jobs: int | None = None,
    progress: bool = True,
    force: bool = True,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every tenants x concurrency x processes point through the event simulation (one host
    per process, the scenario's instance and interval), in parallel processes; without
    ``force`` a grid past ``run_cost.guard`` is refused.

    Returns (all points, cheapest passing point per tenant count).
    """
    interval = s.population.sync_interval_s
    iv = s.profile().sync_interval_s if interval is None else dist_mean(interval)
    points: list[dict[str, Any]] = [
        {
            "tenants": t,
            "processes": k,
            "hosts": k,
            "instance": s.daemon.instance,
            "conc_scale": c,
            "interval_s": iv,
        }
        for t, c, k in itertools.product(tenants, conc, processes)
    ]
    scen = [
        # The drain run measures the capacity the throughput criterion is judged on.
        scenario_for(s, p).updated(
            {"name": f"{s.name}-{p['tenants']}-{p['conc_scale']}x-{k}p", "run.drain": True}
        )
        for p, k in ((p, p["processes"]) for p in points)
    ]
    run_cost.guard(scen, jobs, force)
    results = run_many(scen, jobs=jobs, progress=progress, desc="sweep")
    prof = s.profile()
    for p, r in zip(points, results, strict=True):
        p["concurrency"] = "/".join(
            str(max(1, round(p["conc_scale"] * prof.concurrency.for_tier(t)))) for t in TIERS
        )
        p["passes"] = r.passed
        p["failed"] = ",".join(v.name for v in r.verdicts if not v.passed)
        p["cost_month"] = r.get("cost_month")
        p["cost_per_tenant"] = r.get("cost_per_tenant")
        p["capacity_per_min"] = r.get("capacity_per_min")
        p["staleness_q_s"] = r.get("staleness_q")
        p["cpu_pct_host"] = r.get("cpu_pct_host")
        p["ram_gb_host"] = r.get("ram_gb_host")
        p["bottleneck"] = r.bottleneck
    best = []
    for t in tenants:
        ok = [p for p in points if p["tenants"] == t and p["passes"]]
        if ok:
            best.append(
                {**min(ok, key=lambda p: (p["cost_month"], p["processes"])), "feasible": True}
            )
        else:
            best.append({"tenants": t, "feasible": False})
    return points, best
