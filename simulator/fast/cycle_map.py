"""The scheduler's release cycle reduced to what the fast path's drain needs from it.

``drain.batch_wait`` gives the event model's scheduled wait within 1 % once it is told the
batches' mean and variance and the workers a release finds busy with a full sync's chunks
(``tests/simulator/checks/test_cycles.py``). With fewer workers than the batch neither is
a time average: a job that starts later than the scheduler's lateness falls due after its
slot's next claim and moves to the next slot, so the excesses walk round the interval's
slots, driven by the free workers at each release; and the chunks that come back during a
drain start together when it ends, so whether they still run at the next release depends
on that drain's end. This simulates exactly that, and nothing else, over seeded paths:

- a ring of the interval's slots, each holding the mailboxes its release claims; a release
  keeps in its slot the jobs that start within the lateness the interval's releases add up
  to and passes the rest to the next slot;
- a drain per release from the renewal curve of the sampled job times (``drain.renewal``):
  the free workers start at the dispatch, each busy one when its chunk ends; its end D is
  the batch's last start;
- a full sync's chunks as chains of the sampled worker times and quota pauses, started at a
  release's drain and queued behind the batch (first in, first out) when they come back
  during one.

Where the closed forms are known to miss it (``in_regime``: one scheduler, an interval of
whole periods, no push, quota-chunked full syncs and a mean batch of at least the serving
workers), ``analytic.settle`` asks it, for what a run of the scenario measures
(``run_window``), for the batches' spread, the chunks a release finds busy with their time
left, and the chunks' queue wait (``refine``; with several schedulers ``refine`` asks
``phased_map`` for the waits instead). A configuration costs about a second with 32
paths (seeded, so the same configuration gives the same figures), where the closed forms
evaluate thousands in that time: it serves a scenario's own configuration, not sweeps.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from simulator.fast import drain, phased_map
from simulator.fast.config import Refined
from simulator.fast.job_profile import JobProfile
from simulator.fast.phased_map import ReleaseInputs, release_fields, value_at

if TYPE_CHECKING:
    from simulator.fast.config import Config, Settled

Arr = np.ndarray

# Chains a path holds at once (full syncs in flight; more wait for a free place).
CHAINS = 48
# Time step of a drain's start curve, in mean job times.
STEP = 1 / 40
# A chain's chunks that start within one release cycle, at most.
ROUNDS = 8
# Paths per configuration and their seed in ``refine``: the mean wait's spread from seed to
# seed is 1-2 % with 32 (0.6-1.7 s a configuration on the plan-b presets).
PATHS = 32
SEED = 3


@dataclass(frozen=True)
class CycleInputs(ReleaseInputs):
    """One configuration with one scheduler."""

    per_slot: float  # mailboxes per slot: the configuration's mailboxes / slots
    slots: int  # the interval's releases
    job_s: float  # mean incremental job time
    renewal_mean: tuple[float, ...]  # on ``drain.GRID``
    full_rate: float  # full syncs started per second


@dataclass(frozen=True)
class CycleFigures:
    """What the releases after the warm-up met, over all paths."""

    batch_mean: float
    dispersion: float  # the batches' variance / mean
    held_mean: float  # workers busy with chunks at a release
    held_var: float
    residual_s: float  # how long those chunks still ran
    drain_end_mean: float  # the batch's last start after its release
    drain_end_sd: float
    chunk_wait_s: float  # mean queue wait of a chunk (dispatch included)


def in_regime(cfg: Config, st: Settled) -> Arr:
    """Configurations whose drain the closed forms get wrong, at a whole-period interval
    without push (pushes come between the releases, which neither map models): one
    scheduler releasing onto fewer workers than its mean batch, with full syncs' chunks
    that come back during the drains (the batches walk round the interval's slots: this
    map); several schedulers whose releases together outnumber the workers (close phases
    let one release meet the workers busy with the one before: ``phased_map``)."""
    p = cfg.p
    period = cfg.s.profile().scheduler_interval_s
    chained = bool(p.chunk_runs) and p.full_share > 0
    m = st.lam * period / cfg.k
    base = (cfg.locked > 0) & st.stable & (st.lam_p <= 0)
    one = (cfg.k == 1) & (m >= cfg.c) & chained
    several = (cfg.k > 1) & (st.lam * period >= cfg.c)
    return np.asarray(base & (one | several), dtype=bool)


def cycle_inputs_at(cfg: Config, st: Settled, at: tuple[int, ...]) -> CycleInputs:
    """The map's inputs for the configuration at index ``at`` of the grid."""
    one = value_at(cfg, st, at)
    slots = max(round(one(cfg.mean_i) / cfg.s.profile().scheduler_interval_s), 1)
    return CycleInputs(
        **release_fields(cfg, int(one(cfg.c))),
        per_slot=one(cfg.n) / slots,
        slots=slots,
        job_s=one(st.s_inc),
        renewal_mean=cfg.p.renewal_mean,
        full_rate=one(st.lam) * cfg.p.full_share,
    )


@functools.lru_cache(maxsize=256)
def figures(inp: CycleInputs) -> CycleFigures:
    """``simulate_cycles`` with ``PATHS`` paths and ``SEED``, once per process and inputs
    (a check settles the same scenario several times)."""
    return simulate_cycles(inp, PATHS, SEED)


def refine(cfg: Config, st: Settled) -> Refined | None:
    """The maps' figures for every configuration ``in_regime`` (None if there is none): this
    map's drain inputs with one scheduler, the phased map's waits with several."""
    on = in_regime(cfg, st)
    if not on.any():
        return None
    keys = ("dispersion", "held", "back_s", "wait", "sched")
    out = {k: np.full(on.shape, np.nan) for k in keys}
    k = np.broadcast_to(np.asarray(cfg.k, dtype=float), on.shape)
    for at in zip(*np.nonzero(on), strict=True):
        idx = tuple(int(i) for i in at)
        if k[idx] > 1:
            ph = phased_map.phased_inputs_at(cfg, st, idx)
            g = phased_map.figures(ph)
            out["sched"][idx] = g.scheduled_wait_s
            out["wait"][idx] = max(g.chunk_wait_s - ph.dispatch_s, 0.0)
            continue
        inp = cycle_inputs_at(cfg, st, idx)
        f = figures(inp)
        out["dispersion"][idx] = f.dispersion
        out["held"][idx] = f.held_mean
        out["back_s"][idx] = f.residual_s
        out["wait"][idx] = max(f.chunk_wait_s - inp.dispatch_s, 0.0)
    return Refined(on, *(out[k] for k in keys))


def refined_wait(
    ref: Refined, p: JobProfile, m: Arr, c: Arr, s_inc: Arr, cs2: Arr, w_s: Arr
) -> Arr:
    """``w_s`` with the scheduled wait of ``drain.batch_wait`` where ``ref`` is on: batches
    of mean ``m`` with the map's spread, the chunks it finds busy joining the drain when
    they end."""
    shape = np.broadcast(ref.on, m, c, s_inc, cs2, w_s).shape
    out = np.array(np.broadcast_to(w_s, shape), dtype=float)
    on = np.broadcast_to(ref.on & np.isfinite(ref.dispersion), shape)
    if not on.any():
        return out

    def at(x: Arr | float) -> Arr:
        return np.asarray(np.broadcast_to(np.asarray(x, dtype=float), shape)[on], dtype=float)

    mm, si = at(m), at(s_inc)
    out[on] = drain.batch_wait(
        mm, mm * at(ref.dispersion), at(c), si, p.renewal_mean, p.renewal_var,
        float(np.max(at(cs2))), [(at(ref.held), at(ref.back_s) / si)],
    )  # fmt: skip
    return out


class _Starts:
    """Starts by time t after a release: free workers from the dispatch on, each busy one
    from its chunk's end, each then one start per completion (the renewal curve)."""

    def __init__(self, inp: CycleInputs) -> None:
        self.grid = np.asarray(drain.GRID, dtype=float)
        self.mean = np.asarray(inp.renewal_mean, dtype=float)
        self.s = inp.job_s

    def curve(self, t: Arr, joins: Arr) -> Arr:
        """Starts of workers joining at ``joins`` (paths x workers, inf: none) by each of
        the times ``t`` (paths x times)."""
        u = (t[:, None, :] - joins[:, :, None]) / self.s
        end = float(self.grid[-1])
        n = np.interp(u, self.grid, self.mean) + np.maximum(u - end, 0.0)
        return np.asarray(np.where(u >= 0, 1 + n, 0.0).sum(axis=1), dtype=float)


def simulate_cycles(inp: CycleInputs, paths: int = 16, seed: int = 3) -> CycleFigures:
    """Run ``paths`` seeded paths of the release cycle over the scenario's horizon."""
    rng = np.random.default_rng(seed)
    pp, k_max, s_n = paths, CHAINS, inp.slots
    run = np.asarray(inp.chunk_runs or (0.0,), dtype=float)
    pause = np.asarray(inp.chunk_pauses or (0.0,), dtype=float)
    jobs = np.asarray(inp.jobs_per_full or (1.0,), dtype=float)
    chained = bool(inp.chunk_runs) and inp.full_rate > 0
    starts = _Starts(inp)
    # Claims by release, S + 2 ahead: a job moves one slot at most.
    due = np.zeros((pp, s_n + 2))
    due[:, :s_n] = rng.poisson(inp.per_slot, (pp, s_n))
    back = np.full((pp, k_max), np.inf)  # when each chain's chunk comes back
    ends = np.full((pp, k_max), -np.inf)  # when its running chunk ends
    left = np.zeros((pp, k_max))  # chunks still to run
    span = inp.job_s * (3 * inp.per_slot / max(inp.workers, 1) + 4)
    t = np.arange(0.0, span + inp.job_s * STEP, inp.job_s * STEP)
    tt = np.broadcast_to(t, (pp, t.size))
    rec: dict[str, list[Arr]] = {k: [] for k in ("b", "h", "res", "d", "cw", "cn")}
    for n in range(int(inp.horizon_s / inp.period)):
        slot = n % (s_n + 2)
        b = due[:, slot].copy()
        due[:, slot] = 0.0
        ready = inp.dispatch_s + inp.enqueue_s * b
        held = ends > 0
        h = held.sum(axis=1)
        residual = np.where(held, ends, 0.0).sum(axis=1)
        free = np.maximum(inp.workers - h, 1).astype(float)
        joins = np.where(held, np.maximum(ends, ready[:, None]), np.inf)
        width = int(h.max())
        if width:
            order = np.argsort(joins, axis=1)[:, :width]
            joins = np.take_along_axis(joins, order, axis=1)
        else:
            joins = np.full((pp, 1), np.inf)
        curve = free[:, None] * starts.curve(tt, ready[:, None]) + starts.curve(tt, joins)
        at = _first_at(curve, b, t)
        d = np.where(b > 0, at, 0.0)
        # The jobs that start within the releases' lateness over an interval stay.
        late = rng.gamma(s_n, inp.overshoot_s, pp) if inp.overshoot_s > 0 else np.zeros(pp)
        by_late = free * starts.curve(late[:, None], ready[:, None])[:, 0]
        by_late += starts.curve(late[:, None], joins)[:, 0]
        stay = np.floor(np.minimum(b, by_late))
        due[:, (n + s_n) % (s_n + 2)] += stay
        due[:, (n + s_n + 1) % (s_n + 2)] += b - stay
        cw, cn = np.zeros(pp), np.zeros(pp)
        if chained:
            # This release's new full syncs first: their second chunks may come back before
            # the next release.
            _new_chains(back, ends, left, ready, d, inp, rng, run, pause, jobs)
            cw, cn = _chunks(back, ends, left, b, curve, t, inp, rng, run, pause)
        shift = inp.period + (rng.exponential(inp.overshoot_s, pp) if inp.overshoot_s else 0.0)
        back -= np.broadcast_to(shift, (pp,))[:, None]
        ends -= np.broadcast_to(shift, (pp,))[:, None]
        if n * inp.period >= inp.warmup_s:
            for key, v in zip(
                ("b", "h", "res", "d", "cw", "cn"),
                (b, h, residual, d, cw, cn),
                strict=True,
            ):
                rec[key].append(np.asarray(v, dtype=float))
    return _figures(rec)


def _first_at(curve: Arr, level: Arr, t: Arr) -> Arr:
    """Per path, the first time the start curve reaches ``level`` (the grid's end if never)."""
    ok = curve >= level[:, None] - 1e-9
    i = np.where(ok.any(axis=1), ok.argmax(axis=1), t.size - 1)
    return np.asarray(t[i])


def _chunks(
    back: Arr, ends: Arr, left: Arr, b: Arr, curve: Arr, t: Arr, inp: CycleInputs,
    rng: np.random.Generator, run: Arr, pause: Arr,
) -> tuple[Arr, Arr]:  # fmt: skip
    """Start every chunk that comes back before the next release, in the order they come
    back: the k-th one queued behind the batch starts at its (b + k)-th start. Returns the
    waits' sum and the chunks started, per path."""
    pp = back.shape[0]
    rows = np.arange(pp)
    queued = np.zeros(pp)
    wait, count = np.zeros(pp), np.zeros(pp)
    for _ in range(ROUNDS):
        due = back < inp.period
        if not due.any():
            break
        order = np.argsort(np.where(due, back, np.inf), axis=1)
        for col in np.asarray(order).T:
            at = back[rows, col]
            on = at < inp.period
            if not on.any():
                break
            at = np.where(on, at, 0.0)  # chains not back this cycle: nothing to start
            turn = _first_at(curve, b + queued + 1, t)
            start = np.where(on, np.maximum(at + inp.dispatch_s, turn), 0.0)
            queued += on
            wait += np.where(on, start - at, 0.0)
            count += on
            pick = np.asarray(rng.integers(0, run.size, pp))
            i = np.flatnonzero(on)
            c = col[i]
            ends[i, c] = start[i] + run[pick[i]]
            left[i, c] -= 1
            back[i, c] = np.where(left[i, c] <= 0, np.inf, ends[i, c] + pause[pick[i]])
    return wait, count


def _new_chains(
    back: Arr, ends: Arr, left: Arr, ready: Arr, d: Arr, inp: CycleInputs,
    rng: np.random.Generator, run: Arr, pause: Arr, jobs: Arr,
) -> None:  # fmt: skip
    """Full syncs claimed by this release: the first chunk is one of the batch's jobs,
    started somewhere in its drain."""
    pp = back.shape[0]
    new = np.asarray(rng.poisson(inp.full_rate * inp.period, pp))
    for j in range(int(new.max(initial=0))):
        idle = ~np.isfinite(back) & (ends <= 0)
        place = idle.argmax(axis=1)
        i = np.flatnonzero((new > j) & idle.any(axis=1))
        if i.size == 0:
            break
        c = place[i]
        pick = rng.integers(0, run.size, i.size)
        start = ready[i] + rng.random(i.size) * np.maximum(d[i] - ready[i], 0.0)
        ends[i, c] = start + run[pick]
        left[i, c] = jobs[rng.integers(0, jobs.size, i.size)] - 1
        back[i, c] = np.where(left[i, c] <= 0, np.inf, ends[i, c] + pause[pick])


def _figures(rec: dict[str, list[Arr]]) -> CycleFigures:
    a = {k: np.concatenate(v) if v else np.zeros(1) for k, v in rec.items()}
    b, h = a["b"], a["h"]
    return CycleFigures(
        batch_mean=float(b.mean()),
        dispersion=float(b.var() / max(b.mean(), 1e-12)),
        held_mean=float(h.mean()),
        held_var=float(h.var()),
        residual_s=float(a["res"].sum() / max(h.sum(), 1.0)),
        drain_end_mean=float(a["d"].mean()),
        drain_end_sd=float(a["d"].std()),
        chunk_wait_s=float(a["cw"].sum() / max(a["cn"].sum(), 1.0)),
    )
