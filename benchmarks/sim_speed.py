"""Speed of the event simulation and of the analytic fast path.

Prints the wall and CPU time of 24 simulated hours of 10,000 mailboxes (``plan-c-5000``
with 10,000 tenants, 4 processes, 5-minute interval, about 2.8 million syncs; target
<= 30 s), simulated jobs per wall second, and fast-path configurations per second (target
>= 10,000).

The machine is shared and its speed drifts, so the same run also times a bare SimPy loop
and prints the model's time as a multiple of it: the cost of the model, not of the machine.
The bare loop processes as many timeouts as the model ran jobs (every job of the horizon,
warm-up included): as many SimPy processes as the model has workers, each doing nothing but
``yield env.timeout(d)`` in a loop (a fixed ``d`` per process, so they interleave in the
calendar as the workers' jobs do), until the timeouts add up to the model's job count.
The loop's cost per timeout is measured before the model (a million timeouts) and after
it (the model's count) and the ratio uses the mean of the two, so a machine that speeds up
or slows down during the run is bracketed.
A ratio of R means one simulated job costs as much as R bare SimPy timeouts; on a machine
where the bare loop takes B seconds for those timeouts, the model takes about R x B.

With ``--compiled`` the event model runs compiled with mypyc (``python -m simulator.compiled``
builds it into ``build/compiled``; a build older than the sources is refused): the process
starts again with that build first on its path. The bare loop is SimPy's own code either way.

With ``--profile N`` the event run is made under cProfile instead (no bare loop, no fast
path) and the N functions with the most time of their own are printed with their share
of the run: the "where the time goes" tables of ``docs/simulator.md`` (cProfile adds a
fixed cost per call, so functions called very often look more expensive than they are).

    python benchmarks/sim_speed.py [--hours 24] [--mailboxes 10000] [--configs N] [--skip-event]
    python benchmarks/sim_speed.py --compiled --configs 1000
    python benchmarks/sim_speed.py --hours 2 --profile 12
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import time
from collections.abc import Generator
from typing import Any

import numpy as np
import simpy

from simulator import compiled
from simulator.fast.analytic import evaluate, job_profile
from simulator.inputs.catalogue import load_catalogue
from simulator.inputs.loader import load_scenario
from simulator.inputs.scenario import Scenario
from simulator.model.engine import Simulation

# The bare loop before the model: this many timeouts on as many processes as the 4-process
# plan-b deployment has workers (4 x (17 + 10 + 7)).
PRE_TIMEOUTS = 1_000_000
WORKERS = 136


def bare_loop(timeouts: int, processes: int) -> tuple[float, float]:
    """Wall and CPU seconds of ``processes`` SimPy processes doing ``timeouts`` timeouts."""
    env = simpy.Environment()

    def worker(count: int, d: float) -> Generator[simpy.Event, Any, None]:
        for _ in range(count):
            yield env.timeout(d)

    per, extra = divmod(timeouts, processes)
    for w in range(processes):
        env.process(worker(per + (w < extra), 1.0 + w / processes))
    t0 = time.perf_counter()
    c0 = time.process_time()
    env.run()
    return time.perf_counter() - t0, time.process_time() - c0


def profile_run(hours: float, mailboxes: int, processes: int, top: int) -> None:
    """The event run under cProfile: the ``top`` functions by time of their own."""
    sim = Simulation(scenario(hours, mailboxes, processes), seed=1)
    prof = cProfile.Profile()
    prof.enable()
    sim.run()
    prof.disable()
    st = pstats.Stats(prof)
    rows = st.stats  # type: ignore[attr-defined]  # pstats keeps its table here
    total = sum(row[2] for row in rows.values())
    print(f"event simulation under cProfile: {hours:g} h x {mailboxes} mailboxes,")
    print(f"  {sim.jobs_started:,} jobs, {total:.1f} s of profiled time")
    print("| function | calls | own time | share |")
    print("|---|---|---|---|")
    ranked = sorted(rows.items(), key=lambda kv: -kv[1][2])[:top]
    for (path, line, name), (_cc, calls, own, _cum, _callers) in ranked:
        where = f"{path.split('/work/main/')[-1].split('site-packages/')[-1]}:{line}"
        label = f"`{name}` ({where})" if line else f"`{name}`"
        print(f"| {label} | {calls:,} | {own:.2f} s | {own / total:.1%} |")


def scenario(hours: float, mailboxes: int, processes: int) -> Scenario:
    """``plan-c-5000`` with ``mailboxes`` tenants of one mailbox for ``hours``."""
    return load_scenario("plan-c-5000").updated(
        {
            "population.tenants": mailboxes,
            "daemon.processes": processes,
            "daemon.hosts": processes,
            "run.horizon_s": hours * 3600,
            "run.warmup_s": 600,
            "run.sample_interval_s": 60,
        }
    )


def event_run(hours: float, mailboxes: int, processes: int) -> None:
    s = scenario(hours, mailboxes, processes)
    # The model's job count is known only after its run: before it, the bare loop's cost
    # per timeout is measured on a million timeouts.
    pre_wall, pre_cpu = bare_loop(PRE_TIMEOUTS, WORKERS)
    t0 = time.perf_counter()
    c0 = time.process_time()
    sim = Simulation(s, seed=1)
    r = sim.run()
    wall = time.perf_counter() - t0
    cpu = time.process_time() - c0
    sc = r.scalars
    jobs = sim.jobs_started
    window_jobs = sc["jobs_per_s"] * sc["window_s"]
    syncs = sc["throughput_per_min"] * sc["window_s"] / 60
    # Every event the model scheduled (SimPy numbers them; read after the run).
    events = next(sim.env._eid)
    workers = sum(st.servers for st in sim.stations)
    post_wall, post_cpu = bare_loop(jobs, workers)
    # The bare loop's time for the model's jobs at the mean of both measured speeds.
    bwall = (pre_wall / PRE_TIMEOUTS + post_wall / jobs) / 2 * jobs
    bcpu = (pre_cpu / PRE_TIMEOUTS + post_cpu / jobs) / 2 * jobs
    model = "compiled with mypyc" if compiled.is_compiled() else "plain Python"
    print(
        f"event simulation: {hours:g} h x {mailboxes} mailboxes, {processes} processes;"
        f" model {model}"
    )
    print(f"  model wall {wall:.1f} s, cpu {cpu:.1f} s")
    print(
        f"  jobs {jobs:,} ({window_jobs:,.0f} after warm-up, {syncs:,.0f} successful syncs);"
        f" {events:,} SimPy events ({events / jobs:.2f} per job)"
    )
    print(
        f"  speed {jobs / wall:,.0f} simulated jobs per wall second ({jobs / cpu:,.0f} per cpu s)"
    )
    print(
        f"  bare SimPy loop, {jobs:,} timeouts on {workers} processes: wall {bwall:.2f} s,"
        f" cpu {bcpu:.2f} s (mean of {pre_wall / PRE_TIMEOUTS * 1e6:.2f} us per timeout"
        f" before the model and {post_wall / jobs * 1e6:.2f} after)"
    )
    print(
        f"  ratio model / bare loop: {wall / bwall:.2f} (wall), {cpu / bcpu:.2f} (cpu);"
        f" one job costs {cpu / bcpu:.2f} bare timeouts"
    )
    # The quiet-machine estimate: a machine whose bare timeout costs b us runs this in
    # about ratio x b x jobs / 1e6 seconds.
    per_us = bcpu / jobs * 1e6
    print(
        f"  normalised: {cpu / bcpu:.2f} bare-loop times; bare loop {per_us:.2f} us per timeout"
        f" here, so {cpu / bcpu * jobs / 1e6:.1f} s per 1 us of bare timeout"
    )
    print(f"  staleness p95 {sc['staleness_p95_all']:.0f} s")
    print(f"  queue wait p95 {sc['wait_p95_high']:.2f} s")


def fast_path(configs: int) -> None:
    s = load_scenario("plan-c-5000").updated({"criteria.fresh_quantile": 0.99})
    p = job_profile(s)
    rng = np.random.default_rng(1)
    n_inst = len(load_catalogue(s.costs.catalogue).instances)
    tenants = rng.integers(100, 50_000, configs).astype(float)
    processes = rng.integers(1, 17, configs).astype(float)
    hosts = np.maximum(1.0, np.floor(processes / rng.integers(1, 5, configs)))
    conc = rng.uniform(0.25, 3.0, configs)
    interval = rng.uniform(60.0, 900.0, configs)
    instance = rng.integers(0, n_inst, configs)
    evaluate(s, p, tenants[:1000], processes[:1000])  # warm caches and imports
    t0 = time.perf_counter()
    out = evaluate(s, p, tenants, processes, hosts, conc, interval, instance)
    wall = time.perf_counter() - t0
    print(f"fast path: {configs:,} configurations in {wall:.3f} s")
    print(f"  {configs / wall:,.0f} configurations per second (target >= 10,000)")
    print(f"  {int(out['passes'].sum()):,} pass every criterion")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--hours", type=float, default=24.0)
    ap.add_argument("--mailboxes", type=int, default=10_000)
    ap.add_argument("--processes", type=int, default=4)
    ap.add_argument("--configs", type=int, default=1_000_000)
    ap.add_argument("--skip-event", action="store_true")
    ap.add_argument("--profile", type=int, default=0, metavar="N")
    ap.add_argument("--compiled", action="store_true", help="the event model built by mypyc")
    a = ap.parse_args()
    if a.compiled and not compiled.is_compiled():
        why = compiled.stale()
        if why:
            raise SystemExit(why)
        path = os.pathsep.join(
            filter(None, [str(compiled.DEFAULT_OUT), os.environ.get("PYTHONPATH")])
        )
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, "PYTHONPATH": path})
    if a.profile:
        profile_run(a.hours, a.mailboxes, a.processes, a.profile)
        return
    fast_path(a.configs)
    if not a.skip_event:
        event_run(a.hours, a.mailboxes, a.processes)


if __name__ == "__main__":
    main()
