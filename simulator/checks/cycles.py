"""What the scheduler's releases meet in the event model: the batches, the workers other jobs
hold at each release and for how long, the drain's end and each kind of job's wait.

The fast path's mean queue wait rests on exactly these (``fast.drain.batch_wait``), so they
are recorded around seeded runs to check it piece by piece. The recording wraps the model's
start, end and cycle callbacks on one ``Simulation`` (the plain model: compiled classes keep
their methods), and changes no draw: a recorded run gives the figures an unrecorded one does.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from simulator.compiled import is_compiled
from simulator.inputs.scenario import Scenario
from simulator.model.engine import Simulation
from simulator.model.metrics import RunMetrics

if TYPE_CHECKING:
    from simulator.model.job import Job

# What a started job is: a scheduled sync (enqueued by a release), a later chunk of a
# quota-chunked full sync (enqueued when its quota is back) or a push sync.
JOB_KINDS = ("scheduled", "chunk", "push")


@dataclass
class Cycles:
    """What one or more runs met after their warm-up."""

    batches: list[int] = field(default_factory=list)
    # Per release, the workers busy with each kind of job just before the batch joins.
    held: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    # Seconds a job busy at a release still ran after it, by kind.
    residual: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    # Per release, seconds from it to the start of its batch's last job.
    drain_end: list[float] = field(default_factory=list)
    # Queue waits (enqueue to start, the dispatch included, as the model's metrics count).
    waits: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    busy_s: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    window_s: float = 0.0
    # Within each run, consecutive releases: (batch, next batch) and (this drain's end,
    # chunks busy at the next release), the feedback the batches' spread comes from.
    batch_pairs: list[tuple[int, int]] = field(default_factory=list)
    after_drain: list[tuple[float, int]] = field(default_factory=list)
    # Per run, its schedulers' gaps (seconds from each release to the next scheduler's, in
    # the order of the cycle) and its mean wait of high-queue jobs, as its metrics give it.
    runs: list[tuple[tuple[float, ...], float]] = field(default_factory=list)

    def batch_mean(self) -> float:
        """Mean jobs a release hands the workers."""
        return float(np.mean(self.batches))

    def batch_dispersion(self) -> float:
        """The batches' variance over their mean (1 for Poisson counts)."""
        b = np.asarray(self.batches, dtype=float)
        return float(b.var() / max(b.mean(), 1e-12))

    def batch_lag_correlation(self) -> float:
        """Correlation of a release's batch with the next one's (nan with fewer than 3)."""
        if len(self.batch_pairs) < 3:
            return float("nan")
        a = np.asarray(self.batch_pairs, dtype=float)
        return float(np.corrcoef(a[:, 0], a[:, 1])[0, 1])

    def held_after(self, edges: list[float]) -> list[tuple[float, float, int, float]]:
        """Chunks busy at a release by the previous drain's end in ``edges``' bins: (low,
        high, releases, mean chunks), bins with at least 30 releases."""
        a = np.asarray(self.after_drain, dtype=float).reshape(-1, 2)
        out = []
        for lo, hi in itertools.pairwise(edges):
            sel = (a[:, 0] >= lo) & (a[:, 0] < hi)
            if sel.sum() >= 30:
                out.append((lo, hi, int(sel.sum()), float(a[sel, 1].mean())))
        return out

    def held_mean(self, kind: str) -> float:
        """Mean workers busy with ``kind`` jobs at a release."""
        return float(np.mean(self.held[kind])) if self.held[kind] else 0.0

    def residual_mean(self, kind: str) -> float:
        """Mean seconds those jobs still ran after the release."""
        return float(np.mean(self.residual[kind])) if self.residual[kind] else 0.0

    def time_average(self, kind: str) -> float:
        """Workers busy with ``kind`` jobs on average over the window."""
        return self.busy_s[kind] / self.window_s if self.window_s else 0.0

    def wait_mean(self, kind: str) -> float:
        """Mean queue wait of ``kind`` jobs (nan without any)."""
        return float(np.mean(self.waits[kind])) if self.waits[kind] else float("nan")


def record_cycles(s: Scenario, seed: int, into: Cycles) -> RunMetrics:
    """Run ``s`` once in the steady state with its callbacks wrapped to fill ``into``; the
    run's figures."""
    if is_compiled():
        raise RuntimeError("recording cycles needs the plain event model (not build/compiled)")
    sim = Simulation(s, seed, "steady")
    warm = sim.rec.warm
    releases: set[float] = set()
    last_start: dict[float, float] = {}
    running: dict[int, tuple[str, float]] = {}  # job -> (kind, start)
    busy_at: dict[int, float] = {}  # job -> the last release it was running at
    paused: set[int] = set()
    cycle, on_start = sim.rec.cycle, sim.workers._on_start

    def on_cycle(now: float, claimed: int) -> None:
        if now >= warm:
            into.batches.append(claimed)
            held = dict.fromkeys(JOB_KINDS, 0)
            for j, (k, _t) in running.items():
                held[k] += 1
                busy_at[j] = now
            for k in JOB_KINDS:
                into.held[k].append(held[k])
        releases.add(now)
        cycle(now, claimed)

    def start(job: Job, now: float, wait: float, pool: int) -> None:
        k = "scheduled" if job.enq in releases else "chunk" if id(job) in paused else "push"
        # A free worker takes a job once its enqueue is done (``JobLife._start``).
        at = max(now, job.ready)
        running[id(job)] = (k, at)
        if at >= warm:
            into.waits[k].append(at - job.enq)
        if k == "scheduled":
            last_start[job.enq] = at
        on_start(job, now, wait, pool)

    def ended(pause: bool) -> tuple[Callable[[Job], None]]:
        then = sim._pause if pause else sim._finish

        def end(job: Job) -> None:
            now = sim.env.now
            k, at = running.pop(id(job))
            into.busy_s[k] += max(0.0, now - max(at, warm))
            r = busy_at.pop(id(job), None)
            if r is not None and r >= at:
                into.residual[k].append(now - r)
            if pause:
                paused.add(id(job))
            else:
                paused.discard(id(job))
            then(job)

        return (end,)

    # Instance attributes over the model's own: only this run records.
    sim.rec.cycle = on_cycle  # type: ignore[method-assign]  # wrapped, then called
    sim.workers._on_start = start
    sim._on_end, sim._on_pause = ended(False), ended(True)
    first = len(into.batches)
    out = sim.run()
    period = sim.profile.scheduler_interval_s
    ph = sorted(sim.phases)
    gaps = tuple(b - a for a, b in itertools.pairwise([*ph, ph[0] + period]))
    into.runs.append((gaps, out.scalars.get("wait_mean_high", float("nan"))))
    into.window_s += sim.env.now - warm
    ends = [t - r for r, t in last_start.items() if r >= warm]
    into.drain_end += ends
    mine, chunks = into.batches[first:], into.held["chunk"][first:]
    into.batch_pairs += list(itertools.pairwise(mine))
    if len(ends) == len(mine):
        into.after_drain += list(zip(ends[:-1], chunks[1:], strict=True))
    return out
