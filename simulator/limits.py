"""Bounds on scenario input and the cost estimate of an event simulation.

Every bound says why it exists: past it the model allocates more memory or runs longer than
any capacity question needs (a file with 10⁹ tenants asked numpy for 75 GiB), or the daemon
itself would refuse the value. The loader reports a value out of bounds as
``file: line N: field: reason``; the command line estimates the time and memory of an event
simulation before it starts and refuses one past ``MAX_RUN_S`` or the machine's memory
unless given ``--force``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from simulator.scenario import Scenario

# --- bounds on the input ----------------------------------------------------------------

# The event model keeps about 1-2 KB per mailbox and process (measured: 1.0-2.0 KB with
# 20,000-200,000 mailboxes) and samples every mailbox every ``sample_interval_s``: a million
# mailboxes is a few GB per replication process, ten times Plan C.
MAX_TENANTS = 1_000_000
MAX_MAILBOXES = 1_000_000
# IMAP pools and token caches keep a value per mailbox and process.
MAX_PROCESSES = 1_000
# A month of simulated time covers every daily and weekly pattern a run can show; the
# default is two hours.
MAX_HORIZON_S = 30 * 86_400.0
# Each sample scans every mailbox; the scheduler runs every 10 s, so a faster sample shows
# nothing new.
MIN_SAMPLE_INTERVAL_S = 1.0
# Confidence intervals hardly narrow past a few dozen replications (the default is 5).
MAX_REPLICATIONS = 1_000
# Exchange Online's documented limit is a million items per folder; a full sync of the
# largest mailbox is then 200,000 Gmail requests (batches of 5 on the 2026 preset), each
# walked by the model.
MAX_MAILBOX_SIZE = 1_000_000
# The daemon's API accepts per-tenant and per-mailbox intervals of at most one day
# (``daemon.api``: ``sync_interval_s`` le=86400).
MAX_SYNC_INTERVAL_S = 86_400.0
# Mail one incremental sync reads (arrivals, flag changes and deletions over one interval);
# the model walks every request of a sync and the fast path samples 2,000 syncs.
MAX_MESSAGES_PER_SYNC = 100_000

# Why, by field (the loader adds it to pydantic's "less than or equal to ..." messages).
WHY: dict[str, str] = {
    "population.tenants": "the event model keeps 1-2 KB per mailbox and process and scans "
    "every mailbox at each sample: a million mailboxes is a few GB per replication",
    "daemon.processes": "the model keeps a value per mailbox and daemon process",
    "run.horizon_s": "a month of simulated time covers every daily and weekly pattern",
    "run.sample_interval_s": "each sample scans every mailbox, and the scheduler runs only "
    "every 10 s",
    "run.replications": "confidence intervals hardly narrow past a few dozen",
    "population.mailbox_size_cap": "Exchange Online allows a million items per folder, and "
    "the model walks every request of a full sync",
    "sync_interval_s": "the daemon's API accepts at most one day per tenant or mailbox",
    "messages_per_sync": "the model walks every request of a sync and the fast path samples "
    "2,000 syncs",
}

# --- cost of an event simulation ---------------------------------------------------------

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
    from simulator.distributions import mean
    from simulator.population import expected_mailboxes

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


# Fast-path grids (``mailsync sweep``): about 40 float arrays per configuration.
MAX_GRID = 1_000_000
