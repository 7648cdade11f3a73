"""The phased map (``simulator.fast.phased_map``) on a scenario's own configuration: for
``benchmarks/sim_cycles.py --phased`` and the tests that replay recorded runs' phases."""

from __future__ import annotations

import numpy as np

from simulator.fast import (
    PhasedFigures,
    PhasedInputs,
    phased_inputs_at,
    profiles,
    settle,
    simulate_phased,
)
from simulator.inputs.scenario import Scenario

__all__ = ["PhasedFigures", "PhasedInputs", "phased_inputs", "simulate_phased"]


def phased_inputs(s: Scenario) -> PhasedInputs:
    """The scenario's own configuration as the fast path settles it for a run, before the
    maps' figures (its job times scaled to that mean, which adds connection set-up and
    token requests)."""
    if s.daemon.push_share > 0:
        raise ValueError(f"{s.name}: the phased map models scheduled syncs only, not push")
    p = profiles.profile(s)
    tenants, k = np.array([s.population.tenants]), np.array([s.daemon.processes])
    cfg, st = settle(s, p, tenants, k, run_window=True, cycles=False)
    return phased_inputs_at(cfg, st, (0,))
