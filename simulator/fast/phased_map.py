"""The release cycle of several schedulers, simulated where the fast path's even batches
miss it (one scheduler: ``cycle_map``).

Each run of the daemon draws its schedulers' phases. Where two releases fall closer together
than a job lasts, the second finds the workers busy with the first's batch; its jobs start
late, fall due again after the next release and join that one's batch, and a run settles
into a pattern of large batches and long waits, where with even phases the batches even out
and jobs hardly wait (``benchmarks/sim_cycles.py`` prints each run's gaps and wait). The
mean over runs follows the few close-phased ones, so the fast path's even batches give the
even-phased runs' figure, not the mean.

This runs that cycle directly over seeded paths, each with its own phases (a scrambled Sobol
set for the schedulers after the first, which sits at 0: a run's figures do not change when
all phases shift together):

- the workers as one first-in, first-out pool of ``c``: each job, in the order it was
  queued, to the first worker free, from its batch's dispatch on;
- a claimed job's time drawn from the profile's sampled incremental syncs, or a full sync's
  first chunk; its chunks as chains of sampled worker times and quota pauses, queued again
  when the pause ends;
- each started job's mailbox due again one interval after its start, claimed by the first
  release after that (a job that starts within the releases' lateness stays with its own),
  at most the profile's batch size a release (the rest by the next).

Replaying a recorded run's own phases (``phases``) it gives that run's wait: on plan-c-5000
with 2 s jobs, twelve runs whose waits span 0.01 to 0.9 s, 0.321 s on average against the
runs' 0.282 s, those above 0.3 s within 30 % (``benchmarks/sim_cycles.py --phased``;
``tests/simulator/checks/test_phased_map.py``). Its mean over drawn phases is what the fast
path takes for a run of several schedulers (``cycle_map.refine``, ``FAST_PATHS`` paths: 2 to
10 s a configuration, so not in sweeps), 1.2 to 1.5 times the event model's mean over 96
runs on plan-c-5000 (``docs/simulator.md``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.stats import qmc

if TYPE_CHECKING:
    from simulator.fast.config import Config, Settled

Arr = np.ndarray

# Chains a path holds at once (full syncs in flight; more are left out).
CHAINS = 96
# Paths by default, and in the fast path (a power of two keeps the Sobol phases balanced).
PATHS = 64
FAST_PATHS = 32
# Chunks that may come back between two releases on one path, at most.
ROUNDS = 64


@dataclass(frozen=True)
class ReleaseInputs:
    """What both release-cycle maps take besides the configuration: a full sync's chunks
    (sampled worker times and quota pauses, jobs per full sync) and the release's timing
    (seconds)."""

    workers: int
    period: float
    chunk_runs: tuple[float, ...]
    chunk_pauses: tuple[float, ...]
    jobs_per_full: tuple[float, ...]
    overshoot_s: float  # mean lateness per release
    dispatch_s: float
    enqueue_s: float  # per job of a batch
    horizon_s: float
    warmup_s: float


@dataclass(frozen=True)
class PhasedInputs(ReleaseInputs):
    """One configuration with ``schedulers`` schedulers."""

    mailboxes: float
    schedulers: int
    interval: float  # a whole number of periods
    job_times: tuple[float, ...]  # sampled incremental job times, at the configuration's mean
    full_share: float  # claimed jobs that are full syncs
    batch_size: int = 1 << 30  # a release claims at most this many; the rest stay due


@dataclass(frozen=True)
class PhasedFigures:
    """Means over the paths (each path one run's phases) after the warm-up."""

    scheduled_wait_s: float  # a claimed job's queue wait, dispatch included
    chunk_wait_s: float  # a full sync's later chunk's
    batch_mean: float
    dispersion: float  # the batches' variance / mean
    path_waits: tuple[float, ...]  # per path, every job's mean wait


class _Paths:
    """The paths' release instants within one interval and where a start falls due."""

    def __init__(self, inp: PhasedInputs, paths: int, seed: int, phases: Arr | None) -> None:
        k, period = inp.schedulers, inp.period
        self.slots = max(round(inp.interval / period), 1)
        self.interval = self.slots * period
        if phases is not None:
            ph = np.broadcast_to(np.asarray(phases, dtype=float) % period, (paths, k))
        elif k > 1:
            sob = qmc.Sobol(d=k - 1, scramble=True, seed=seed).random(paths)
            ph = np.concatenate([np.zeros((paths, 1)), sob * period], axis=1)
        else:
            ph = np.zeros((paths, 1))
        per = (ph[:, :, None] + np.arange(self.slots)[None, None, :] * period).reshape(paths, -1)
        self.offsets = np.sort(per, axis=1)  # (paths, R) within [0, interval)
        self.releases = self.offsets.shape[1]
        self.gaps = np.diff(self.offsets, axis=1, append=self.offsets[:, :1] + self.interval)
        shift = np.arange(paths)[:, None] * 2 * self.interval
        self._flat = (self.offsets + shift).ravel()
        self._shift = shift[:, 0]

    def step_at_or_after_all(self, x: Arr) -> Arr:
        """Per path (rows of ``x``), the index counted from the run's start of the first
        release at or after each time of ``x``."""
        cyc = np.floor(x / self.interval)
        rel = x - cyc * self.interval
        r = self.releases
        rows = np.arange(x.shape[0])[:, None]
        j = np.searchsorted(self._flat, rel + self._shift[:, None], side="left") - rows * r
        wrap = j >= r
        return np.asarray((cyc + wrap) * r + np.where(wrap, 0, j), dtype=np.int64)


def simulate_phased(
    inp: PhasedInputs, paths: int = PATHS, seed: int = 3, phases: Arr | None = None
) -> PhasedFigures:
    """Run ``paths`` seeded paths over the scenario's horizon, each with its own phases, or
    all with ``phases`` (one per scheduler, seconds: a recorded run's)."""
    rng = np.random.default_rng(seed)
    pp, c = paths, max(inp.workers, 1)
    ring = _Paths(inp, pp, seed, phases)
    big_r, period_i = ring.releases, ring.interval
    span = 2 * big_r + 4  # claims ahead: a job starts within an interval of its release
    rows = np.arange(pp)
    durs = np.asarray(inp.job_times or (1.0,), dtype=float)
    chained = bool(inp.chunk_runs) and inp.full_share > 0
    runs = np.asarray(inp.chunk_runs or (0.0,), dtype=float)
    pauses = np.asarray(inp.chunk_pauses or (0.0,), dtype=float)
    jobs = np.asarray(inp.jobs_per_full or (1.0,), dtype=float)
    due = np.zeros((pp, span))
    before = np.roll(ring.gaps, 1, axis=1)  # the gap ahead of each release
    due[:, :big_r] = rng.poisson(inp.mailboxes * before / period_i)
    free = np.zeros((pp, c))  # when each worker is next free
    back = np.full((pp, CHAINS), np.inf)  # when each chain's next chunk is queued
    left = np.zeros((pp, CHAINS))
    acc = {k: np.zeros(pp) for k in ("sw", "sn", "cw", "cn")}
    batches: list[Arr] = []
    for n in range(int(inp.horizon_s / period_i * big_r)):
        cyc, r = divmod(n, big_r)
        t = cyc * period_i + ring.offsets[:, r]
        counting = t >= inp.warmup_s
        chunk = _Chunks(free, back, left, rows, runs, pauses, rng, inp.dispatch_s)
        cw, cn = chunk.until(t)
        acc["cw"] += np.where(counting, cw, 0.0)
        acc["cn"] += np.where(counting, cn, 0.0)
        b = np.minimum(due[:, n % span], inp.batch_size)
        # Due mailboxes past the batch size stay due: the next release claims them.
        due[:, (n + 1) % span] += due[:, n % span] - b
        due[:, n % span] = 0.0
        if counting.all():
            batches.append(b)
        ready = t + inp.dispatch_s + inp.enqueue_s * b
        tol = rng.gamma(ring.slots, inp.overshoot_s, pp) if inp.overshoot_s > 0 else 0.0
        nb = int(b.max(initial=0))
        if nb == 0:
            continue
        d = durs[rng.integers(0, durs.size, (pp, nb))]
        full = rng.random((pp, nb)) < (inp.full_share if chained else 0.0)
        if full.any():
            # A full sync's first chunk runs its chunk's time.
            d = np.where(full, runs[rng.integers(0, runs.size, (pp, nb))], d)
        starts = _drain(free, b, ready, d, rows)
        on = np.arange(nb)[None, :] < b[:, None]
        waited = np.where(on, starts - t[:, None], 0.0)
        acc["sw"] += np.where(counting, waited.sum(axis=1), 0.0)
        acc["sn"] += np.where(counting, b, 0.0)
        # Each mailbox: due an interval after its start, at the first release after it.
        x = np.where(on, starts - np.asarray(tol).reshape(-1, 1) * np.ones((1, nb)), t[:, None])
        step = np.maximum(ring.step_at_or_after_all(x), n)
        claim = (step + big_r) % span
        pr = np.broadcast_to(rows[:, None], on.shape)
        np.add.at(due, (pr[on], claim[on]), 1.0)
        for i in np.flatnonzero((full & on).any(axis=0)):
            _start_chain(
                back, left, full[:, i] & on[:, i], starts[:, i] + d[:, i], pauses, jobs, rng
            )
    return _figures(acc, batches)


def _drain(free: Arr, b: Arr, ready: Arr, d: Arr, rows: Arr) -> Arr:
    """Start a batch of ``b`` jobs (per path) of times ``d`` queued at ``ready`` on the
    workers free at ``free`` (updated), first in first out, each on the first worker free;
    the start times (paths x jobs)."""
    nb = d.shape[1]
    # The workers already free start the first jobs together at the dispatch.
    idle = free <= ready[:, None]
    rank = np.cumsum(idle, axis=1)
    take = idle & (rank <= b[:, None])
    job = np.where(take, rank - 1, 0)
    free[take] = (ready[:, None] + np.take_along_axis(d, job, axis=1))[take]
    first = np.minimum(idle.sum(axis=1), b).astype(int)
    starts = np.where(np.arange(nb)[None, :] < first[:, None], ready[:, None], 0.0)
    # The rest one by one, each on the first worker that frees.
    for i in range(int(first.min(initial=0)), nb):
        on = (i >= first) & (i < b)
        if not on.any():
            continue
        w = free.argmin(axis=1)
        st = np.maximum(free[rows, w], ready)
        free[rows, w] = np.where(on, st + d[:, i], free[rows, w])
        starts[:, i] = np.where(on, st, starts[:, i])
    return starts


class _Chunks:
    """A path's chains' chunks that come back before a time, started in the order they come
    back on the first worker free."""

    def __init__(
        self, free: Arr, back: Arr, left: Arr, rows: Arr, runs: Arr, pauses: Arr,
        rng: np.random.Generator, dispatch_s: float,
    ) -> None:  # fmt: skip
        self.free, self.back, self.left, self.rows = free, back, left, rows
        self.runs, self.pauses, self.rng, self.dispatch_s = runs, pauses, rng, dispatch_s

    def until(self, t: Arr) -> tuple[Arr, Arr]:
        """Start every chunk queued before ``t`` (per path); their waits' sum and count."""
        free, back, left, rows = self.free, self.back, self.left, self.rows
        wait, count = np.zeros(rows.size), np.zeros(rows.size)
        for _ in range(ROUNDS):
            due = back < t[:, None]
            on = due.any(axis=1)
            if not on.any():
                break
            j = np.where(due, back, np.inf).argmin(axis=1)
            at = np.where(on, back[rows, j], 0.0)
            w = free.argmin(axis=1)
            st = np.maximum(free[rows, w], at + self.dispatch_s)
            pick = self.rng.integers(0, self.runs.size, rows.size)
            end = st + self.runs[pick]
            free[rows, w] = np.where(on, end, free[rows, w])
            wait += np.where(on, st - at, 0.0)
            count += on
            left[rows, j] -= on
            nxt = np.where(left[rows, j] <= 0, np.inf, end + self.pauses[pick])
            back[rows, j] = np.where(on, nxt, back[rows, j])
        return wait, count


def _start_chain(
    back: Arr, left: Arr, new: Arr, end: Arr, pauses: Arr, jobs: Arr, rng: np.random.Generator
) -> None:
    """A full sync's first chunk ends at ``end`` on the paths ``new``: its chain's next chunk
    is queued after a quota pause (a place in the chain table, if one is free)."""
    idle = ~np.isfinite(back)
    i = np.flatnonzero(new & idle.any(axis=1))
    if i.size == 0:
        return
    place = idle[i].argmax(axis=1)
    more = jobs[rng.integers(0, jobs.size, i.size)] - 1
    pause = pauses[rng.integers(0, pauses.size, i.size)]
    left[i, place] = more
    back[i, place] = np.where(more > 0, end[i] + pause, np.inf)


def _figures(acc: dict[str, Arr], batches: list[Arr]) -> PhasedFigures:
    sn, cn = np.maximum(acc["sn"], 1.0), np.maximum(acc["cn"], 1.0)
    every = (acc["sw"] + acc["cw"]) / np.maximum(acc["sn"] + acc["cn"], 1.0)
    b = np.concatenate(batches) if batches else np.zeros(1)
    return PhasedFigures(
        scheduled_wait_s=float(np.mean(acc["sw"] / sn)),
        chunk_wait_s=float(np.mean(acc["cw"] / cn)) if acc["cn"].sum() else 0.0,
        batch_mean=float(b.mean()),
        dispersion=float(b.var() / max(b.mean(), 1e-12)),
        path_waits=tuple(float(x) for x in every),
    )


def value_at(cfg: Config, st: Settled, at: tuple[int, ...]) -> Callable[[Arr | float], float]:
    """Reads one configuration's value (index ``at`` of the grid) from an array of it."""
    shape = np.broadcast(cfg.n, cfg.mean_i, cfg.c, cfg.k, st.lam, st.s_inc).shape

    def one(x: Arr | float) -> float:
        return float(np.broadcast_to(np.asarray(x, dtype=float), shape)[at])

    return one


def release_fields(cfg: Config, workers: int) -> dict[str, Any]:
    """``ReleaseInputs``' fields for a configuration of ``cfg``'s scenario with ``workers``
    serving workers: the profile's chunks and the scenario's release timing and run."""
    s, p = cfg.s, cfg.p
    r = s.resources
    return {
        "workers": workers,
        "period": s.profile().scheduler_interval_s,
        "chunk_runs": p.chunk_runs,
        "chunk_pauses": p.chunk_pauses,
        "jobs_per_full": p.jobs_per_full,
        "overshoot_s": r.scheduler_overshoot_ms / 1000,
        "dispatch_s": r.dispatch_ms / 1000,
        "enqueue_s": r.enqueue_ms_per_job / 1000,
        "horizon_s": s.run.horizon_s,
        "warmup_s": s.run.warmup_s,
    }


def phased_inputs_at(cfg: Config, st: Settled, at: tuple[int, ...]) -> PhasedInputs:
    """The inputs for the configuration at index ``at`` of the grid (its job times scaled to
    the configuration's mean, which adds connection set-up and token requests)."""
    one = value_at(cfg, st, at)
    p = cfg.p
    times = np.asarray(p.job_times or (p.s_inc,), dtype=float)
    scale = one(st.s_inc) / max(float(times.mean()), 1e-12)
    return PhasedInputs(
        **release_fields(cfg, int(one(cfg.c))),
        mailboxes=one(cfg.n),
        schedulers=int(one(cfg.k)),
        interval=one(cfg.mean_i),
        job_times=tuple(float(x) for x in times * scale),
        full_share=p.full_share,
        batch_size=cfg.s.profile().batch_size,
    )


@functools.lru_cache(maxsize=256)
def figures(inp: PhasedInputs) -> PhasedFigures:
    """``simulate_phased`` with ``FAST_PATHS`` paths, once per process and inputs."""
    return simulate_phased(inp, FAST_PATHS)
