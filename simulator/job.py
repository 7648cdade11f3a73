"""A sync job and how its requests pass the quota gates (virtual clock or stepped).

``JobWalk`` is mixed into ``engine.Simulation``: a job whose calls no app-wide gate delays
is walked on a virtual clock and costs one timeout; otherwise it is stepped request by
request so that shared buckets are only consulted at the current simulated instant.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Generator
from itertools import accumulate
from typing import Any, NamedTuple

import simpy

from daemon.gcra import Gcra, split_cost
from daemon.policy import ErrorKind, SyncKind, quota_deferral
from simulator.gate import ProviderRuntime, Request
from simulator.metrics import Recorder
from simulator.scenario import Resources


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
    # (``Simulation._schedule``), an event that never fails.
    callbacks: list[Callable[[Job], None]] | None
    _ok = True
    # The pool whose worker runs it (another tier's when work conserving), set when it
    # starts (``TierPools`` passes it to the start callback).
    pool: int

    def __init__(
        self, m: int, tier: int, kind: SyncKind, due: float, enq: float, ready: float = 0.0
    ) -> None:
        self.m, self.tier, self.kind, self.due, self.enq = m, tier, kind, due, enq
        # When a free worker can have it: the claim's enqueue and the worker's pickup.
        self.ready = ready
        self.started = 0.0
        # How its walk ended, set when it starts (``kind`` becomes the kind run): the
        # failure (None: success), the last Retry-After, and for a chunk of a full sync
        # stopped for quota the instant its quota is back.
        self.fail: ErrorKind | None = None
        self.ra: float | None = None
        self.resume_at: float | None = None


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


class JobWalk:
    """Request walks of a job; expects the simulation's clock, recorder and finish hook."""

    env: simpy.Environment
    warm: float
    rec: Recorder
    _res: Resources

    def _finish(self, job: Job) -> None:
        raise NotImplementedError

    def _overhead_s(self, calls: int, stored: int) -> float:
        r = self._res
        cpu = r.cpu_ms_per_call * calls + r.cpu_ms_per_message * stored + r.cpu_ms_per_job
        db = r.db_commit_ms + r.db_ms_per_message * stored
        self.rec.resources(self.env.now, cpu, db, stored)
        return (cpu + db) / 1000.0

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
                # The whole sync (of more than two requests), no chunk can stop it: run by
                # run, each run's latencies drawn at once (the draws the per-request loop
                # below would make).
                for sampler, inner, u, extra, count in pv.runs(reqs):
                    lats = sampler.take(count)
                    if u <= chunk and tat <= t and extra == 0.0 and u * ei <= min(lats):
                        # The bucket is behind the clock and every latency at least one
                        # request's emission interval: each request finds tat <= t (the
                        # next tat, t + d, is at most the next t, t + lat), so none waits,
                        # the clock is the running sum of the latencies (added in order,
                        # as below, so to the same bits) and tat ends one interval after
                        # the last request left.
                        *_, before, t = accumulate(lats, initial=t)
                        tat = before + u * ei
                    elif u <= chunk:
                        w, d = (cap - u) * ei, u * ei
                        for lat in lats:
                            # x is max(t, tat) before and after a wait (waiting moves t
                            # to tat - w <= tat), so it is computed once.
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
            for i in range(first, n):
                sampler, inner, u, _ru, extra = reqs[i]
                if budget is not None:
                    later = pv.mailbox_deferral(mb, t, u, gate_wait, budget)
                    if later is not None:
                        stop = Stop(i, later)
                        break
                t2 = pv.gate_mailbox(mb, t, u)
                gate_wait += t2 - t
                t = t2
                units += u
                calls += inner
                t += sampler() + extra
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

    def _virtual(
        self,
        m: int,
        pv: ProviderRuntime,
        reqs: tuple[Request, ...],
        n: int,
        now: float,
        budget: float | None = None,
        first: int = 0,
    ) -> Walk | None:
        """Walk the job on a virtual clock; None when an app-wide gate would make it wait.

        With ``budget`` (a chunked full sync), a per-mailbox wait past it ends the walk at
        that request (``Walk.stop``), as the daemon's gate gives the worker back; ``first``
        is where a resumed one goes on.
        """
        mb = pv.mailbox_buckets(m) if pv.mb_quotas else None
        rmb = pv.real_mailbox_buckets(m) if pv.real_mb_quotas else None
        snap = [b.tat for b in mb] if mb else None
        rsnap = [b.tat for b in rmb] if rmb else None
        t = now + pv.overhead()
        units = runits = calls = requests = throttled = 0
        gate_wait = 0.0
        out_of_retries, ra_out = False, None
        stop: Stop | None = None
        for i in range(first, n):
            sampler, inner, u, ru, extra = reqs[i]
            if budget is not None and mb:
                later = pv.mailbox_deferral(mb, t, u, gate_wait, budget)
                if later is not None:
                    stop = Stop(i, later)
                    break
            tries = 0
            while True:
                if mb:
                    t2 = pv.gate_mailbox(mb, t, u)
                    gate_wait += t2 - t
                    t = t2
                units += u
                runits += ru
                calls += inner
                requests += 1
                wait = pv.real_admits(rmb, t, ru) if rmb else 0.0
                lat = sampler() + extra
                if wait > 0 or pv.throttle():
                    throttled += 1
                    tries += 1
                    ra = pv.retry_after_for(wait)
                    if pv.gives_up(tries, ra):
                        t += lat
                        out_of_retries, ra_out = True, ra
                        break
                    t += lat + ra
                    continue
                t += lat
                break
            if out_of_retries:
                break
        if pv.app or pv.real_app:
            ok = all(units <= b.capacity and b.earliest(now, units) <= now for b in pv.app) and all(
                min(runits, b.capacity) == runits and b.earliest(now, runits) <= now
                for b in pv.real_app
            )
            if not ok:
                if mb and snap:
                    for b, tat in zip(mb, snap, strict=True):
                        b.tat = tat
                if rmb and rsnap:
                    for w, state in zip(rmb, rsnap, strict=True):
                        w.tat = state
                return None
            for b in pv.app:
                b.reserve(now, units)
            if pv.app:
                pv.admitted_by_app(now, units)
            for w in pv.real_app:
                w.reserve(now, runits)
        self.rec.provider(pv, m, now, requests, calls, units, throttled, gate_wait, t - now)
        return Walk(t, out_of_retries, ra_out, calls, stop)

    @staticmethod
    def _admissible(
        pv: ProviderRuntime, reqs: tuple[Request, ...], i: int, n: int, now: float
    ) -> tuple[int, int]:
        """How far from request ``i`` every app-wide bucket admits at ``now``: (end, units)."""
        admitted = 0
        j = i
        while j < n:
            total = admitted + reqs[j][2]
            if any(
                total > b.capacity or b.tat - (b.capacity - total) * b.emission_interval > now
                for b in pv.app
            ):
                break
            admitted = total
            j += 1
        return j, admitted

    def _stepped(
        self,
        job: Job,
        pv: ProviderRuntime,
        reqs: tuple[Request, ...],
        n: int,
        fail: ErrorKind | None,
        kind: SyncKind,
        stored: int,
        first: int = 0,
    ) -> Generator[simpy.Event, Any, None]:
        env, m = self.env, job.m
        if job.started > env.now:
            yield env.timeout(job.started - env.now)
        t0 = env.now
        mb = pv.mailbox_buckets(m) if pv.mb_quotas else []
        real = (pv.real_mailbox_buckets(m) if pv.real_mb_quotas else []) + pv.real_app
        oh = pv.overhead()
        if oh > 0:
            yield env.timeout(oh)
        units = calls = requests = throttled = 0
        gate_wait = 0.0
        ra_out: float | None = None
        i = first
        while i < n:
            if pv.simple and pv.app:
                # Coalesce: the requests every app-wide bucket admits at this instant are
                # reserved now, in one piece per bucket, and walked on the virtual clock
                # with a single timeout (a long full sync is a few steps, not one per
                # request). The shared buckets are still only queried at the current time.
                j, run_units = self._admissible(pv, reqs, i, n, env.now)
                if j > i:
                    now = env.now
                    for b in pv.app:
                        b.reserve(now, run_units)
                    pv.admitted_by_app(now, run_units)
                    t = now
                    for sampler, inner, u, _ru, extra in reqs[i:j]:
                        if mb:
                            t2 = pv.gate_mailbox(mb, t, u)
                            gate_wait += t2 - t
                            t = t2
                        units += u
                        calls += inner
                        requests += 1
                        t += sampler() + extra
                    yield env.timeout(t - now)
                    i = j
                    continue
            sampler, inner, u, ru, extra = reqs[i]
            i += 1
            tries = 0
            while True:
                # Bucket after bucket, in pieces of at most each burst, like the daemon's
                # gate. Per-mailbox buckets first: only this job uses them, so they are
                # reserved ahead. Then each app-wide bucket, reserved at the current instant
                # (first come, first served; a shared bucket is never queried at a future
                # time), waiting for one before asking the next.
                now = env.now
                t = pv.gate_mailbox(mb, now, u) if mb else now
                for j, b in enumerate(pv.app):
                    if t > env.now:
                        yield env.timeout(t - env.now)
                    for piece in split_cost(u, b.capacity):
                        t = b.reserve(env.now, piece)
                        if j == 0:
                            pv.admitted_by_app(t, piece)
                if t > now + 1e-12:
                    gate_wait += t - now
                    yield env.timeout(t - env.now)
                units += u
                calls += inner
                requests += 1
                wait = pv.real_admits(real, env.now, ru) if real else 0.0
                lat = sampler() + extra
                if wait > 0 or pv.throttle():
                    throttled += 1
                    tries += 1
                    ra = pv.retry_after_for(wait)
                    if pv.gives_up(tries, ra):
                        ra_out = ra
                        yield env.timeout(lat)
                        break
                    yield env.timeout(lat + ra)
                    continue
                yield env.timeout(lat)
                break
            if ra_out is not None:
                fail = ErrorKind.RATE_LIMITED
                break
        self.rec.provider(pv, m, t0, requests, calls, units, throttled, gate_wait, env.now - t0)
        yield env.timeout(self._overhead_s(calls, 0 if fail else stored))
        job.kind, job.fail, job.ra = kind, fail, ra_out
        self._finish(job)
