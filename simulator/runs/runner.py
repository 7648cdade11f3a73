"""Running replications of many scenarios in parallel processes with a progress bar."""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import structlog
from tqdm import tqdm

from simulator.fast import profiles as job_profiles
from simulator.inputs.population import Mailboxes
from simulator.inputs.scenario import Scenario
from simulator.model.engine import Mode, Simulation
from simulator.model.metrics import RunMetrics
from simulator.runs import run_cost
from simulator.runs.results import ScenarioResult, combine

log = structlog.get_logger(__name__)


def seeds(base: int, n: int) -> list[int]:
    """Independent replication seeds derived from one scenario seed."""
    return [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(base).spawn(n)]


Task = tuple[dict[str, Any], int, Mode, dict[str, list[float]] | None]


def _one(task: Task) -> RunMetrics:
    data, seed, mode, boxes = task
    fixed = Mailboxes.from_lists(boxes) if boxes is not None else None
    return Simulation(Scenario.model_validate(data), seed, mode, fixed).run()


def replication_seconds(s: Scenario) -> float:
    """Estimated seconds of one replication of ``s`` (``run_cost.estimate``'s rates)."""
    e = run_cost.estimate([s], jobs=1)
    return e.seconds / max(e.runs, 1)


def default_jobs() -> int:
    """Worker processes: one per core."""
    return max(1, os.cpu_count() or 1)


# Each scenario's steady and drain replications.
Runs = tuple[list[RunMetrics], list[RunMetrics]]


def run_many(
    scenarios: Sequence[Scenario],
    jobs: int | None = None,
    progress: bool = True,
    desc: str = "simulating",
    mailboxes: Sequence[Mailboxes | None] | None = None,
    ahead: Sequence[Scenario] = (),
) -> list[ScenarioResult]:
    """Every replication (steady and drain) of every scenario, spread over processes;
    ``mailboxes`` (one per scenario) fixes who a scenario's mailboxes are. The job profiles
    of ``ahead`` are computed in the same pool and kept by ``simulator.fast.profiles``."""
    runs = run_raw(scenarios, jobs, progress, desc, mailboxes, ahead)
    return [combine(s, steady, drain) for s, (steady, drain) in zip(scenarios, runs, strict=True)]


def task_key(s: Scenario, seed: int, mode: Mode) -> str:
    """What one run depends on: the same scenario (whatever its name or replication count),
    seed and mode give the same run."""
    body = s.model_dump_json(exclude={"name": True, "description": True, "run": {"replications"}})
    return f"{body}|{seed}|{mode}"


def run_raw(
    scenarios: Sequence[Scenario],
    jobs: int | None = None,
    progress: bool = True,
    desc: str = "simulating",
    mailboxes: Sequence[Mailboxes | None] | None = None,
    ahead: Sequence[Scenario] = (),
    memo: dict[str, RunMetrics] | None = None,
) -> list[Runs]:
    """``run_many``'s runs before they are combined. ``memo`` (kept by the caller) holds
    runs already done: a scenario asked for again with more replications runs only the new
    seeds (sequential stopping)."""
    tasks: list[Task] = []
    owner: list[tuple[int, str]] = []
    # The same scenario (whatever its name), seed and mode runs once: a report asks for some
    # scenarios under several names.
    same: dict[str, int] = {}
    copies: list[tuple[int, int]] = []  # (owner index of a copy, index of the task it reuses)
    known: list[tuple[int, RunMetrics]] = []  # (owner index, a run from ``memo``)
    keys: list[str] = []  # of each task, for ``memo``
    for i, s in enumerate(scenarios):
        data = s.model_dump(mode="json")
        fixed = mailboxes[i] if mailboxes is not None else None
        boxes = fixed.to_lists() if fixed is not None else None
        for seed in seeds(s.run.seed, s.run.replications):
            modes: tuple[Mode, ...] = ("steady", "drain")
            for mode in modes:
                if not (s.run.steady if mode == "steady" else s.run.drain):
                    continue
                key = task_key(s, seed, mode) if fixed is None else ""
                owner.append((i, mode))
                if key and memo is not None and key in memo:
                    known.append((len(owner) - 1, memo[key]))
                    continue
                if key and key in same:
                    copies.append((len(owner) - 1, same[key]))
                    continue
                if key:
                    same[key] = len(owner) - 1
                tasks.append((data, seed, mode, boxes))
                keys.append(key)
    # Owner slots that run a task of their own, in task order.
    skip = {c for c, _ in copies} | {k for k, _ in known}
    running = [j for j in range(len(owner)) if j not in skip]
    jobs = min(jobs or default_jobs(), len(tasks)) or 1
    log.info("simulate", scenarios=len(scenarios), runs=len(tasks), processes=jobs)
    bar = tqdm(total=len(tasks), desc=desc, disable=not progress, unit="run")
    results: list[RunMetrics | None] = [None] * len(tasks)
    # Longest runs first (by the cost estimate of ``run_cost``), so that the pool does not
    # end on one long straggler while the other cores idle.
    cost = [replication_seconds(s) for s in scenarios]
    order = sorted(range(len(tasks)), key=lambda i: -cost[owner[running[i]][0]])
    todo = job_profiles.missing(ahead)
    if jobs == 1 or not tasks:
        for i in order:
            results[i] = _one(tasks[i])
            bar.update()
        job_profiles.store(job_profiles.compute(k) for k in todo)
    else:
        with mp.get_context("fork").Pool(jobs) as pool:
            it = pool.imap(_one, [tasks[i] for i in order], chunksize=1)
            # Queued behind every simulation: the profiles fill the cores the last (longest
            # remaining) simulations leave idle.
            side = pool.map_async(job_profiles.compute, todo, chunksize=1)
            for i, r in zip(order, it, strict=True):
                results[i] = r
                bar.update()
            job_profiles.store(side.get())
    bar.close()
    by_owner: list[RunMetrics | None] = [None] * len(owner)
    for t, j in enumerate(running):
        got = by_owner[j] = results[t]
        if memo is not None and keys[t] and got is not None:
            memo[keys[t]] = got
    for j, r in known:
        by_owner[j] = r
    for c, src in copies:
        by_owner[c] = by_owner[src]
    out: list[Runs] = [([], []) for _ in scenarios]
    for run, (i, kind) in zip(by_owner, owner, strict=True):
        if run is not None:
            out[i][0 if kind == "steady" else 1].append(run)
    return out
