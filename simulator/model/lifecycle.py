"""A job's life in the event simulation: start, request walk, end (or pause for quota).

``JobLife`` is mixed into ``engine.Simulation``; it reads the simulation's state (mailbox
table, providers, pools, recorder, calendar) and ``mailboxes.Box``, the per-mailbox state
a job reads beside the table.
"""

from __future__ import annotations

import heapq
import math
import random
from array import array
from typing import Any

import simpy
from simpy.events import NORMAL

from daemon import policy
from daemon.policy import ErrorKind, SyncKind
from simulator.model.gate import LOGIN, ProviderRuntime, Request
from simulator.model.general_walk import GeneralWalk
from simulator.model.imap_pool import ConnectionPools
from simulator.model.job import Callbacks, Job, JobTrace, JobWalk, Stop, poisson
from simulator.model.mailboxes import QUEUED, RUNNING, Box, MailboxTable
from simulator.model.plain import PlainJob, PlainPlan, PlanMemo
from simulator.model.station import TierPools
from simulator.model.tokens import TokenCaches

_exp = math.exp
_heappush = heapq.heappush
FULL, INCR = SyncKind.FULL, SyncKind.INCREMENTAL
# A full sync stopped for quota: its requests, the first still to make, the messages still
# to store.
Resume = tuple[tuple[Request, ...], int, int]


def _failure(
    u: float, p_auth: float, p_perm: float, n: int, rnd: random.Random
) -> tuple[ErrorKind, int]:
    """The failure a uniform ``u`` below the provider's failure share stands for, and how many
    of the job's ``n`` requests are made before it."""
    if u < p_auth:
        return ErrorKind.AUTH_REVOKED, 0
    if u < p_perm:
        return ErrorKind.PERMANENT, 1
    return ErrorKind.TRANSIENT, 1 + int(rnd.random() * n)


class JobLife(PlainJob, JobWalk, GeneralWalk):
    """The per-job callbacks of ``engine.Simulation`` (see the module's docstring)."""

    # Set by ``Simulation.__init__``.
    env: simpy.Environment
    table: MailboxTable
    boxes: list[Box]
    prng: random.Random
    lag_rng: random.Random
    pools: ConnectionPools | None
    tokens: TokenCaches | None
    workers: TierPools
    profile: policy.Profile
    trace: list[JobTrace] | None
    _enqueued: int
    drain: bool
    synced_once: bytearray
    first_done: Any
    drained_at: float | None
    t95: float | None
    _remaining: int
    _t95_left: int
    _done: simpy.Event
    _calendar: list[Any]
    _spare: list[Job]
    _eid: Any
    _on_end: Callbacks
    _on_pause: Callbacks
    _on_resume: Callbacks
    _all_events: float
    _p_added: float
    _p_deleted: float
    _expiry: float
    _chunk_wait: float
    _costs: tuple[float, float, float, float, float, float]
    _dispatch_ms: float
    # Per provider index: the plans of its request tuples (``plain``), None for a provider
    # whose syncs all take the general path.
    _plain: list[PlanMemo | None]
    # Per provider index: the plans of its quiet sync, None when it takes the general path.
    _quiet_plans: list[tuple[PlainPlan, PlainPlan] | None]

    def _start(self, job: Job, now: float, wait: float, pool: int) -> None:
        """A worker of ``pool`` takes ``job``: draw the mail since the last sync, choose the
        requests, walk them through the gates and schedule the job's end."""
        # Kept long for speed: the rare branches are methods, the common steps stay inline
        # (each further split is a call per job, measured 0.12 us, about 1 % of a job).
        m = job.m
        job.pool = pool
        self.table.state[m] = RUNNING
        env_now = now
        queued = wait  # in the station's queue (Little's law), without the dispatch
        if job.ready > now:
            # A free worker takes the job once it is in the queue: the sync starts then.
            now = job.ready
            wait = now - job.enq
        job.started = now
        rnd = self.prng
        box = self.boxes[m]
        pv = box.pv
        # Mail that arrived since contents were last drawn, kept until a sync succeeds.
        rate = box.rate
        mu = rate * (now - box.content_at)
        box.content_at = now
        if mu > 0:
            # One Poisson draw for all events, split by kind (Poisson thinning): most syncs
            # see no change at all and cost a single uniform. (``poisson`` inlined for the
            # small means of mail between two syncs: the same arithmetic, the same draws.)
            lam = mu * self._all_events
            if lam > 30:
                events = poisson(lam, rnd)
            else:
                p = _exp(-lam)
                u, events, cum = rnd.random(), 0, p
                while u > cum and events < 200:
                    events += 1
                    p *= lam / events
                    cum += p
            if events:
                self._new_mail(box, events, now - mu / rate, now)
        kind = job.kind
        resume = box.resume
        first = 0
        if resume is not None or kind is FULL or (self._expiry and rnd.random() < self._expiry):
            # (The expiry is drawn for an incremental sync only, as before the split.)
            reqs, first, stored = self._full_requests(box, pv, kind, resume)
            kind = FULL
            u = rnd.random()
        else:
            # The mailbox's size matters to an incremental sync on IMAP servers without
            # CONDSTORE (flag scan); the other providers' call models ignore it.
            added, changed, deleted = box.added, box.changed, box.deleted
            quiet = pv.quiet
            # One uniform decides whether and how the sync fails. (Drawn before the token
            # and the connection: those draw from streams of their own.)
            u = rnd.random()
            if u >= pv.fail_p[2]:
                # A plain provider's sync that does not fail: in one step if its requests
                # allow it (``plain``; a quiet sync's plans are looked up once per run).
                if quiet is not None and not (added or changed or deleted):
                    reqs, stored = quiet, 0
                    plans = self._quiet_plans[box.provider]
                else:
                    reqs = pv.requests(INCR, box.size, added, changed, deleted)
                    stored = added + changed
                    plans = None
                    memo = self._plain[box.provider]
                    if memo is not None:
                        hit = memo.get(id(reqs))
                        if hit is not None and hit[0] is reqs:
                            plans = hit[1]
                        else:
                            plans = self._plans(pv, memo, reqs)
                if plans is not None:
                    delayed = self._plain_job(
                        job, m, box, pv, plans, stored, env_now, now, wait, queued
                    )
                    if delayed is not None:
                        # An app-wide gate would delay it: stepped from now, as the general
                        # path does.
                        self._step(job, pv, delayed.reqs, delayed.n, None, INCR, 0, 0, -1)
                    return
            elif quiet is not None and not (added or changed or deleted):
                reqs, stored = quiet, 0
            else:
                reqs = pv.requests(INCR, box.size, added, changed, deleted)
                stored = added + changed
        counting = now >= self.warm
        pools = self.pools
        proc = how = -1
        if pools is not None and pv.imap is not None:
            proc, how = pools.take(m, now, counting)
            if how:
                reqs = pv.with_setup(how, reqs)
        elif (tokens := self.tokens) is not None:
            # tokens.refresh(m, now, counting), inlined (once per job): the process that runs
            # the sync is drawn, and fetches a token if its cached one no longer serves.
            k = tokens.k
            i = box.token + int(tokens.rnd.random() * k) if k > 1 else box.token
            until = tokens.until
            if counting:
                tokens.syncs += 1
            if until[i] <= now:
                until[i] = now + box.serves
                if counting:
                    tokens.refreshes += 1
                if not first:
                    # (A resumed chunk's token fetch is left out: its requests are walked
                    # in place.)
                    reqs = pv.with_token(reqs)
        p_auth, p_perm, p_any = pv.fail_p
        fail: ErrorKind | None = None
        n = len(reqs)
        if u < p_any:
            fail, n = _failure(u, p_auth, p_perm, n, rnd)
            stored = 0
        rec = self.rec
        if counting:
            tier = job.tier
            rec.waits[tier].append(wait)
            rec.queued_s[tier] += queued
        # A Gmail full sync gives its worker back rather than wait past the budget.
        budget = self._chunk_wait if kind is FULL and pv.chunks_full else None
        ra: float | None = None
        throttled_out = False
        if pv.simple:
            short = self._virtual_simple(m, pv, reqs, n, now, counting, budget, first)
            if short is None:
                self._step(job, pv, reqs, n, fail, kind, stored, first, proc)
                return
            t_end, calls, stop = short
        else:
            walk = self._virtual(m, pv, reqs, n, now, budget, first)
            if walk is None:
                self._step(job, pv, reqs, n, fail, kind, stored, first, proc)
                return
            t_end, throttled_out, ra, calls, stop = walk
        resume_at: float | None = None
        if throttled_out:
            fail = ErrorKind.RATE_LIMITED
            stored = 0
        elif stop is not None:
            stored, resume_at = self._chunk(m, reqs, first, n, stored, stop, t_end)
            fail = None
        if proc >= 0:
            assert pools is not None
            pools.give_back(m, proc, t_end, fail is not None)
        if self.trace is not None:
            pe = (0, 0, 0) if kind is FULL else (box.added, box.changed, box.deleted)
            self.trace.append(JobTrace(m, pv.name, kind, box.size, *pe, proc, how, calls, fail))
        cpu_call, cpu_msg, cpu_job, cpu_connect, db_commit, db_msg = self._costs
        cpu = cpu_call * calls + cpu_msg * stored + cpu_job
        if how == LOGIN:
            cpu += cpu_connect
        db = db_commit + db_msg * stored
        if counting:
            rec.cpu_ms += cpu
            rec.db_ms += db
            rec.stored += stored
        job.kind, job.fail, job.ra, job.resume_at = kind, fail, ra, resume_at
        job.callbacks = self._on_end if resume_at is None else self._on_pause
        # _schedule(job, delay), inlined: once per job.
        delay = t_end - env_now + (cpu + db) / 1000.0
        _heappush(self._calendar, (self.env._now + delay, NORMAL, next(self._eid), job))

    def _new_mail(self, box: Box, events: int, since: float, now: float) -> None:
        """``events`` mail events in (since, now] split by kind (Poisson thinning), added to
        the mailbox's pending changes; the arrivals' instants kept for the message lag."""
        rnd = self.prng
        added = deleted = 0
        p_add, p_del = self._p_added, self._p_deleted
        for _ in range(events):
            u = rnd.random()
            if u < p_add:
                added += 1
            elif u < p_del:
                deleted += 1
        box.added += added
        box.changed += events - added - deleted
        box.deleted += deleted
        if added:
            # Given their number, Poisson arrivals are uniform over the gap.
            lr = self.lag_rng
            got = [since + lr.random() * (now - since) for _ in range(added)]
            have = box.arrived
            if have is None:
                box.arrived = got
            else:
                have.extend(got)
        left = box.size + added - deleted
        box.size = left if left > 0 else 0

    def _full_requests(
        self, box: Box, pv: ProviderRuntime, kind: SyncKind, resume: Resume | None
    ) -> Resume:
        """(requests, first to make, messages to store) of a full sync: one resumed where it
        stopped for quota (whatever kind the claim chose), one claimed, or an incremental one
        whose cursor expired (its first call fails and the job falls back to full)."""
        if resume is not None:
            return resume
        size = box.size
        if kind is FULL:
            return pv.requests(FULL, size, 0, 0, 0), 0, size
        return pv.requests(INCR, 0, 0, 0, 0)[:1] + pv.requests(FULL, size, 0, 0, 0), 0, size

    def _chunk(
        self,
        m: int,
        reqs: tuple[Request, ...],
        first: int,
        n: int,
        stored: int,
        stop: Stop,
        t_end: float,
    ) -> tuple[int, float]:
        """One chunk of a full sync committed; the rest waits for the quota, off the worker.
        Returns the messages stored (in proportion to the requests made: nearly all are
        batched gets) and when the rest may resume."""
        part = stored * (stop.at - first) // max(n - first, 1)
        self.boxes[m].resume = (reqs, stop.at, stored - part)
        return part, t_end + stop.delay_s

    def _schedule(self, job: Job, delay: float, callbacks: Callbacks) -> None:
        """``Environment.schedule(job, NORMAL, delay)`` with ``callbacks``: a job has the two
        attributes SimPy's ``step`` reads from an event (``callbacks`` and ``_ok``), so it
        ends (or resumes) without an event object of its own."""
        job.callbacks = callbacks
        _heappush(self._calendar, (self.env._now + delay, NORMAL, next(self._eid), job))

    def _step(
        self,
        job: Job,
        pv: ProviderRuntime,
        reqs: tuple[Request, ...],
        n: int,
        fail: ErrorKind | None,
        kind: SyncKind,
        stored: int,
        first: int,
        proc: int,
    ) -> None:
        """Start a job that an app-wide gate would delay: stepped at the current instant."""
        # Only app-wide quotas step a job; IMAP has none, so its connection is given back on
        # the virtual clock.
        assert proc < 0
        self.env.process(self._stepped(job, pv, reqs, n, fail, kind, stored, first))

    def _pause(self, job: Job) -> None:
        """A chunk of a full sync is committed: the mailbox is queued again, delayed until
        its quota is back (``job.resume_at``, the daemon's delayed job), and the worker is
        free."""
        now, m, resume_at = self.env._now, job.m, job.resume_at
        assert resume_at is not None  # set for every chunk stopped for quota
        self.table.state[m] = QUEUED
        if now >= self.warm:
            self.rec.chunks += 1
        self.workers.depart(now, job.pool)
        at = now if now > resume_at else resume_at  # max(resume_at, now), without a call
        # The same job object goes on (nothing else holds it): the rest of the full sync,
        # enqueued when its quota is back.
        job.kind, job.enq, job.ready = FULL, at, at + self._dispatch_ms / 1000.0
        self._schedule(job, at - now, self._on_resume)

    def _resume_event(self, job: Job) -> None:
        self._enqueued += 1
        self.workers.arrive(job, job.enq, job.tier)

    def _finish(self, job: Job) -> None:
        """A job ended as its walk set: ``job.kind`` run, ``job.fail`` (None: success) and
        the last Retry-After ``job.ra``."""
        # (SimPy's clock read without its ``now`` property: a call per job.)
        now, m = self.env._now, job.m
        kind, fail = job.kind, job.fail
        rec = self.rec
        tier = job.tier
        if fail is None:
            started = job.started
            self.table.succeed(m, started, now)
            box = self.boxes[m]
            box.resume = None
            box.added = box.changed = box.deleted = 0
            rec.last_w[m] = now
            rec.tier_w[m] = tier
            arrived = box.arrived
            if now >= self.warm:
                # (Successes and attempts are counted from the durations kept.)
                lag = now - job.due
                rec.lag.append(lag)
                rec.lag_tier[tier].append(lag)
                rec.durations[kind].append(now - started)
                if arrived is not None:
                    key = (box.provider, tier)
                    got = rec.msg_lag.get(key)
                    if got is None:
                        got = rec.msg_lag[key] = array("d")
                    got.extend([now - a for a in arrived])
            if arrived is not None:
                box.arrived = None
        else:
            d = self.table.fail(m, fail, now, self.prng, self.profile.retry, job.ra)
            rec.failure(fail, d.outcome, now)
        if self.drain and not self.synced_once[m]:
            self.synced_once[m] = 1
            self.first_done[m] = now
            self._remaining -= 1
            if self._remaining == self._t95_left:
                self.t95 = now
            if self._remaining == 0:
                self.drained_at = now
                self._done.succeed()
        self.workers.depart(now, job.pool)
        # Nothing holds the job any more (``_stepped`` ends with this call): its object
        # goes to the next claim.
        self._spare.append(job)
