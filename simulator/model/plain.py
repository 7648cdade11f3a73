"""The most common jobs in one step: incremental syncs of a plain provider.

Most syncs of a steady run are incremental syncs of Gmail or Graph mailboxes: no random
429s, no real-provider quotas, no connection pool, one per-mailbox bucket that each request
passes in one reservation. Their requests, quota units and calls depend only on the
request tuple (the quiet sync's, with nothing new, is by far the most common), once with a
token fetch in front and once without. ``plans_for`` works those out once per tuple;
``PlainJob._plain_job`` then runs such a job from the token check to its end on the
calendar without the general walk's steps. It makes the same draws in the same order and
the same arithmetic in the same order as the general path (``JobLife._start`` with
``JobWalk._virtual_simple``), so a seeded run's results do not change; any job it does not
fit (a full sync, a failure, a request over the bucket's burst, a provider with random
429s, real-provider quotas, IMAP connection pools or several per-mailbox buckets) takes
the general path.
"""

from __future__ import annotations

import heapq
from typing import Any, NamedTuple

import simpy
from mypy_extensions import trait
from simpy.events import NORMAL

from daemon.gcra import Gcra
from daemon.policy import SyncKind
from simulator.model.gate import Latency, ProviderRuntime, Request
from simulator.model.job import Callbacks, Job, JobTrace
from simulator.model.mailboxes import Box
from simulator.model.metrics import Recorder
from simulator.model.tokens import TokenCaches

_heappush = heapq.heappush
INCR = SyncKind.INCREMENTAL


class PlainPlan(NamedTuple):
    """One request tuple of a plain provider's incremental sync, worked out once (see the
    module's docstring); its CPU and database figures are those of a sync storing nothing.

    The requests share one latency sampler and each passes the mailbox's single bucket in
    one reservation; ``steps`` has one (emission time, burst allowance, extra latency) per
    request: ``u x T``, ``(capacity - u) x T`` and the request's own extra seconds.
    """

    reqs: tuple[Request, ...]
    steps: tuple[tuple[float, float, float], ...]
    units: int
    calls: int
    cpu_ms: float
    db_ms: float
    # (cpu + db) / 1000: the seconds the job holds its worker after its last request.
    cost_s: float
    # Per app-wide bucket: (bucket, over its capacity, (capacity - units) x interval,
    # units x interval), the figures of the inlined admission at the job's start.
    app: tuple[tuple[Gcra, bool, float, float], ...]
    # For the walk without waits: the largest emission time of the requests before the
    # last (-1.0 when one of them has extra latency, or a request a negative burst
    # allowance: such a walk goes request by request), the last's emission time and extra.
    d_max: float
    d_last: float
    e_last: float
    # Read by every job, so kept here: the number of requests, their latency sampler and
    # the provider's (constant) overhead before the first.
    n: int
    lat: Latency
    overhead: float


# Plans of one provider's request tuples, by the tuple's id: (the tuple, its plans or None).
PlanMemo = dict[int, tuple[tuple[Request, ...], "tuple[PlainPlan, PlainPlan] | None"]]


def plain_provider(pv: ProviderRuntime) -> bool:
    """Whether ``pv``'s incremental syncs may take the plain path (the module's docstring)."""
    return (
        pv.quiet is not None
        and pv.simple
        and pv.imap is None
        and len(pv.mb_quotas) == 1
        and pv.overhead.constant is not None
    )


def plans_for(
    pv: ProviderRuntime,
    reqs: tuple[Request, ...],
    costs: tuple[float, float, float, float, float, float],
) -> tuple[PlainPlan, PlainPlan] | None:
    """(without, with a token fetch) for the requests ``reqs`` of a plain provider's
    incremental sync; None when one of them takes the general path."""
    if not reqs:
        return None
    bucket = Gcra.for_quota(pv.mb_quotas[0])
    cap, ei = bucket.capacity, bucket.emission_interval
    sampler = reqs[0][0]
    for s, _inner, u, _ru, _extra in (*reqs, pv.token_request):
        if s is not sampler or u > pv.chunk:
            return None
    cpu_call, cpu_msg, cpu_job, _connect, db_commit, db_msg = costs
    overhead = pv.overhead.constant
    assert overhead is not None  # ``plain_provider``'s condition

    def plan(reqs: tuple[Request, ...]) -> PlainPlan:
        units = sum(r[2] for r in reqs)
        calls = sum(r[1] for r in reqs)
        # As ``JobLife._start`` computes them with nothing stored, to the same bits.
        cpu = cpu_call * calls + cpu_msg * 0 + cpu_job
        db = db_commit + db_msg * 0
        app = tuple(
            (
                b,
                units > b.capacity,
                (b.capacity - units) * b.emission_interval,
                units * b.emission_interval,
            )
            for b in pv.app
        )
        steps = tuple((u * ei, (cap - u) * ei, extra) for _s, _i, u, _ru, extra in reqs)
        plain = all(w >= 0.0 for _d, w, _x in steps) and all(x == 0.0 for *_, x in steps[:-1])
        d_max = max((d for d, _w, _x in steps[:-1]), default=0.0) if plain else -1.0
        walk = (d_max, steps[-1][0], steps[-1][2], len(reqs), sampler, overhead)
        return PlainPlan(reqs, steps, units, calls, cpu, db, (cpu + db) / 1000.0, app, *walk)

    return plan(reqs), plan(pv.with_token(reqs))


@trait
class PlainJob:
    """The plain job's start-to-end step, mixed into ``engine.Simulation`` (see the module's
    docstring); expects the simulation's state as ``JobLife`` does."""

    env: simpy.Environment
    warm: float
    rec: Recorder
    tokens: TokenCaches | None
    trace: list[JobTrace] | None
    _calendar: list[Any]
    _eid: Any
    _on_end: Callbacks
    _costs: tuple[float, float, float, float, float, float]

    def _plans(
        self, pv: ProviderRuntime, memo: PlanMemo, reqs: tuple[Request, ...]
    ) -> tuple[PlainPlan, PlainPlan] | None:
        """``plans_for(pv, reqs)``, memoised in ``memo`` by the tuple's id (the memo holds
        the tuple, so the id is not reused while the entry lives)."""
        if len(memo) > 20_000:
            memo.clear()
        plans = plans_for(pv, reqs, self._costs)
        memo[id(reqs)] = (reqs, plans)
        return plans

    def _plain_job(
        self,
        job: Job,
        m: int,
        box: Box,
        pv: ProviderRuntime,
        plans: tuple[PlainPlan, PlainPlan],
        stored: int,
        env_now: float,
        now: float,
        wait: float,
        queued: float,
    ) -> PlainPlan | None:
        """Run ``job``, an incremental sync that does not fail and stores ``stored``
        messages, from its token check (``now`` is when it starts, ``env_now`` the current
        instant) to its end on the calendar; or, when an app-wide gate would delay it, give
        back its plan for the caller to step from now (its token check and wait recorded,
        its bucket as it was)."""
        # Kept in one piece for speed: every step of it runs for most jobs.
        counting = now >= self.warm
        tokens = self.tokens
        assert tokens is not None  # every mailbox of a plain provider uses OAuth
        # The token cache's check, as in ``JobLife._start``.
        k = tokens.k
        i = box.token + int(tokens.rnd.random() * k) if k > 1 else box.token
        until = tokens.until
        if until[i] <= now:
            until[i] = now + box.serves
            if counting:
                tokens.syncs += 1
                tokens.refreshes += 1
            plan = plans[1]
        else:
            if counting:
                tokens.syncs += 1
            plan = plans[0]
        _reqs, steps, units, calls, cpu, db, cost_s, app, d_max, d_last, e_last, n, lat, oh = plan
        if stored:
            # As ``JobLife._start`` computes them, to the same bits.
            cpu_call, cpu_msg, cpu_job, _connect, db_commit, db_msg = self._costs
            cpu = cpu_call * calls + cpu_msg * stored + cpu_job
            db = db_commit + db_msg * stored
            cost_s = (cpu + db) / 1000.0
        rec = self.rec
        if counting:
            tier = job.tier
            rec.waits[tier].append(wait)
            rec.queued_s[tier] += queued
        # The walk of ``JobWalk._virtual_simple`` through the mailbox's one bucket (its
        # per-request steps, to the same bits): the overhead, then the latencies of every
        # request at once (``Latency.take``, inlined).
        t = now + oh
        one = (pv.mb_of[m] or pv.mailbox_buckets(m))[0]
        tat0 = tat = one.tat
        gate_wait = 0.0
        li = lat._i
        lj = li + n
        buf = lat._buf
        if lat.constant is not None:
            lats = [lat.constant] * n
        elif lj <= len(buf):
            lat._i = lj
            lats = buf[li:lj]
        else:
            lats = [lat() for _ in range(n)]
        fast = tat <= t and d_max >= 0.0
        if fast:
            # The bucket is behind the clock and each request's latency is at least its
            # emission time (no extra latency before the last request, no negative burst
            # allowance): no request waits, each finds tat <= t (rounding is monotonic), so
            # the clock is the running sum of the latencies (the same additions in the same
            # order as below, x + 0.0 being x) and tat ends one emission time after the
            # last request left. A latency too short for that goes back to the full walk.
            t0 = before = t
            for x in lats:
                if x < d_max:
                    fast = False
                    t = t0
                    break
                before = t
                t += x
        if fast:
            if e_last:
                t = before + (lats[-1] + e_last)
            tat = before + d_last
        else:
            # (Enumerated rather than zipped: zip's strict check is a costly keyword call.)
            for i, (d, w, extra) in enumerate(steps):
                start = t if t > tat else tat
                if start - w > t:
                    gate_wait += start - w - t
                    t = start - w
                tat = start + d
                t += lats[i] + extra
        if len(app) == 1:
            # One app-wide bucket (Gmail's and Graph's): the loops below without the loops.
            ((b, over, limit, add),) = app
            btat = b.tat
            admitted = not (over or btat - limit > now)
            if admitted:
                b.tat = (btat if btat > now else now) + add
        else:
            admitted = True
            for b, over, limit, _add in app:
                if over or b.tat - limit > now:
                    admitted = False
                    break
            else:
                for b, _over, _limit, add in app:
                    b.tat = (b.tat if b.tat > now else now) + add
        if not admitted:
            one.tat = tat0
            return plan
        one.tat = tat
        if app:
            pv.app_admitted += units
            if pv.app_log is not None:
                pv.app_log.append((now, units))
        if counting:
            c = pv.counters
            c.requests += n
            c.calls += calls
            c.units += units
            c.gate_wait_s += gate_wait
            c.syncs += 1
            c.api_s += t - now
            pv.units_by_mailbox[m] += units
            rec.cpu_ms += cpu
            rec.db_ms += db
            rec.stored += stored
        if self.trace is not None:
            pe = (box.added, box.changed, box.deleted)
            self.trace.append(JobTrace(m, pv.name, INCR, box.size, *pe, -1, -1, calls, None))
        job.fail = None
        job.callbacks = self._on_end
        at = self.env._now + (t - env_now + cost_s)
        _heappush(self._calendar, (at, NORMAL, next(self._eid), job))
        return None
