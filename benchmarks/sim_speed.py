"""Speed of the event simulation and of the analytic fast path.

Prints simulated jobs per wall second, the wall time of 24 simulated hours of 10,000
mailboxes (5-minute interval, about 2.9 million syncs; target < 60 s) and fast-path
configurations per second (target >= 10,000).

    python benchmarks/sim_speed.py [--hours 24] [--mailboxes 10000] [--configs N] [--skip-event]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from simulator.analytic import evaluate, job_profile
from simulator.catalogue import load_catalogue
from simulator.engine import Simulation
from simulator.loader import load_scenario


def event_run(hours: float, mailboxes: int, processes: int) -> None:
    s = load_scenario("plan-c-5000").updated(
        {
            "population.tenants": mailboxes,
            "daemon.processes": processes,
            "daemon.hosts": processes,
            "run.horizon_s": hours * 3600,
            "run.warmup_s": 600,
            "run.sample_interval_s": 60,
        }
    )
    t0 = time.perf_counter()
    c0 = time.process_time()
    r = Simulation(s, seed=1).run()
    wall = time.perf_counter() - t0
    cpu = time.process_time() - c0
    sc = r.scalars
    jobs = sc["jobs_per_s"] * sc["window_s"]
    syncs = sc["throughput_per_min"] * sc["window_s"] / 60
    print(f"event simulation: {hours:g} h x {mailboxes} mailboxes, {processes} processes")
    print(f"  wall {wall:.1f} s, cpu {cpu:.1f} s")
    print(f"  jobs in window {jobs:,.0f} ({syncs:,.0f} successful syncs)")
    print(f"  speed {jobs / wall:,.0f} simulated jobs per wall second")
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
    a = ap.parse_args()
    fast_path(a.configs)
    if not a.skip_event:
        event_run(a.hours, a.mailboxes, a.processes)


if __name__ == "__main__":
    main()
