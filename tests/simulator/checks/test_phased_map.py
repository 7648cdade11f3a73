"""The phased map (issue 9, item 3: several schedulers' phases) replays a recorded run's
phases to that run's wait: close-phased runs wait ten times longer than even-phased ones,
and the map tells them apart as the event model does."""

from __future__ import annotations

import numpy as np
import pytest

from simulator.checks import Cycles, phased_inputs, record_cycles, simulate_phased
from simulator.inputs.loader import load_scenario
from simulator.inputs.scenario import Scenario, plan_job_time


def _plan_c() -> Scenario:
    # Four schedulers, 2 s jobs, 68 workers for batches of 42 on average; 40 minutes.
    return load_scenario("plan-c-5000").updated(
        {**plan_job_time(2.0), "run.horizon_s": 2400.0, "run.warmup_s": 600.0}
    )


def _phases(gaps: tuple[float, ...]) -> np.ndarray:
    return np.concatenate([[0.0], np.cumsum(gaps)[:-1]])


def test_the_phased_map_replays_a_runs_phases_to_its_wait() -> None:
    s = _plan_c()
    r = Cycles()
    for seed in range(100, 106):
        record_cycles(s, seed, r)
    inp = phased_inputs(s)
    event = np.array([w for _g, w in r.runs])
    replayed = np.array(
        [np.mean(simulate_phased(inp, paths=4, phases=_phases(g)).path_waits) for g, _w in r.runs]
    )
    # The runs' waits span 0.04 to 0.62 s with their phases (0.31 s on average); the map
    # follows them run by run and on average (0.30 s).
    assert event.max() > 10 * event.min()
    assert float(np.corrcoef(event, replayed)[0, 1]) > 0.85
    assert replayed.mean() == pytest.approx(event.mean(), rel=0.15)


def test_the_phased_map_is_seeded_and_even_phases_wait_little() -> None:
    s = _plan_c().updated({"run.horizon_s": 1200.0, "run.warmup_s": 300.0})
    inp = phased_inputs(s)
    a, b = simulate_phased(inp, paths=4, seed=5), simulate_phased(inp, paths=4, seed=5)
    assert a == b
    # Even phases: batches of 42 on 68 workers, as the fast path's closed forms take them.
    even = simulate_phased(inp, paths=4, phases=np.arange(4) * 2.5)
    assert float(np.mean(even.path_waits)) < 0.05
    assert even.batch_mean == pytest.approx(5000 / 300 * 2.5, rel=0.05)
    with pytest.raises(ValueError, match="not push"):
        phased_inputs(s.updated({"daemon.push_share": 0.5}))
