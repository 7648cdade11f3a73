"""Replications until the confidence intervals are narrow enough (sequential stopping).

A scenario's steady run starts with a few replications of a short horizon; where the 95 %
confidence interval of a figure the report judges is still wider than ``TARGET`` of its mean,
``STEP`` more replications are run (the ones done are kept, ``runner.run_raw``'s memo) until
it is not, or until ``MOST``. Small scenarios, whose figures vary most between
replications, get more of them; large ones (5,000 tenants average over five times the
mailboxes) stop at the first round instead of simulating hours their intervals do not need.
The drain runs (every mailbox due at once) are replicated as given: they end when every
mailbox has synced once, and their figures are read then, not over the horizon.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from simulator.inputs.scenario import Scenario
from simulator.model.metrics import RunMetrics
from simulator.runs.results import REL_TOL, ScenarioResult, combine
from simulator.runs.runner import run_raw

# The steady figures the report's verdicts and the fast-path check read, and how narrow
# their intervals must be: the fast-path check's tolerance, so that they resolve it.
FIGURES = ("throughput_per_min", "staleness_p50_all", "staleness_p95_all")
TARGET = REL_TOL
STEP = 2
MOST = 7


def wide(r: ScenarioResult, figures: Sequence[str] = FIGURES, target: float = TARGET) -> list[str]:
    """The figures whose confidence interval is wider than ``target`` of their mean."""
    out = []
    for k in figures:
        e = r.metrics.get(k)
        if e is None or math.isnan(e.mean) or math.isnan(e.half):
            continue
        if e.half > target * abs(e.mean):
            out.append(k)
    return out


def run(
    scenarios: Sequence[Scenario],
    others: Sequence[Scenario] = (),
    most: int = MOST,
    target: float = TARGET,
    jobs: int | None = None,
    progress: bool = True,
    ahead: Sequence[Scenario] = (),
) -> tuple[list[ScenarioResult], list[ScenarioResult]]:
    """``scenarios`` with sequential stopping (at most ``most`` replications, intervals
    within ``target`` of the mean; only their steady runs get more), and ``others`` as they
    are (``runner.run_many``), all in the first pool."""
    steady: list[Scenario | None] = [
        s.updated({"run.drain": False}) if s.run.steady else None for s in scenarios
    ]
    drain: list[Scenario | None] = [
        s.updated({"run.steady": False}) if s.run.drain else None for s in scenarios
    ]
    first = [s for s in (*steady, *drain) if s is not None]
    memo: dict[str, RunMetrics] = {}
    raw = run_raw([*first, *others], jobs, progress, ahead=ahead, memo=memo)
    it = iter(raw)
    st = [next(it)[0] if s is not None else [] for s in steady]
    dr = [next(it)[1] if s is not None else [] for s in drain]
    rest = [combine(s, a, b) for s, (a, b) in zip(others, it, strict=True)]

    def result(i: int) -> ScenarioResult:
        s = scenarios[i]
        if steady[i] is not None:
            s = s.updated({"run.replications": len(st[i])})
        return combine(s, st[i], dr[i])

    results = [result(i) for i in range(len(scenarios))]
    while True:
        more = [
            i
            for i, r in enumerate(results)
            if (s := steady[i]) is not None and s.run.replications < most and wide(r, target=target)
        ]
        if not more:
            return results, rest
        for i in more:
            if (s := steady[i]) is not None:
                steady[i] = s.updated({"run.replications": min(most, s.run.replications + STEP)})
        again = run_raw(
            [s for i in more if (s := steady[i]) is not None],
            jobs,
            progress,
            desc="narrowing intervals",
            memo=memo,
        )
        for i, (a, _) in zip(more, again, strict=True):
            st[i] = a
            results[i] = result(i)
