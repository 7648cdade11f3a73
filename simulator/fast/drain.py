"""A released batch drained by the sampled sync times, not by two of their moments.

Sync times are far from any two-parameter shape: with the model's latencies two fifths of
the incremental syncs take under 0.3 s and the median is 0.95 s (cs² ≈ 0.7), so a drain
formula that knows only the mean and the variance places the finishes wrongly.

``renewal`` runs the c workers of a drain as renewal processes of the *sampled* job times
(seeded, once per job profile): the mean M(u) and variance V(u) of the completions of one
worker by u mean job times. ``batch_wait`` then takes a batch of b jobs released at once on
c idle workers: the first c start at once and the queue at t holds (b - c - N(t))+ jobs,
N(t) the completions of all c workers (mean c M, variance c V). Its integral over t is the
batch's total wait; with b and N normal (b's own spread added) E[(.)+] is closed form.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import special

from simulator.fast import closed_forms as cf

Arr = np.ndarray
# Workers busy with other work at a release: (count, mean job times until they join) each.
Held = list[tuple[Arr, Arr]]

# Normalised time (mean job times) of the sampled renewal curve: fine where the short and
# long modes of the job times finish, coarser later, where the curve is nearly linear.
GRID = np.concatenate(
    [
        np.arange(0.0, 0.5, 1 / 32),
        np.arange(0.5, 2.0, 1 / 8),
        np.arange(2.0, 6.0, 1 / 4),
        np.arange(6.0, 16.0 + 1e-9, 1 / 2),
    ]
)
# Sampled paths: 20,000 keep the mean wait's sampling noise near ±0.5 % (±3 % with 4,000).
PATHS = 20_000
# At most this many draws in all (memory: 8 bytes each, held a few times over).
DRAWS = 4_000_000
# Configurations evaluated at once: bounds the (configurations x time grid) temporaries.
CHUNK = 8192


def renewal(durations: Arr, seed: int = 11) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """M(u) and V(u) on ``GRID``: mean and variance of one worker's completions by u mean job
    times when it takes jobs of the sampled ``durations`` back to back (seeded)."""
    d = np.asarray(durations, dtype=float)
    d = d[d > 0]
    if d.size == 0:
        return (), ()
    x = d / d.mean()
    rng = np.random.default_rng(seed)
    end = float(GRID[-1])
    # Completions by the grid's end are about end ± sqrt(end cs²): draw 8 σ more, and more
    # again in the rare case a path falls short of the end.
    draws = int(end + 8 * np.sqrt(end * max(float(x.var()), 0.01))) + 16
    paths = max(1000, min(PATHS, DRAWS // draws))
    cs = np.cumsum(rng.choice(x, size=(paths, draws)), axis=1)
    while float(cs[:, -1].min()) <= end:
        more = np.cumsum(rng.choice(x, size=(paths, draws)), axis=1) + cs[:, -1:]
        cs = np.concatenate([cs, more], axis=1)
    draws = cs.shape[1]
    # Completions by u on each path: a row offset keeps one flat searchsorted per grid point.
    offset = (np.arange(paths) * (cs[:, -1].max() + 1.0))[:, None]
    flat = (cs + offset).ravel()
    at = (
        np.searchsorted(flat, (GRID[None, :] + offset).ravel(), side="right").reshape(
            paths, GRID.size
        )
        - (np.arange(paths) * draws)[:, None]
    )
    counts = at.astype(float)
    return tuple(float(v) for v in counts.mean(axis=0)), tuple(float(v) for v in counts.var(axis=0))


# Nodes of the batch-evening quadrature (``evened_variance``): standard normal and unit
# exponential, probabilists' Gauss-Hermite and Gauss-Laguerre (a variance needs few).
_HX, _HW = np.polynomial.hermite_e.hermegauss(12)
_HW = _HW / _HW.sum()
_LX, _LW = np.polynomial.laguerre.laggauss(12)


def evened_variance(m: Arr, c: Arr) -> Arr:
    """Variance of the batches a scheduler releases, mean ``m``, onto ``c`` workers when the
    sync interval is a whole number of its periods.

    A mailbox is due one interval after its sync started, just before the cycle that
    claimed it: a job that waits past the scheduler's small lateness falls due after that
    cycle and moves to the next one. With ``c >= m`` the cycles with room keep what the
    others pass on: the passed-on jobs C follow a Lindley recursion C' = (C + a - c)+ on
    Poisson counts a (mean and variance m; in heavy traffic C is exponential with mean
    m / (2 (c - m))), and a batch is min(a + C, c): far less spread than Poisson. With
    ``m >= c`` nothing absorbs them and the counts are taken as Poisson (the event model's
    clump more as a run goes on: each cycle keeps what its free workers start and passes
    the rest to the next, so the excesses move round instead of evening out; variance/mean
    5-6 over 2 hours on plan-b-1000 with 2 s jobs, 7 over 4).
    """
    shape = np.broadcast(m, c).shape
    m_arr = np.broadcast_to(np.maximum(np.asarray(m, dtype=float), 0.0), shape).ravel()
    c_arr = np.broadcast_to(np.maximum(np.asarray(c, dtype=float), 1.0), shape).ravel()
    out = m_arr.copy()
    # Only where the workers have room (the quadrature is the cost on large grids).
    at = np.flatnonzero(c_arr > m_arr)
    mm, cc = m_arr[at], c_arr[at]
    carry = mm / (2 * (cc - mm))
    a = mm[:, None, None] + np.sqrt(mm)[:, None, None] * _HX[:, None]
    b = np.minimum(a + carry[:, None, None] * _LX[None, :], cc[:, None, None])
    w = _HW[:, None] * _LW[None, :]
    mean_b = np.sum(w * b, axis=(-2, -1))
    out[at] = np.maximum(np.sum(w * b * b, axis=(-2, -1)) - mean_b**2, 0.0)
    return out.reshape(shape)


def batch_wait(
    m: Arr,
    vb: Arr,
    c: Arr,
    s: Arr,
    mean_n: tuple[float, ...],
    var_n: tuple[float, ...],
    cs2: float,
    held: Sequence[tuple[Arr | float, Arr | float]] = (),
) -> Arr:
    """Mean queue wait per job of a batch of mean ``m`` and variance ``vb`` released at once
    onto ``c`` workers whose job times have mean ``s`` and the renewal curve (``mean_n``,
    ``var_n``, from ``renewal``); past its grid the curve goes on linearly (slope 1, variance
    slope ``cs2``). The workers are idle but for ``held``: each group (workers, back) is a
    Poisson count of them busy with other work at the release that join the drain after
    ``back`` mean job times (all of them together at most ``c - 1``). Arrays broadcast
    together."""
    shape = np.broadcast(m, vb, c, s, *(x for g in held for x in g)).shape

    def flat(x: Arr | float) -> Arr:
        return np.broadcast_to(np.asarray(x, dtype=float), shape).ravel()

    mb, vbb, cb, sb = (flat(x) for x in (m, vb, c, s))
    cb = np.maximum(cb, 1.0)
    groups = [(flat(h), flat(r)) for h, r in held]
    busy = sum((h for h, _r in groups), np.zeros(mb.size))
    scale = np.where(busy > cb - 1, (cb - 1) / np.maximum(busy, 1e-12), 1.0)
    groups = [(h * scale, r) for h, r in groups]
    free = cb - busy * scale
    out = np.zeros(mb.size)
    mn, vn = np.asarray(mean_n, dtype=float), np.asarray(var_n, dtype=float)
    # A batch that fits the free workers to 6 σ (and 6 jobs) does not wait; the held count
    # is Poisson, so its spread adds to the batch's.
    spread = np.sqrt(np.maximum(vbb + busy * scale, 0.0))
    queues = np.flatnonzero((mb > 0) & (mb + 6 * spread + 6 > free))
    for lo in range(0, queues.size, CHUNK):
        at = queues[lo : lo + CHUNK]
        curve = _Curve.over(mb[at], vbb[at], cb[at], mn, vn, cs2)
        out[at] = curve.wait(mb[at], vbb[at], cb[at], sb[at], [(h[at], r[at]) for h, r in groups])
    return out.reshape(shape)


@dataclass(frozen=True)
class _Curve:
    """One worker's completions (mean and variance) on a grid long enough for a drain."""

    u: Arr
    mean: Arr
    var: Arr
    cs2: float

    @classmethod
    def over(cls, m: Arr, vb: Arr, c: Arr, mn: Arr, vn: Arr, cs2: float) -> _Curve:
        """The curve on ``GRID``, extended linearly until the largest of these batches has
        drained (the queue is empty to 6 σ once c M(u) passes the batch's upper tail)."""
        top = m + 6 * np.sqrt(np.maximum(vb, 0.0)) + 6
        need = float(np.max(np.maximum(top - c, 0.0) / c, initial=0.0)) + 6.0
        end = float(GRID[-1])
        if need <= end:
            return cls(GRID, mn, vn, cs2)
        extra = np.geomspace(end + 1 / 8, need, 24)
        return cls(
            np.concatenate([GRID, extra]),
            np.concatenate([mn, mn[-1] + (extra - end)]),
            np.concatenate([vn, vn[-1] + max(cs2, 0.0) * (extra - end)]),
            cs2,
        )

    def shifted(self, back: Arr) -> tuple[Arr, Arr, Arr]:
        """Per configuration (rows) and grid point: whether a worker busy until ``back``
        has joined, and its completions' mean and variance since (zero before)."""
        t = self.u[None, :] - back[:, None]
        on = t >= 0
        ts = np.maximum(t, 0.0)
        end = float(self.u[-1])
        mean = np.interp(ts, self.u, self.mean) + np.maximum(ts - end, 0.0)
        var = np.interp(ts, self.u, self.var) + max(self.cs2, 0.0) * np.maximum(ts - end, 0.0)
        return on, np.where(on, mean, 0.0), np.where(on, var, 0.0)

    def queue(self, m: Arr, vb: Arr, c: Arr, held: Held) -> tuple[Arr, Arr]:
        """Mean and standard deviation of b - (started jobs) per configuration and grid
        point: ``c`` workers less the ``held`` ones start at once, each held group from its
        time on."""
        busy = sum((h for h, _r in held), np.zeros_like(m))
        free = np.maximum(c - busy, 1.0)[:, None]
        one = 1 + self.mean[None, :]
        mean_x = m[:, None] - free * one
        var = vb[:, None] + free * self.var[None, :]
        for h, back in held:
            if np.isinf(back).all():
                # Held for the whole drain: only the count's spread.
                var = var + h[:, None]
                continue
            on, hm, hv = self.shifted(back)
            # A held worker starts one job when it joins, then one per completion.
            joined = on + hm
            mean_x = mean_x - h[:, None] * joined
            # A Poisson count of held workers (variance = mean): the jobs its spread moves
            # at the release, not again at each completion (long jobs come and go during a
            # drain), fewer once the group has joined.
            var = var + h[:, None] * (hv + np.minimum(one - joined, 1.0) ** 2)
        return mean_x, np.sqrt(np.maximum(var, 1e-12))

    def wait(self, m: Arr, vb: Arr, c: Arr, s: Arr, held: Held) -> Arr:
        """Mean queue wait per job (``batch_wait`` on flat arrays)."""
        mean_x, sd = self.queue(m, vb, c, held)
        z = mean_x / sd
        pos = mean_x * special.ndtr(z) + sd * np.exp(-(z**2) / 2) / np.sqrt(2 * np.pi)
        total = np.trapezoid(pos, self.u, axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            w = s * total / m
        return np.asarray(np.where(m > 0, w, 0.0), dtype=float)


def scheduled_wait(
    renewal: tuple[tuple[float, ...], tuple[float, ...]],
    lam: Arr,
    c: Arr,
    c_eff: Arr,
    s_inc: Arr,
    cs2: Arr,
    period: float,
    k: Arr,
    locked: Arr,
    long: Sequence[tuple[Arr | float, Arr | float]] = (),
) -> Arr:
    """Scheduled jobs' mean queue wait beyond their dispatch, ``k`` schedulers releasing
    ``lam`` jobs a second onto ``c`` serving workers (``c_eff`` of them free of long jobs,
    on average over time).

    Where the interval is a whole number of periods (``locked``) the batches of lam T / k
    (the schedulers' cycles take turns on the shared queue) even out on the ``c`` workers
    (``evened_variance``) and drain by the sampled job times (``renewal``, the curve of the
    function ``renewal``; empty: the two-moment ``closed_forms.equal_batch_wait``). Other
    jobs hold ``c - c_eff`` workers on average; each group of ``long``, (workers, seconds),
    holds that many at a release (a Poisson count) until its jobs end that many seconds
    later (a push sync's residual time; infinite: the whole drain). Without ``long`` they
    are held for the whole drain. Elsewhere the batches follow the schedulers' phases
    (``closed_forms.batch_release_wait``). The drain is the costly part: only locked
    configurations pay for it.
    """
    shape = np.broadcast(lam, c, c_eff, s_inc, cs2, k, locked).shape

    def full(x: Arr | float) -> Arr:
        return np.broadcast_to(np.asarray(x, dtype=float), shape)

    lam_b, cc, ce, si, cv, kk, lk = (full(x) for x in (lam, c, c_eff, s_inc, cs2, k, locked))
    out = np.array(cf.batch_release_wait(lam_b, ce, si, cv, period, kk), dtype=float)
    at = lk > 0
    if not at.any():
        return out
    mean_n, var_n = renewal
    if not mean_n:
        out[at] = cf.equal_batch_wait(lam_b[at], ce[at], si[at], cv[at], period, kk[at])
        return out
    m = lam_b * period / kk
    held = np.maximum(cc - ce, 0.0)
    # Batches that fit the free workers to 6 σ do not wait; a batch's variance is at most
    # that of Poisson plus the exponential carry (m + θ², θ = m / (2 (c - m))), so only the
    # others need the quadrature of ``evened_variance`` (the cost on large grids).
    with np.errstate(divide="ignore", invalid="ignore"):
        theta = np.where(cc > m, m / (2 * np.maximum(cc - m, 1e-12)), 0.0)
    at &= m + 6 * np.sqrt(m + theta**2 + held) + 6 > ce
    out[lk > 0] = 0.0
    if not at.any():
        return out
    groups = [(full(h)[at], full(r)[at] / si[at]) for h, r in long] or [
        (held[at], np.full(int(at.sum()), np.inf))
    ]
    vb = evened_variance(m[at], cc[at])
    out[at] = batch_wait(m[at], vb, cc[at], si[at], mean_n, var_n, float(np.max(cv[at])), groups)
    return out
