"""What ``analytic.evaluate``'s steps share: one grid of configurations (``Config``) and the
rates and waits it settles to (``Settled``), in their own module so that the steps in
``analytic`` and ``resources`` both read them without importing each other."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.fast.sampling import JobProfile
from simulator.inputs.scenario import Scenario
from simulator.model.imap_pool import PoolCosts

Arr = np.ndarray


@dataclass(frozen=True)
class Refined:
    """The release-cycle maps' figures per configuration where ``on`` (elsewhere NaN):
    ``cycle_map.refine``."""

    on: Arr
    dispersion: Arr  # the batches' variance / mean
    held: Arr  # workers busy with chunks at a release
    back_s: Arr  # how long those chunks still run
    chunk_wait: Arr  # a chunk's queue wait beyond its dispatch
    # A scheduled job's queue wait, dispatch included, where a map gives it whole (several
    # schedulers: ``phased_map``; elsewhere NaN and the drain takes the figures above).
    sched_wait: Arr


@dataclass(frozen=True)
class Config:
    """One grid of configurations: what ``evaluate``'s steps share (arrays broadcast)."""

    s: Scenario
    p: JobProfile
    tenants: Arr
    k: Arr  # processes
    n: Arr  # mailboxes
    mean_i: Arr  # sync interval
    inv_i: Arr  # E[1 / interval]
    c_tier: Arr  # workers per process that may serve the mailboxes' tier
    c_all: Arr  # all workers per process
    c: Arr  # serving workers of all processes
    locked: Arr  # interval a whole number of scheduler periods
    s_full: Arr | float  # a full sync's worker time (the run's share of it with ``run_window``)
    cpu_ms: Arr | float
    share: Arr | float  # the share of full syncs' worker time counted
    # The cycle map's drain inputs where the closed forms miss them (``cycle_map.refine``).
    cycle: Refined | None = None


@dataclass(frozen=True)
class Settled:
    """The rates and waits after the fixed-point passes of ``_settle``."""

    lam: Arr  # syncs per second, retries included
    lam_p: Arr  # of them push syncs
    demand: Arr
    x_max: Arr
    caps: list[Arr]
    stable: Arr
    s_inc: Arr
    s_mean: Arr
    cs2: Arr
    cpu_s: Arr
    pool: PoolCosts
    c_eff: Arr
    w_s: Arr  # scheduled jobs' queue wait beyond their dispatch
    w_p: Arr  # push jobs' queue wait
    w_ch: Arr  # a quota-chunked full sync's later chunks' queue wait
    dispatch: Arr
    push_dispatch: float
    claim_mean: Arr
