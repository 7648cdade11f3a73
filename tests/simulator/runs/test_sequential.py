"""Sequential stopping (more replications only where an interval is wide), the runs it keeps,
and the job profiles memoised and computed in the worker pool."""

from __future__ import annotations

import math

from simulator.fast import profiles
from simulator.fast.analytic import job_profile
from simulator.inputs.loader import load_scenario
from simulator.inputs.scenario import Scenario
from simulator.model.metrics import RunMetrics
from simulator.runs import sequential
from simulator.runs.results import Estimate
from simulator.runs.runner import run_many, run_raw
from tests.simulator.builders import deterministic


def _small(**changes: object) -> Scenario:
    # 60 tenants for 15 minutes: a run takes a fraction of a second.
    return deterministic(
        2.0,
        population__tenants=60,
        run__horizon_s=900.0,
        run__warmup_s=300.0,
        run__replications=3,
        run__drain=True,
        **changes,
    )


def test_wide_names_the_figures_whose_interval_exceeds_the_target() -> None:
    r = run_many([_small()], jobs=1, progress=False)[0]
    r.metrics["throughput_per_min"] = Estimate(100.0, 6.0, 3)  # 6 % of the mean
    r.metrics["staleness_p50_all"] = Estimate(150.0, 3.0, 3)  # 2 %
    r.metrics["staleness_p95_all"] = Estimate(290.0, math.nan, 1)  # no interval: not judged
    assert sequential.wide(r) == ["throughput_per_min"]
    assert sequential.wide(r, target=0.07) == []


def test_replications_are_added_until_most_and_the_first_runs_are_kept() -> None:
    s = _small()
    # A target nothing meets: every round adds STEP replications until ``most``.
    graded, rest = sequential.run([s], [], most=5, target=0.0, jobs=1, progress=False)
    assert rest == []
    r = graded[0]
    assert r.scenario.run.replications == 5
    assert r.metrics["throughput_per_min"].n == 5
    # The drain keeps its three replications.
    assert r.metrics["capacity_per_min"].n == 3
    # With ``most`` at the first round's count nothing is added.
    once, _ = sequential.run([s], [], most=3, target=0.0, jobs=1, progress=False)
    assert once[0].metrics["throughput_per_min"].n == 3
    # The runs kept: five replications asked after three run only the two new seeds, and
    # the first three are the same runs.
    memo: dict[str, RunMetrics] = {}
    steady = s.updated({"run.drain": False})
    three = run_raw([steady], jobs=1, progress=False, memo=memo)[0][0]
    assert len(memo) == 3
    more = steady.updated({"run.replications": 5})
    five = run_raw([more], jobs=1, progress=False, memo=memo)[0][0]
    assert len(memo) == 5
    assert [x.scalars for x in five[:3]] == [x.scalars for x in three]
    # ... and the sequential result's five are those five.
    assert r.get("throughput_per_min") == sum(x.scalars["throughput_per_min"] for x in five) / 5


def test_profile_key_ignores_what_a_profile_does_not_read() -> None:
    s = load_scenario("plan-b-1000")
    same = s.updated({"name": "other", "criteria.fresh_quantile": 0.99, "run.replications": 7})
    assert profiles.key(s) == profiles.key(same)
    assert profiles.key(s) != profiles.key(s.updated({"run.horizon_s": 3600.0}))
    p = profiles.profile(s)
    assert profiles.profile(same) is p
    assert p == job_profile(s)


def test_profiles_asked_ahead_are_computed_in_the_pool() -> None:
    s = _small()
    ahead = s.updated({"population.tenants": 70})
    profiles.store([])  # the cache is per process; this scenario's profile is not in it
    assert profiles.missing([ahead, ahead]) == [profiles.key(ahead)]
    run_many([s], jobs=2, progress=False, ahead=[ahead])
    assert profiles.missing([ahead]) == []
    assert profiles.profile(ahead) == job_profile(ahead)
