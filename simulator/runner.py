"""Running replications of many scenarios in parallel processes with a progress bar."""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import structlog
from tqdm import tqdm

from simulator.engine import Mode, Simulation
from simulator.metrics import RunMetrics
from simulator.population import Mailboxes
from simulator.results import ScenarioResult, combine
from simulator.scenario import Scenario

log = structlog.get_logger(__name__)


def seeds(base: int, n: int) -> list[int]:
    """Independent replication seeds derived from one scenario seed."""
    return [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(base).spawn(n)]


Task = tuple[dict[str, Any], int, Mode, dict[str, list[float]] | None]


def _one(task: Task) -> RunMetrics:
    data, seed, mode, boxes = task
    fixed = Mailboxes.from_lists(boxes) if boxes is not None else None
    return Simulation(Scenario.model_validate(data), seed, mode, fixed).run()


def default_jobs() -> int:
    """Worker processes: one per core."""
    return max(1, os.cpu_count() or 1)


def run_many(
    scenarios: Sequence[Scenario],
    jobs: int | None = None,
    progress: bool = True,
    desc: str = "simulating",
    mailboxes: Sequence[Mailboxes | None] | None = None,
) -> list[ScenarioResult]:
    """Every replication (steady and drain) of every scenario, spread over processes;
    ``mailboxes`` (one per scenario) fixes who a scenario's mailboxes are."""
    tasks: list[Task] = []
    owner: list[tuple[int, str]] = []
    # The same scenario (whatever its name), seed and mode runs once: a report asks for some
    # scenarios under several names.
    same: dict[str, int] = {}
    copies: list[tuple[int, int]] = []  # (owner index of a copy, index of the task it reuses)
    for i, s in enumerate(scenarios):
        data = s.model_dump(mode="json")
        fixed = mailboxes[i] if mailboxes is not None else None
        boxes = fixed.to_lists() if fixed is not None else None
        body = s.model_dump_json(exclude={"name", "description"}) if fixed is None else None
        for seed in seeds(s.run.seed, s.run.replications):
            modes: tuple[Mode, ...] = ("steady", "drain")
            for mode in modes:
                if not (s.run.steady if mode == "steady" else s.run.drain):
                    continue
                key = f"{body}|{seed}|{mode}"
                owner.append((i, mode))
                if body is not None and key in same:
                    copies.append((len(owner) - 1, same[key]))
                    continue
                same[key] = len(owner) - 1
                tasks.append((data, seed, mode, boxes))
    # Owner slots that run a task of their own, in task order.
    copied = {c for c, _ in copies}
    running = [j for j in range(len(owner)) if j not in copied]
    jobs = min(jobs or default_jobs(), len(tasks)) or 1
    log.info("simulate", scenarios=len(scenarios), runs=len(tasks), processes=jobs)
    bar = tqdm(total=len(tasks), desc=desc, disable=not progress, unit="run")
    results: list[RunMetrics | None] = [None] * len(tasks)
    # Large scenarios first so the pool does not end on one long straggler.
    order = sorted(
        range(len(tasks)), key=lambda i: -scenarios[owner[running[i]][0]].population.tenants
    )
    if jobs == 1:
        for i in order:
            results[i] = _one(tasks[i])
            bar.update()
    else:
        with mp.get_context("fork").Pool(jobs) as pool:
            it = pool.imap(_one, [tasks[i] for i in order], chunksize=1)
            for i, r in zip(order, it, strict=True):
                results[i] = r
                bar.update()
    bar.close()
    by_owner: list[RunMetrics | None] = [None] * len(owner)
    for t, j in enumerate(running):
        by_owner[j] = results[t]
    for c, src in copies:
        by_owner[c] = by_owner[src]
    results = by_owner
    out = []
    for i, s in enumerate(scenarios):
        steady = [r for r, o in zip(results, owner, strict=True) if o == (i, "steady") and r]
        drain = [r for r, o in zip(results, owner, strict=True) if o == (i, "drain") and r]
        out.append(combine(s, steady, drain))
    return out
