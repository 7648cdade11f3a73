"""The cycle map (issue 9, item 3) reproduces what the event model's releases meet: the
batches' spread, the chunks busy at a release, the drain's end and the chunks' waits, and
from them the fast path's drain gives the scheduled wait."""

from __future__ import annotations

from dataclasses import replace

import pytest

from simulator.checks import Cycles, cycle_inputs, drain_wait, record_cycles, simulate_cycles
from simulator.inputs.loader import load_scenario
from simulator.inputs.scenario import Scenario, plan_job_time
from simulator.runs import seeds


def _recorded(s: Scenario, runs: int) -> Cycles:
    r = Cycles()
    for seed in seeds(s.run.seed, runs):
        record_cycles(s, seed, r)
    return r


# plan-b-300-original's runs hold one or two full syncs at a time: more paths.
@pytest.mark.parametrize(("name", "paths"), [("plan-b-1000", 32), ("plan-b-300-original", 64)])
def test_the_cycle_map_meets_what_the_event_models_releases_meet(name: str, paths: int) -> None:
    # 2 s jobs: the batches clump (variance/mean 5.6 and 1.9 over six runs) and the chunks
    # at a release follow the previous drain's end.
    s = load_scenario(name).updated(plan_job_time(2.0))
    ev = _recorded(s, 6)
    f = simulate_cycles(cycle_inputs(s), paths=paths)
    assert f.batch_mean == pytest.approx(ev.batch_mean(), rel=0.03)
    assert f.dispersion == pytest.approx(ev.batch_dispersion(), rel=0.25)
    assert f.drain_end_mean == pytest.approx(float(sum(ev.drain_end) / len(ev.drain_end)), rel=0.1)
    assert f.held_mean == pytest.approx(ev.held_mean("chunk"), rel=0.3)
    assert f.chunk_wait_s == pytest.approx(ev.wait_mean("chunk"), rel=0.1)
    # The fast path's drain on those inputs: the recorded scheduled wait (1.470 and 1.557 s
    # over six runs; 1.331 and 1.491 s from its closed forms alone).
    assert drain_wait(s, f) == pytest.approx(ev.wait_mean("scheduled"), rel=0.05)


def test_the_cycle_map_is_seeded_and_runs_without_chunks() -> None:
    s = load_scenario("plan-b-300-original").updated(
        {**plan_job_time(2.0), "run.horizon_s": 1800.0, "run.warmup_s": 300.0}
    )
    inp = cycle_inputs(s)
    a, b = simulate_cycles(inp, paths=4, seed=5), simulate_cycles(inp, paths=4, seed=5)
    assert a == b
    assert simulate_cycles(inp, paths=4, seed=6) != a
    bare = simulate_cycles(replace(inp, chunk_runs=(), chunk_pauses=(), full_rate=0.0), paths=4)
    assert bare.held_mean == 0 and bare.chunk_wait_s == 0
    # Without chunks nothing varies the free workers: the batches even out below Poisson.
    assert bare.dispersion < 1.0
    with pytest.raises(ValueError, match="one scheduler"):
        cycle_inputs(s.updated({"daemon.processes": 2}))
    with pytest.raises(ValueError, match="not push"):
        cycle_inputs(s.updated({"daemon.push_share": 0.5}))
