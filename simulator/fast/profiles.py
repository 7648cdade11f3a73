"""``analytic.job_profile`` memoised per process, and computed ahead in worker processes.

A job profile samples 2,000 syncs (a second or two of CPU), and the report asks for the same
scenarios' profiles in several sections (claims, freshness, scaling, the fast path against
the event simulation). The key leaves out what a profile does not read: the scenario's name,
description, success criteria (the sections change ``criteria.fresh_quantile``) and
replication count.
``runner.run_many`` computes the profiles a report will need in its worker pool, behind the
simulations, where they fill the cores the last simulations leave idle.
"""

from __future__ import annotations

from collections.abc import Iterable

from simulator.fast.analytic import JobProfile, job_profile
from simulator.inputs.scenario import Scenario

_CACHE: dict[str, JobProfile] = {}
# More distinct profiles than a report needs (about a dozen): past it the cache starts over.
MAX_CACHED = 256


def key(s: Scenario) -> str:
    """What a job profile depends on: everything but the name, description, criteria and
    replication count."""
    return s.model_dump_json(
        exclude={"name": True, "description": True, "criteria": True, "run": {"replications"}}
    )


def compute(data: str) -> tuple[str, JobProfile]:
    """The profile of a scenario given by its ``key`` (a worker process's task)."""
    return data, job_profile(Scenario.model_validate_json(data))


def store(pairs: Iterable[tuple[str, JobProfile]]) -> None:
    """Keep profiles computed elsewhere (``compute``'s results)."""
    for k, p in pairs:
        if len(_CACHE) >= MAX_CACHED:
            _CACHE.clear()
        _CACHE[k] = p


def missing(scenarios: Iterable[Scenario]) -> list[str]:
    """Keys of the scenarios whose profile is not cached yet, each once."""
    out: list[str] = []
    for s in scenarios:
        k = key(s)
        if k not in _CACHE and k not in out:
            out.append(k)
    return out


def profile(s: Scenario) -> JobProfile:
    """``job_profile(s)``, computed once per process and key."""
    k = key(s)
    got = _CACHE.get(k)
    if got is None:
        store([compute(k)])
        got = _CACHE[k]
    return got
