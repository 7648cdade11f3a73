"""Accuracy of the simulation core and of the fast path, with more replications than tests.

Prints tables: M/M/c against Erlang C, three priority classes against Cobham's formula,
the daemon model's batch release against the drain formula, and the fast path against the
event simulation on the shipped presets (model defaults and 2 s jobs).

    python benchmarks/sim_accuracy.py [--quick] [--only fast] [--scenario plan-c-5000@2s-jobs]
"""

from __future__ import annotations

import argparse
import math
import multiprocessing as mp
import time

import numpy as np
from variants import scenario

from simulator.checks.textbook import QueueStats, run_queue
from simulator.checks.validation import compare, expected_gap, fast_for
from simulator.fast.closed_forms import batch_drain_mean, erlang_c, mmc_priority_waits, mmc_wait
from simulator.inputs.distributions import Exponential
from simulator.inputs.loader import load_scenario, shipped_scenarios
from simulator.inputs.scenario import plan_job_time
from simulator.runs.results import REL_TOL, estimate
from simulator.runs.runner import run_many

NO_ERRORS = {"transient": 0.0, "auth_revoked": 0.0, "permanent": 0.0}
# Replications per scenario of the fast-path table. A run holds a few full syncs of
# heavy-tailed sizes, so the mean of 10 runs sits below the expectation more often than
# not while its CI looks tight: on plan-b-1000 the mean wait's error was -5.3 % (CI 3.9 %)
# over 10 runs and -4.4 % (CI 1.9 %) over 30. 30 runs take about two minutes here.
FAST_REPLICATIONS = 30


def _mmc(task: tuple[int, float, int, int, tuple[float, ...]]) -> QueueStats:
    c, rho, n, seed, shares = task
    return run_queue(
        Exponential(mean=1 / (rho * c)), Exponential(mean=1.0), c, n, seed, class_shares=shares
    )


def erlang(reps: int, n: int, pool: mp.pool.Pool) -> None:
    print(f"\nM/M/c against Erlang C ({reps} replications x {n:,} customers)")
    print(
        f"{'c':>4} {'rho':>5} {'Wq Erlang':>10} {'Wq sim ± CI':>22} {'bias':>7} "
        f"{'P(W>0)':>8} {'sim':>8} {'bias':>7}"
    )
    for c in (1, 2, 5, 10, 34):
        for rho in (0.5, 0.8, 0.95):
            runs = pool.map(_mmc, [(c, rho, n, s, (1.0,)) for s in range(reps)])
            w = estimate([r.waits[0] for r in runs])
            p = estimate([r.p_wait for r in runs])
            wq, pw = float(mmc_wait(c, rho * c, 1.0)), float(erlang_c(c, rho * c))
            print(
                f"{c:>4} {rho:>5} {wq:>10.4g} {w.mean:>12.4g} ± {w.half:<8.2g}"
                f"{w.mean / wq - 1:>+7.1%} {pw:>8.4f} {p.mean:>8.4f} {p.mean / pw - 1:>+7.1%}"
            )


def priority(reps: int, n: int, pool: mp.pool.Pool) -> None:
    print(f"\nNon-preemptive priority, shares 0.2/0.5/0.3 ({reps} x {n:,})")
    shares = (0.2, 0.5, 0.3)
    for c, rho in ((10, 0.8), (10, 0.95), (34, 0.8)):
        runs = pool.map(_mmc, [(c, rho, n, s, shares) for s in range(reps)])
        got = np.mean([r.waits for r in runs], axis=0)
        want = mmc_priority_waits(c, [rho * c * s for s in shares], 1.0)
        cells = "  ".join(
            f"{w:.4g}/{g:.4g} ({g / w - 1:+.1%})" for w, g in zip(want, got, strict=True)
        )
        print(f"  c={c} rho={rho}: theory/sim per class: {cells}")


def batch_release(reps: int) -> None:
    print("\nDaemon model: batch release against the drain formula")
    # (tenants, high workers, job seconds): loads 0.8, 0.8 and 0.88 of the workers.
    for tenants, workers, job in ((600, 5, 2.0), (1200, 15, 3.0), (3000, 17, 1.5)):
        s = load_scenario("plan-b-300-original").updated(
            {
                **plan_job_time(job),
                "population.tenants": tenants,
                "daemon.overrides": {"concurrency.high": workers, "batch_size": 200},
                "daemon.cursor_expiry_per_sync": 0.0,
                "providers.gmail.errors": NO_ERRORS,
                "providers.graph.errors": NO_ERRORS,
                "resources.cpu_ms_per_call": 0.0,
                "resources.cpu_ms_per_job": 0.0,
                "resources.db_commit_ms": 0.0,
                "resources.cpu_ms_per_message": 0.0,
                "resources.db_ms_per_message": 0.0,
                "run.replications": reps,
                "run.drain": False,
            }
        )
        r = run_many([s], progress=False)[0]
        b = tenants / 300 * 10
        print(
            f"  batch {b:.0f} on {workers} workers of {job} s: simulated "
            f"{r.metrics['wait_mean_high'].text()} s, drain formula "
            f"{float(batch_drain_mean(b, workers, job)):.3g} s, M/M/c "
            f"{float(mmc_wait(workers, tenants / 300, 1 / job)):.3g} s"
        )


# (fast-path key, event key, label) of the figures the accuracy target covers.
FIGURES = [
    ("throughput_per_min", "throughput_per_min", "throughput"),
    ("wait_mean", "wait_mean_high", "wait mean"),
    ("staleness_p95", "staleness_p95_all", "stale p95"),
    ("capacity_per_min", "capacity_per_min", "capacity"),
    ("cpu_pct_host", "cpu_pct_host", "CPU"),
    ("ram_gb_host", "ram_gb_host", "RAM"),
]


def fast_vs_event(reps: int, only: list[str] | None = None) -> None:
    print(f"\nFast path against the event simulation ({reps} replications)")
    names = [f"{n}@{v}" for v in ("model", "2s-jobs") for n in shipped_scenarios()]
    # Push-driven: every arrival notifies, so most syncs are pushes, not the schedule.
    names.append("plan-b-1000@push")
    scen = [scenario(n).updated({"run.replications": reps}) for n in names]
    if only:
        scen = [s for s in scen if any(o in s.name for o in only)]
    results = run_many(scen, progress=False)
    print(
        "  relative error (fast - event) / event; [CI] = the event model's 95 % half-width "
        "relative to its mean;\n  * = resolvable at 5 % (CI < 5 %) and outside 5 %"
    )
    print(f"  {'scenario':28s}" + "".join(f"{lab:>20s}" for _, _, lab in FIGURES))
    resolvable = within = 0
    # Figures outside 5 % (resolved or not) that the fast path is not expected to match.
    notes: dict[tuple[str, str], list[str]] = {}
    for r in results:
        f = fast_for(r.scenario, as_run=True)
        cells = []
        for fk, ek, _ in FIGURES:
            e = r.metrics.get(ek)
            if e is None or math.isnan(e.mean) or e.mean == 0 or not f["stable"]:
                cells.append(f"{'n/a':>20s}")
                continue
            err = (f[fk] - e.mean) / abs(e.mean)
            ci = e.half / abs(e.mean)
            res = ci < REL_TOL
            flag = "*" if res and abs(err) > REL_TOL else " "
            resolvable += res
            within += res and abs(err) <= REL_TOL
            cells.append(f"{err:>+9.1%} [{ci:>6.1%}]{flag}")
            why = expected_gap(r.scenario, fk)
            if abs(err) > REL_TOL and why:
                notes.setdefault((fk, why), []).append(r.scenario.name)
        print(f"  {r.scenario.name:28s}" + "".join(f"{c:>20s}" for c in cells))
    print(f"  {within} of {resolvable} resolvable figures within {REL_TOL:.0%}")
    print("  outside 5 % where the fast path is not expected to agree (validation.expected_gap):")
    for (fk, why), names in notes.items():
        print(f"    {fk} on {', '.join(names)}: {why}")
    rows = [a for r in results for a in compare(r)]
    agree = sum(a.ok for a in rows if a.resolved)
    print(
        f"  report's check (simulator.checks.validation.compare, all figures): {agree} of "
        f"{sum(a.resolved for a in rows)} resolved agree; "
        f"{sum(not a.resolved for a in rows)} unresolved, "
        f"{sum(a.ok for a in rows if not a.resolved)} of them within the CI"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="fewer replications and customers")
    ap.add_argument(
        "--only",
        choices=["textbook", "batch", "fast"],
        action="append",
        help="run only these tables (repeatable; default: all)",
    )
    ap.add_argument(
        "--scenario",
        action="append",
        help="fast-path table: only scenarios whose name contains this (repeatable), "
        "e.g. plan-c-5000 or @2s-jobs",
    )
    ap.add_argument(
        "--replications",
        type=int,
        help=f"fast-path table: replications per scenario (default {FAST_REPLICATIONS}, "
        "2 with --quick)",
    )
    a = ap.parse_args()
    parts = set(a.only or ["textbook", "batch", "fast"])
    reps, n = (4, 50_000) if a.quick else (10, 200_000)
    t0 = time.perf_counter()
    if "textbook" in parts:
        with mp.get_context("fork").Pool() as pool:
            erlang(reps, n, pool)
            priority(reps, n, pool)
    if "batch" in parts:
        batch_release(2 if a.quick else 5)
    if "fast" in parts:
        fast_vs_event(a.replications or (2 if a.quick else FAST_REPLICATIONS), a.scenario)
    print(f"\n{time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
