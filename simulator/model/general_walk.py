"""The general request walks of a job: providers with real-provider quotas or random 429s,
and jobs an app-wide gate would delay (stepped request by request).

``GeneralWalk`` is mixed into ``engine.Simulation`` beside ``job.JobWalk`` (the short
walk of the common case): a job is walked on a virtual clock when no app-wide gate delays
it, and stepped otherwise so that shared buckets are only consulted at the current
simulated instant.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import simpy
from mypy_extensions import trait

from daemon.gcra import split_cost
from daemon.policy import ErrorKind, SyncKind
from simulator.inputs.scenario import Resources
from simulator.model.gate import ProviderRuntime, Request
from simulator.model.job import Job, Stop, Walk
from simulator.model.metrics import Recorder


@trait
class GeneralWalk:
    """Request walks of the general case; expects the simulation's clock, recorder and
    finish hook."""

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
            # A resend carries only the inner requests the provider refused, each charged
            # again (u and ru are ``inner`` times one inner request's cost).
            pending, uk, ruk = inner, u, ru
            while True:
                if mb:
                    t2 = pv.gate_mailbox(mb, t, uk)
                    gate_wait += t2 - t
                    t = t2
                units += uk
                runits += ruk
                calls += pending
                requests += 1
                wait = pv.real_admits(rmb, t, ruk) if rmb else 0.0
                lat = sampler() + extra
                refused = pending if wait > 0 else pv.refused(pending)
                if refused:
                    throttled += 1
                    tries += 1
                    ra = pv.retry_after_for(wait)
                    if pv.gives_up(tries, ra):
                        t += lat
                        out_of_retries, ra_out = True, ra
                        break
                    t += lat + ra
                    uk, ruk = u * refused // inner, ru * refused // inner
                    pending = refused
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
            pending, uk, ruk = inner, u, ru  # a resend carries only the refused inner requests
            while True:
                # Bucket after bucket, in pieces of at most each burst, like the daemon's
                # gate. Per-mailbox buckets first: only this job uses them, so they are
                # reserved ahead. Then each app-wide bucket, reserved at the current instant
                # (first come, first served; a shared bucket is never queried at a future
                # time), waiting for one before asking the next.
                now = env.now
                t = pv.gate_mailbox(mb, now, uk) if mb else now
                for j, b in enumerate(pv.app):
                    if t > env.now:
                        yield env.timeout(t - env.now)
                    for piece in split_cost(uk, b.capacity):
                        t = b.reserve(env.now, piece)
                        if j == 0:
                            pv.admitted_by_app(t, piece)
                if t > now + 1e-12:
                    gate_wait += t - now
                    yield env.timeout(t - env.now)
                units += uk
                calls += pending
                requests += 1
                wait = pv.real_admits(real, env.now, ruk) if real else 0.0
                lat = sampler() + extra
                refused = pending if wait > 0 else pv.refused(pending)
                if refused:
                    throttled += 1
                    tries += 1
                    ra = pv.retry_after_for(wait)
                    if pv.gives_up(tries, ra):
                        ra_out = ra
                        yield env.timeout(lat)
                        break
                    yield env.timeout(lat + ra)
                    uk, ruk = u * refused // inner, ru * refused // inner
                    pending = refused
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
