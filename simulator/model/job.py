"""A sync job and the short walk of its requests through the quota gates.

``JobWalk`` is mixed into ``engine.Simulation``: a job of a provider without real-provider
quotas or random 429s, whose calls no app-wide gate delays, is walked on a virtual clock
and costs one timeout (the common case). The other walks, the general virtual clock and
the request-by-request steps of a job an app-wide gate delays, are in
``simulator.model.general_walk``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from itertools import accumulate
from typing import NamedTuple

import simpy
from mypy_extensions import trait

from daemon.gcra import Gcra
from daemon.policy import ErrorKind, SyncKind, quota_deferral
from simulator.inputs.scenario import Resources
from simulator.model.gate import ProviderRuntime, Request
from simulator.model.metrics import Recorder


class Stop(NamedTuple):
    """Where a chunked full sync gave its worker back: the first request not made, and the
    seconds until its quota is there (``policy.quota_deferral``)."""

    at: int
    delay_s: float


class Walk(NamedTuple):
    """A job walked on the virtual clock: when it ends, whether it ran out of retries (with
    the last Retry-After), the quota calls made, and where it stopped for quota, if it did."""

    end: float
    out_of_retries: bool
    retry_after: float | None
    calls: int
    stop: Stop | None = None


# What ``_virtual_simple`` returns: the walk's end, its quota calls and where it stopped.
SimpleWalk = tuple[float, int, "Stop | None"]


class JobTrace(NamedTuple):
    """One job as walked: what the call model was asked and the calls it made.

    ``process`` and ``setup`` (``gate.REUSE/NOOP/LOGIN``) are -1 for providers without
    connection pools.
    """

    mailbox: int
    provider: str
    kind: SyncKind
    messages: int
    added: int
    changed: int
    deleted: int
    process: int
    setup: int
    calls: int
    fail: ErrorKind | None


# What SimPy's ``step`` calls when a job's instant comes (it only iterates them).
Callbacks = tuple[Callable[["Job"], None], ...]


class Job:
    """One sync job on a tier queue."""

    __slots__ = (
        "callbacks",
        "due",
        "enq",
        "fail",
        "kind",
        "m",
        "pool",
        "ra",
        "ready",
        "resume_at",
        "started",
        "tier",
    )
    # Read by SimPy's ``Environment.step``: a job is its own end event on the calendar
    # (``JobLife._schedule``), an event that never fails.
    callbacks: Callbacks | None
    _ok = True
    started: float
    fail: ErrorKind | None
    ra: float | None
    resume_at: float | None
    # The pool whose worker runs it (another tier's when work conserving), set when it
    # starts (``TierPools`` passes it to the start callback).
    pool: int

    def __init__(
        self, m: int, tier: int, kind: SyncKind, due: float, enq: float, ready: float = 0.0
    ) -> None:
        self.m, self.tier, self.kind, self.due, self.enq = m, tier, kind, due, enq
        # When a free worker can have it: the claim's enqueue and the worker's pickup.
        self.ready = ready
        # Set when it starts (``JobLife._start``), not here (a job is built per sync):
        # ``started``, and how its walk ended (``kind`` becomes the kind run): ``fail``
        # (None: success), ``ra`` (the last Retry-After) and, for a chunk of a full sync
        # stopped for quota, ``resume_at``, the instant its quota is back.


def poisson(mu: float, rnd: random.Random) -> int:
    """A Poisson draw from a ``random.Random``."""
    # Inversion is cheapest for the small means of mail between two syncs.
    if mu <= 0:
        return 0
    if mu > 30:
        return max(0, round(rnd.gauss(mu, math.sqrt(mu))))
    p = math.exp(-mu)
    u, k, cum = rnd.random(), 0, p
    while u > cum and k < 200:
        k += 1
        p *= mu / k
        cum += p
    return k


def _runs_one_bucket(
    pv: ProviderRuntime, mb: list[Gcra], reqs: tuple[Request, ...], t: float, tat: float
) -> tuple[float, float, int, int, float]:
    """A whole sync through one per-mailbox bucket (``mb[0]``, whose tat is ``tat``) from
    ``t``, run by run, each run's latencies drawn at once (the draws a per-request walk would
    make); returns (end, tat, units, calls, gate wait)."""
    one = mb[0]
    chunk = pv.chunk
    cap, ei = one.capacity, one.emission_interval
    units = calls = 0
    gate_wait = 0.0
    for sampler, inner, u, extra, count in pv.runs(reqs):
        lats = sampler.take(count)
        if u <= chunk and tat <= t and extra == 0.0 and u * ei <= min(lats):
            # The bucket is behind the clock and every latency at least one request's
            # emission interval: each request finds tat <= t (the next tat, t + d, is at
            # most the next t, t + lat), so none waits, the clock is the running sum of the
            # latencies (added in order, as below, so to the same bits) and tat ends one
            # interval after the last request left.
            *_, before, t = accumulate(lats, initial=t)
            tat = before + u * ei
        elif u <= chunk:
            w, d = (cap - u) * ei, u * ei
            for lat in lats:
                # x is max(t, tat) before and after a wait (waiting moves t to tat - w <=
                # tat), so it is computed once.
                x = t if t > tat else tat
                if x - w > t:
                    gate_wait += x - w - t
                    t = x - w
                tat = x + d
                t += lat + extra
        else:
            one.tat = tat
            for lat in lats:
                t2 = pv.gate_mailbox(mb, t, u)
                gate_wait += t2 - t
                t = t2 + (lat + extra)
            tat = one.tat
        units += u * count
        calls += inner * count
    return t, tat, units, calls, gate_wait


def _walk_buckets(
    pv: ProviderRuntime,
    mb: list[Gcra],
    reqs: tuple[Request, ...],
    first: int,
    n: int,
    t: float,
    budget: float | None,
) -> tuple[float, int, int, float, Stop | None]:
    """Requests ``first`` to ``n`` through several per-mailbox buckets from ``t``, request by
    request (stopping for quota past ``budget``); returns (end, units, calls, gate wait,
    stop)."""
    units = calls = 0
    gate_wait = 0.0
    for i in range(first, n):
        sampler, inner, u, _ru, extra = reqs[i]
        if budget is not None:
            later = pv.mailbox_deferral(mb, t, u, gate_wait, budget)
            if later is not None:
                return t, units, calls, gate_wait, Stop(i, later)
        t2 = pv.gate_mailbox(mb, t, u)
        gate_wait += t2 - t
        t = t2
        units += u
        calls += inner
        t += sampler() + extra
    return t, units, calls, gate_wait, None


@trait
class JobWalk:
    """The short request walk of a job (see the module's docstring); expects the
    simulation's clock and recorder."""

    env: simpy.Environment
    warm: float
    rec: Recorder
    _res: Resources

    def _virtual_simple(
        self,
        m: int,
        pv: ProviderRuntime,
        reqs: tuple[Request, ...],
        n: int,
        now: float,
        counting: bool,
        budget: float | None = None,
        first: int = 0,
    ) -> SimpleWalk | None:
        """``_virtual`` for a provider without real-quota or random 429s (the common case).

        Returns (end, quota calls made, where it stopped for quota); None as ``_virtual``.
        """
        # Kept long for speed: the per-request walk and the app-wide admission run for every
        # job (a split is a call per job, measured 0.12 us, about 1 % of a job).
        mb = (pv.mb_of[m] or pv.mailbox_buckets(m)) if pv.mb_quotas else None
        oh = pv.overhead.constant
        t = now + (oh if oh is not None else pv.overhead())
        units = calls = 0
        gate_wait = 0.0
        stop: Stop | None = None
        one: Gcra | None = None
        snap: list[float] | None = None
        tat0 = tat = 0.0
        first0 = first  # (``first`` moves on past the requests walked run by run)
        if mb is not None and len(mb) == 1:
            # One bucket: Gcra.reserve inlined on locals (the same arithmetic, in the same
            # order), written back once; requests over its burst take the general gate.
            one = mb[0]
            chunk = pv.chunk
            tat0 = tat = one.tat
            cap, ei = one.capacity, one.emission_interval
            if n > 2 and budget is None and first == 0 and n == len(reqs):
                # The whole sync (of more than two requests), no chunk can stop it.
                t, tat, units, calls, gate_wait = _runs_one_bucket(pv, mb, reqs, t, tat)
                first = n
            for i in range(first, n):
                sampler, inner, u, _ru, extra = reqs[i]
                if u <= chunk:
                    start = (t if t > tat else tat) - (cap - u) * ei
                    if start > t:
                        if budget is not None:
                            later = quota_deferral(gate_wait, start - t, budget)
                            if later is not None:
                                stop = Stop(i, later)
                                break
                        gate_wait += start - t
                        t = start
                    tat = (t if t > tat else tat) + u * ei
                else:
                    one.tat = tat
                    if budget is not None:
                        later = pv.mailbox_deferral(mb, t, u, gate_wait, budget)
                        if later is not None:
                            stop = Stop(i, later)
                            break
                    t2 = pv.gate_mailbox(mb, t, u)
                    gate_wait += t2 - t
                    t = t2
                    tat = one.tat
                units += u
                calls += inner
                t += sampler() + extra
            one.tat = tat
        elif mb:
            snap = [b.tat for b in mb]
            t, units, calls, gate_wait, stop = _walk_buckets(pv, mb, reqs, first, n, t, budget)
        elif n > 2 and budget is None and first == 0 and n == len(reqs):
            for sampler, inner, u, extra, count in pv.runs(reqs):
                for lat in sampler.take(count):
                    t += lat + extra
                units += u * count
                calls += inner * count
        else:
            for i in range(first, n):
                sampler, inner, u, _ru, extra = reqs[i]
                units += u
                calls += inner
                t += sampler() + extra
        app = pv.app
        if app:
            # Inlined Gcra.earliest/reserve at ``now``: admitted when tat - (cap - units) T <= now.
            for b in app:
                ei = b.emission_interval
                if units > b.capacity or b.tat - (b.capacity - units) * ei > now:
                    if one is not None:
                        one.tat = tat0
                    elif mb and snap:
                        for bk, tat in zip(mb, snap, strict=True):
                            bk.tat = tat
                    return None
            for b in app:
                b.tat = (b.tat if b.tat > now else now) + units * b.emission_interval
            pv.app_admitted += units  # admitted_by_app(), inlined
            if pv.app_log is not None:
                pv.app_log.append((now, units))
        if counting:
            c = pv.counters
            # The requests this walk made: a chunk makes those from ``first`` to its stop.
            c.requests += (stop.at if stop is not None else n) - first0
            c.calls += calls
            c.units += units
            c.gate_wait_s += gate_wait
            c.syncs += 1
            c.api_s += t - now
            pv.units_by_mailbox[m] += units
        return t, calls, stop
