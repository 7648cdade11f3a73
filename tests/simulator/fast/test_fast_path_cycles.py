"""Where the drain's closed forms miss what a run meets (one scheduler releasing onto fewer
workers than its mean batch, quota-chunked full syncs), the fast path's figures for a run
take the batches' spread, the chunks busy at a release and the chunks' wait from the cycle
map, and with several schedulers the waits from the phased map (issue 9, item 3; the wait
against the event model: ``test_fast_path_drain.py``); elsewhere, and for plans, nothing
changes."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest

from simulator.fast import in_regime, profiles, settle
from simulator.inputs.loader import load_scenario
from simulator.inputs.scenario import Scenario, plan_job_time

if TYPE_CHECKING:
    from simulator.fast.config import Config, Settled


def _settled(s: Scenario, run_window: bool) -> tuple[Config, Settled]:
    p = profiles.profile(s)
    tenants, k = np.array([s.population.tenants]), np.array([s.daemon.processes])
    return settle(s, p, tenants, k, run_window=run_window)


@pytest.mark.parametrize(
    ("name", "update", "on"),
    [
        ("plan-b-1000", {}, True),
        ("plan-b-300-original", {}, True),
        # Several schedulers, push between the releases, pooled workers above the batch:
        # the closed forms' cases.
        ("plan-b-1000", {"daemon.processes": 2}, False),
        ("plan-b-1000", {"daemon.push_share": 0.5}, False),
        ("plan-b-1000-wc", {}, False),
        # Several schedulers whose releases outnumber the workers: the phased map.
        ("plan-c-5000", {"run.horizon_s": 2400.0, "run.warmup_s": 600.0}, True),
        ("plan-c-5000", {"daemon.push_share": 0.5}, False),
    ],
)
def test_the_cycle_map_serves_a_runs_configuration_only_where_the_closed_forms_miss(
    name: str, update: dict[str, float], on: bool
) -> None:
    s = load_scenario(name).updated({**plan_job_time(2.0), **update})
    cfg, st = _settled(s, run_window=True)
    assert bool(in_regime(cfg, st).all()) is on
    assert (cfg.cycle is not None) is on
    if on and s.daemon.processes == 1:
        ref = cfg.cycle
        assert ref.dispersion[0] > 1.2 and 0 < ref.back_s[0] < 2.0
        assert np.isnan(ref.sched_wait[0])
        # The chunks wait behind the drain longer than the time-average backlog says.
        assert float(st.w_ch[0]) > float(st.w_p[0])
    elif on:
        # The phased map gives the scheduled wait whole: 0.46 s with 2 s jobs on plan-c-5000,
        # where the closed forms' even batches wait 0.014 s.
        ref = cfg.cycle
        assert np.isnan(ref.dispersion[0]) and ref.sched_wait[0] > 0.2
    # A plan's steady state keeps the closed forms (the walk's spread is the run's).
    plan_cfg, plan_st = _settled(s, run_window=False)
    assert plan_cfg.cycle is None
    assert np.array_equal(plan_st.w_ch, plan_st.w_p)
