"""The cycle map (``simulator.fast.cycle_map``) on a scenario's own configuration, and what
the fast path's drain makes of its figures: for ``benchmarks/sim_cycles.py`` and the tests
that hold the map against the event model's recordings (``checks.cycles``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from simulator.fast import drain, profiles, settle
from simulator.fast.cycle_map import (
    CycleFigures,
    CycleInputs,
    cycle_inputs_at,
    simulate_cycles,
)
from simulator.inputs.scenario import Scenario

if TYPE_CHECKING:
    from simulator.fast import JobProfile
    from simulator.fast.config import Config, Settled

__all__ = [
    "CycleFigures",
    "CycleInputs",
    "cycle_inputs",
    "drain_wait",
    "mean_wait",
    "simulate_cycles",
]

Arr = np.ndarray


def cycle_inputs(s: Scenario) -> CycleInputs:
    """The scenario's own configuration as the fast path settles it for a run (one
    scheduler, no push: with several schedulers their phases decide the batches, and pushes
    come between the releases, neither of which the map models)."""
    if s.daemon.processes != 1:
        raise ValueError(f"{s.name}: the cycle map models one scheduler, not {s.daemon.processes}")
    if s.daemon.push_share > 0:
        raise ValueError(f"{s.name}: the cycle map models scheduled syncs only, not push")
    _p, cfg, st = _settled(s)
    return cycle_inputs_at(cfg, st, (0,))


def drain_wait(s: Scenario, f: CycleFigures) -> float:
    """The scheduled jobs' mean queue wait (dispatch included) that ``drain.batch_wait``
    gives from the figures' batches and held chunks, on the scenario's configuration."""
    p, cfg, st = _settled(s)
    s_inc = _one(st.s_inc)
    m = np.array(f.batch_mean)
    w = drain.batch_wait(
        m, m * f.dispersion, np.array(_one(cfg.c)), np.array(s_inc), p.renewal_mean,
        p.renewal_var, _one(st.cs2), [(np.array(f.held_mean), np.array(f.residual_s / s_inc))],
    )  # fmt: skip
    return _one(w) + _one(st.dispatch)


def mean_wait(s: Scenario, f: CycleFigures) -> float:
    """Every high-queue job's mean wait as the fast path mixes it (``analytic._waits``: the
    scheduled syncs and a full sync's later chunks at their rates), with the scheduled wait
    of ``drain_wait`` and the chunks' wait of the figures."""
    p, cfg, st = _settled(s)
    lam = _one(st.lam)
    chunks = lam * p.full_share * (p.full_jobs - 1) * _one(cfg.share)
    return (lam * drain_wait(s, f) + chunks * f.chunk_wait_s) / (lam + chunks)


def _settled(s: Scenario) -> tuple[JobProfile, Config, Settled]:
    """The scenario's profile and its own configuration as a run of it settles (one
    scheduler)."""
    p = profiles.profile(s)
    cfg, st = settle(s, p, np.array([s.population.tenants]), np.array([1]), run_window=True)
    return p, cfg, st


def _one(x: Arr | float) -> float:
    """The value of a one-configuration array."""
    return float(np.asarray(x).ravel()[0])
