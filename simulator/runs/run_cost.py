"""The cost of an event simulation, estimated before it starts.

The command line estimates the time and memory of an event simulation from measured rates and
refuses one past ``MAX_RUN_S`` or the machine's memory unless given ``--force``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from simulator.inputs.scenario import Scenario

# Simulated jobs per second of one process: 39k-58k for the 24-hour benchmark on the shared
# 2-core VM (docs/simulator.md), 110k-180k on plan-b-1000; the lower figure, to be safe.
JOBS_PER_S = 40_000.0
# Mailbox rows scanned per second by the staleness sampler (measured 17 M/s).
SAMPLE_ROWS_PER_S = 10_000_000.0
# Resident memory of one replication process: the interpreter and imports, plus per mailbox
# (measured 1.0-2.0 KB) and per mailbox and daemon process (IMAP pool and token cache).
BASE_MB = 120.0
BYTES_PER_MAILBOX = 2_500.0
BYTES_PER_MAILBOX_PROCESS = 64.0
# Past these an event simulation needs ``--force``; past ``NOTICE_S`` the estimate is shown.
MAX_RUN_S = 3_600.0
NOTICE_S = 30.0


@dataclass(frozen=True)
class Estimate:
    """What an event simulation will cost, before it runs."""

    jobs: float  # simulated syncs over every run
    runs: int  # replications x experiments (steady, drain)
    processes: int  # runs in parallel
    seconds: float  # wall-clock
    peak_gb: float  # resident memory of the runs in parallel

    def text(self) -> str:
        """One line for the terminal."""
        return (
            f"about {self.jobs:,.0f} simulated syncs in {self.runs} runs on "
            f"{self.processes} processes: ~{_duration(self.seconds)}, ~{self.peak_gb:.1f} GB"
        )


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def memory_gb() -> float:
    """Physical memory of this machine (inf when unknown)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9
    except (ValueError, OSError, AttributeError):
        return math.inf


def estimate(scenarios: Sequence[Scenario], jobs: int | None = None) -> Estimate:
    """Time and memory of ``runner.run_many(scenarios, jobs)`` from the measured rates."""
    from simulator.inputs.distributions import mean
    from simulator.inputs.population import expected_mailboxes

    total_jobs = work_s = 0.0
    runs = 0
    per_run_gb: list[float] = []
    for s in scenarios:
        n = expected_mailboxes(s)
        d = s.population.sync_interval_s
        interval = max(1.0, s.profile().sync_interval_s if d is None else mean(d))
        rate = sum(a.share * a.arrivals_per_hour for a in s.population.activity) / 3600
        r = s.run
        per_s = n / interval + n * rate * s.daemon.push_share
        run_jobs = per_s * r.horizon_s
        samples = r.horizon_s / r.sample_interval_s
        run_s = run_jobs / JOBS_PER_S + samples * n / SAMPLE_ROWS_PER_S
        k = int(r.steady) + int(r.drain)
        runs += k * r.replications
        total_jobs += k * r.replications * run_jobs
        work_s += k * r.replications * run_s
        mem = BASE_MB * 1e6 + n * (
            BYTES_PER_MAILBOX + BYTES_PER_MAILBOX_PROCESS * s.daemon.processes
        )
        per_run_gb.extend([mem / 1e9] * (k * r.replications))
    procs = max(1, min(jobs or os.cpu_count() or 1, runs))
    peak = sum(sorted(per_run_gb, reverse=True)[:procs])
    return Estimate(total_jobs, runs, procs, work_s / procs, peak)


def refusal(e: Estimate) -> str | None:
    """Why the run is too large to start without ``--force``; None when it is not."""
    if e.seconds > MAX_RUN_S:
        return f"longer than the {_duration(MAX_RUN_S)} allowed without --force"
    limit = 0.8 * memory_gb()
    if e.peak_gb > limit:
        return f"more than 80 % of this machine's {memory_gb():.1f} GB of memory"
    return None


def guard(scenarios: Sequence[Scenario], jobs: int | None, force: bool) -> Estimate:
    """The estimate of an event simulation; ``ConfigError`` when it is too large to start
    without ``force``."""
    from daemon.errors import ConfigError

    e = estimate(scenarios, jobs)
    why = refusal(e)
    if why is not None and not force:
        names = ", ".join(s.name for s in scenarios[:3]) + (", ..." if len(scenarios) > 3 else "")
        raise ConfigError(f"{names}: estimate: {e.text()}: {why} (--force runs it anyway)")
    return e
