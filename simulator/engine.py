"""The event simulation of the daemon: schedulers, tier queues, workers, pushes, sampling.

SimPy is the calendar. Jobs are callback-driven (no process per job): the request walks
through the quota gates live in ``simulator.job``.
"""

from __future__ import annotations

import gc
import heapq
import math
import random
from array import array
from collections.abc import Callable, Generator
from typing import Any, Literal, NamedTuple

import numpy as np
import simpy
from simpy.events import NORMAL

from daemon import policy
from daemon.policy import ErrorKind, SyncKind
from simulator import population
from simulator.gate import LOGIN, ProviderRuntime, Request
from simulator.imap_pool import ConnectionPools, reauth_bounds
from simulator.job import Job, JobWalk, poisson
from simulator.mailboxes import ACTIVE, QUEUED, RUNNING, MailboxTable
from simulator.metrics import Recorder, RunMetrics
from simulator.scenario import IMAP, PROVIDERS, Scenario
from simulator.station import TierPools
from simulator.tokens import TokenCaches

Mode = Literal["steady", "drain"]
TIER_INDEX = {t: i for i, t in enumerate(policy.TIERS)}
_exp = math.exp
_heappush = heapq.heappush
FULL, INCR = SyncKind.FULL, SyncKind.INCREMENTAL


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


class Simulation(JobWalk):
    """One replication of a scenario; ``mode='drain'`` makes every mailbox due at t=0."""

    def __init__(
        self,
        scenario: Scenario,
        seed: int,
        mode: Mode = "steady",
        mailboxes: population.Mailboxes | None = None,
    ) -> None:
        if mode == "drain" and scenario.population.initial == "steady":
            scenario = scenario.updated({"population.initial": "all_due"})
        self.s = scenario
        self.mode = mode
        self.profile = scenario.profile()
        rng = np.random.default_rng(seed)
        self.prng = random.Random(int(rng.integers(2**62)))
        pop = population.build(scenario, rng, mailboxes)
        self.pop = pop
        self.n = pop.n
        last = [None if math.isnan(x) else float(x) for x in pop.last_success_at.tolist()]
        self.table = MailboxTable(
            pop.next_sync_at.tolist(), last, pop.has_cursor.tolist(), pop.interval_s.tolist()
        )
        self.provider_of = pop.provider.tolist()
        self.rate = pop.arrivals_per_s.tolist()
        self.size = pop.size.tolist()
        self.content_at = [0.0] * self.n
        # Arrival instants of mail not yet stored, per mailbox (None: none pending), drawn
        # from a stream of their own so the other draws do not depend on them.
        self.arrived: list[list[float] | None] = [None] * self.n
        self.lag_rng = random.Random(seed ^ 0x5A17)
        self.pending = [[0, 0, 0] for _ in range(self.n)]
        self.prov: list[ProviderRuntime | None] = []
        for name in PROVIDERS:
            model = scenario.providers[name]
            if name not in scenario.population.providers:
                self.prov.append(None)
                continue
            real = (
                policy.get_quota_preset(model.actual_quotas)[name] if model.actual_quotas else None
            )
            self.prov.append(
                ProviderRuntime(name, model, scenario.enforced(name), real, self.n, rng, self.prng)
            )
        k = scenario.daemon.processes
        self.pools = self._pools(scenario, pop, seed)
        self.tokens = self._tokens(scenario, pop, seed)
        self.env = simpy.Environment()
        # Bound once, not once per job: a job's end, a chunk's end, a chunk's resumption.
        self._on_end = self._finish
        self._on_pause = self._pause
        self._on_resume = self._resume_event
        # A job is its own end event, pushed on SimPy's calendar as ``Environment.schedule``
        # does (``_schedule``): one object per job, no event object and no call around it.
        self._calendar: list[Any] = self.env._queue
        self._eid = self.env._eid
        # Tier queues and worker pools; ``stations`` reads each tier like a station.
        self.workers = TierPools.for_profile(self.profile, k, self._start)
        self.stations = self.workers.views
        self.warm = 0.0 if mode == "drain" else scenario.run.warmup_s
        hours0 = [policy.hours_since(x, 0.0) for x in last]
        tier0 = [TIER_INDEX[policy.tier_for(h, self.profile)] for h in hours0]
        self.rec = Recorder(scenario, self.n, pop.last_success_at, np.array(tier0), self.warm)
        self.phases = [float(x) for x in rng.uniform(0, self.profile.scheduler_interval_s, k)]
        self.synced_once = bytearray(self.n)
        self.drained_at: float | None = None
        self._remaining = self.n
        # The drain's capacity is read when 95 % are done: one slow full sync must not
        # stand for the throughput of the whole deployment.
        self._t95_left = self.n - math.ceil(0.95 * self.n)
        self.t95: float | None = None
        self._done = self.env.event()
        self._res = r = scenario.resources
        # Read once per job: CPU ms per call, per message, per job, per connect; DB ms per
        # commit and per message.
        self._costs = (
            r.cpu_ms_per_call,
            r.cpu_ms_per_message,
            r.cpu_ms_per_job,
            r.cpu_ms_per_connect,
            r.db_commit_ms,
            r.db_ms_per_message,
        )
        self._dispatch_ms = scenario.resources.dispatch_ms
        self._overshoot = scenario.resources.scheduler_overshoot_ms / 1000.0
        self._late_rng = random.Random(seed ^ 0x1A7E)
        self._enqueue_ms = scenario.resources.enqueue_ms_per_job
        ce = scenario.population.changes_per_arrival
        de = scenario.population.deletes_per_arrival
        # Arrivals, flag changes and deletions as one Poisson stream split by share.
        self._all_events = 1 + ce + de
        self._p_added = 1 / self._all_events
        self._p_deleted = (1 + de) / self._all_events
        self.drain = mode == "drain"
        self._expiry = scenario.daemon.cursor_expiry_per_sync
        # Set to a list to record every job that walked on the virtual clock (tests).
        self.trace: list[JobTrace] | None = None
        # Full syncs stopped for quota: their requests, the first still to make, and the
        # messages still to store.
        self.resume: dict[int, tuple[tuple[Request, ...], int, int]] = {}
        self._chunk_wait = self.profile.full_sync_quota_wait_s
        # When each mailbox finished its first sync (drain runs: onboarding times).
        self.first_done = np.full(self.n, np.nan)
        # Jobs a worker took, warm-up included (benchmarks compare them with bare SimPy).
        self.jobs_started = 0

    @staticmethod
    def _pools(s: Scenario, pop: population.PopulationArrays, seed: int) -> ConnectionPools | None:
        is_imap = pop.provider == IMAP
        if not is_imap.any():
            return None
        cfg = s.daemon.imap
        # Own random streams: the other draws stay as they are without IMAP mailboxes.
        pools = ConnectionPools(
            is_imap,
            s.daemon.processes,
            cfg.idle_keepalive_s,
            cfg.max_idle_s,
            seed ^ 0x1AA9,
            reauth_bounds(cfg.reauth_after_s, pop.interval_s),
        )
        if s.population.initial in ("steady", "all_due") and not s.daemon.fresh_start:
            pools.warm(pop.last_success_at, pop.interval_s, np.random.default_rng([seed, 0x1AA9]))
        return pools

    @staticmethod
    def _tokens(s: Scenario, pop: population.PopulationArrays, seed: int) -> TokenCaches | None:
        oauth = pop.provider != IMAP
        if not oauth.any():
            return None
        lifetime = np.array([s.providers[p].token_lifetime_s for p in PROVIDERS])[pop.provider]
        caches = TokenCaches(oauth, s.daemon.processes, lifetime, seed ^ 0x70C3)
        if s.population.initial in ("steady", "all_due") and not s.daemon.fresh_start:
            caches.warm(pop.interval_s, np.random.default_rng([seed, 0x70C3]))
        return caches

    # --- processes -------------------------------------------------------------------

    def _scheduler(self, phase: float) -> Generator[simpy.Event, Any, None]:
        env, table, profile, arrive = self.env, self.table, self.profile, self.workers.arrive
        yield env.timeout(phase)
        period = profile.scheduler_interval_s
        while True:
            now = env.now
            plan = table.claim(now, profile)
            self.rec.cycle(now, len(plan))
            nsa = table.next_sync_at
            # The whole batch is enqueued at once (one bulk add) after the claim.
            ready = now + (self._dispatch_ms + self._enqueue_ms * len(plan)) / 1000.0
            for a in plan:
                ti = TIER_INDEX[a.tier]
                arrive(Job(a.mailbox_id, ti, a.kind, nsa[a.mailbox_id], now, ready), now, ti)
            # The event loop wakes the scheduler a little late, by a random amount.
            late = self._late_rng.expovariate(1 / self._overshoot) if self._overshoot else 0.0
            yield env.timeout(period + late)

    def _pushes(self) -> Generator[simpy.Event, Any, None]:
        share = self.s.daemon.push_share
        rates = np.asarray(self.rate) * share
        total = float(rates.sum())
        if total <= 0:
            return
        cum = np.cumsum(rates) / total
        rng = np.random.default_rng(self.prng.getrandbits(63))
        env, table, arrive = self.env, self.table, self.workers.arrive
        while True:
            gaps = rng.exponential(1 / total, 4096).tolist()
            picks = np.searchsorted(cum, rng.random(4096), side="right").tolist()
            for gap, m in zip(gaps, picks, strict=True):
                yield env.timeout(gap)
                m = min(m, self.n - 1)
                a = table.push(m, env.now, self.profile)
                if a is not None:
                    self.rec.push(env.now)
                    ready = env.now + (self._dispatch_ms + self._enqueue_ms) / 1000.0
                    arrive(Job(m, 0, a.kind, env.now, env.now, ready), env.now, 0)

    def _sampler(self) -> Generator[simpy.Event, Any, None]:
        env, every = self.env, self.s.run.sample_interval_s
        status = np.frombuffer(self.table.status, dtype=np.uint8)
        while True:
            yield env.timeout(every)
            if env.now >= self.warm:
                self.rec.sample(env.now, status == ACTIVE, self.stations)
                if self.pools is not None:
                    self.pools.sample(env.now)

    def _warmup(self) -> Generator[simpy.Event, Any, None]:
        yield self.env.timeout(self.warm)
        self.workers.reset_stats(self.env.now)
        for p in self.prov:
            if p is not None:
                p.reset_counters()
        if self.pools is not None:
            self.pools.reset_counters()
        if self.tokens is not None:
            self.tokens.reset_counters()
        self.rec.reset(self.env.now)

    # --- jobs ------------------------------------------------------------------------

    def _start(self, job: Job, now: float, wait: float, pool: int) -> None:
        # The hot path: runs once per job (attributes read once into locals).
        m = job.m
        job.pool = pool
        self.jobs_started += 1
        self.table.state[m] = RUNNING
        env_now = now
        queued = wait  # in the station's queue (Little's law), without the dispatch
        if job.ready > now:
            # A free worker takes the job once it is in the queue: the sync starts then.
            now = job.ready
            wait = now - job.enq
        job.started = now
        rnd = self.prng
        pv = self.prov[self.provider_of[m]]
        assert pv is not None  # every mailbox's provider has a runtime
        # Mail that arrived since contents were last drawn, kept until a sync succeeds.
        content_at = self.content_at
        rate = self.rate[m]
        mu = rate * (now - content_at[m])
        content_at[m] = now
        pend = self.pending[m]
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
                added = deleted = 0
                p_add, p_del = self._p_added, self._p_deleted
                for _ in range(events):
                    u = rnd.random()
                    if u < p_add:
                        added += 1
                    elif u < p_del:
                        deleted += 1
                pend[0] += added
                pend[1] += events - added - deleted
                pend[2] += deleted
                if added:
                    # Given their number, Poisson arrivals are uniform over the gap.
                    prev, lr = now - mu / rate, self.lag_rng
                    got = [prev + lr.random() * (now - prev) for _ in range(added)]
                    have = self.arrived[m]
                    if have is None:
                        self.arrived[m] = got
                    else:
                        have.extend(got)
                left = self.size[m] + added - deleted
                self.size[m] = left if left > 0 else 0
        kind = job.kind
        resume = self.resume.get(m) if self.resume else None
        first = 0
        if resume is not None:
            # Where the full sync stopped for quota (whatever kind the claim chose).
            reqs, first, stored = resume
            kind = FULL
        elif kind is FULL:
            size = self.size[m]
            reqs = pv.requests(FULL, size, 0, 0, 0)
            stored = size
        elif self._expiry and rnd.random() < self._expiry:
            # Cursor expired: the first incremental call fails, the job falls back to full.
            size = self.size[m]
            reqs = pv.requests(INCR, 0, 0, 0, 0)[:1] + pv.requests(FULL, size, 0, 0, 0)
            stored = size
            kind = FULL
        else:
            # The mailbox's size matters to an incremental sync on IMAP servers without
            # CONDSTORE (flag scan); the other providers' call models ignore it.
            added, changed, deleted = pend
            quiet = pv.quiet
            if quiet is not None and not (added or changed or deleted):
                reqs, stored = quiet, 0
            else:
                reqs = pv.requests(INCR, self.size[m], added, changed, deleted)
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
            k, r = tokens.k, tokens.row[m]
            i = r * k + int(tokens.rnd.random() * k) if k > 1 else r
            until = tokens.until
            if counting:
                tokens.syncs += 1
            if until[i] <= now:
                until[i] = now + tokens.serves[r]
                if counting:
                    tokens.refreshes += 1
                if not first:
                    # (A resumed chunk's token fetch is left out: its requests are walked
                    # in place.)
                    reqs = pv.with_token(reqs)
        p_auth, p_perm, p_any = pv.fail_p
        u = rnd.random()
        fail: ErrorKind | None = None
        n = len(reqs)
        if u < p_any:
            if u < p_auth:
                fail, n = ErrorKind.AUTH_REVOKED, 0
            elif u < p_perm:
                fail, n = ErrorKind.PERMANENT, 1
            else:
                fail, n = ErrorKind.TRANSIENT, 1 + int(rnd.random() * n)
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
            # One chunk committed; the rest waits for the quota, off the worker. Messages
            # are stored in proportion to the requests made (nearly all are batched gets).
            part = stored * (stop.at - first) // max(n - first, 1)
            self.resume[m] = (reqs, stop.at, stored - part)
            stored, fail, resume_at = part, None, t_end + stop.delay_s
        if proc >= 0:
            assert pools is not None
            pools.give_back(m, proc, t_end, fail is not None)
        if self.trace is not None:
            pe = (0, 0, 0) if kind is FULL else (pend[0], pend[1], pend[2])
            self.trace.append(JobTrace(m, pv.name, kind, self.size[m], *pe, proc, how, calls, fail))
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
        job.callbacks = [self._on_end if resume_at is None else self._on_pause]
        # _schedule(job, delay), inlined: once per job.
        delay = t_end - env_now + (cpu + db) / 1000.0
        _heappush(self._calendar, (self.env._now + delay, NORMAL, next(self._eid), job))

    def _schedule(self, job: Job, delay: float, callback: Callable[[Job], None]) -> None:
        """``Environment.schedule(job, NORMAL, delay)`` with ``callback`` as its one callback:
        a job has the two attributes SimPy's ``step`` reads from an event (``callbacks`` and
        ``_ok``), so it ends (or resumes) without an event object of its own."""
        job.callbacks = [callback]
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
        now, m, resume_at = self.env.now, job.m, job.resume_at
        assert resume_at is not None  # set for every chunk stopped for quota
        self.table.state[m] = QUEUED
        if now >= self.warm:
            self.rec.chunks += 1
        self.workers.depart(now, job.pool)
        at = max(resume_at, now)
        ready = at + self._dispatch_ms / 1000.0
        self._schedule(Job(m, job.tier, FULL, job.due, at, ready), at - now, self._on_resume)

    def _resume_event(self, job: Job) -> None:
        self.workers.arrive(job, job.enq, job.tier)

    def _finish(self, job: Job) -> None:
        """A job ended as its walk set: ``job.kind`` run, ``job.fail`` (None: success) and
        the last Retry-After ``job.ra``."""
        now, m = self.env.now, job.m
        kind, fail = job.kind, job.fail
        rec = self.rec
        tier = job.tier
        if fail is None:
            if self.resume:
                self.resume.pop(m, None)
            started = job.started
            self.table.succeed(m, started, now)
            pend = self.pending[m]
            pend[0] = pend[1] = pend[2] = 0
            rec.last[m] = now
            rec.tier[m] = tier
            arrived = self.arrived[m]
            if now >= self.warm:
                rec.successes += 1
                rec.attempts += 1
                rec.done_since += 1
                if kind is FULL:
                    rec.full_since += 1
                lag = now - job.due
                rec.lag.append(lag)
                rec.lag_tier[tier].append(lag)
                rec.durations[kind].append(now - started)
                if arrived is not None:
                    key = (self.provider_of[m], tier)
                    got = rec.msg_lag.get(key)
                    if got is None:
                        got = rec.msg_lag[key] = array("d")
                    got.extend([now - a for a in arrived])
            if arrived is not None:
                self.arrived[m] = None
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

    def _onboarding(self) -> dict[str, float]:
        """Time to the first complete sync, over all mailboxes and the smaller half."""
        done = self.first_done
        small = np.asarray(self.pop.size) <= np.median(self.pop.size)
        out = {"partial_runs": float(self.rec.chunks)}
        for name, sel in (("all", np.ones(self.n, dtype=bool)), ("small", small)):
            got = done[sel & ~np.isnan(done)]
            if got.size:
                out[f"onboard_p50_s_{name}"] = float(np.percentile(got, 50))
                out[f"onboard_p95_s_{name}"] = float(np.percentile(got, 95))
        return out

    # --- run -------------------------------------------------------------------------

    def run(self) -> RunMetrics:
        """Simulate the horizon (or until drained) and return the measured figures."""
        env = self.env
        for ph in self.phases:
            env.process(self._scheduler(ph))
        env.process(self._pushes())
        # The run allocates millions of short-lived objects that reference counting frees
        # (jobs, events, tuples) and keeps large long-lived ones (mailbox columns, request
        # tuples): the cyclic collector only rescans the latter, 5-10 % of the run, so it
        # is paused while the calendar runs and put back as it was.
        collecting = gc.isenabled()
        gc.disable()
        try:
            if self.mode == "drain":
                cap = max(self.s.run.horizon_s, 1.0)
                env.run(until=env.any_of([self._done, env.timeout(cap)]))
            else:
                env.process(self._sampler())
                if self.warm > 0:
                    env.process(self._warmup())
                env.run(until=self.s.run.horizon_s)
        finally:
            if collecting:
                gc.enable()
        end = env.now
        self.workers.close(end)
        out = self.rec.finish(end, self.stations, self.prov, self.drained_at, self.t95, self.table)
        # Every worker allowed to take a high job, busy (the fast path's worker utilisation).
        window = out.scalars["window_s"]
        out.scalars["util_serving_high"] = self.workers.serving_utilisation(0, window)
        if self.pools is not None:
            out.scalars.update(self.pools.scalars(out.scalars["window_s"]))
        if self.tokens is not None:
            out.scalars.update(self.tokens.scalars())
            imap = self.s.providers.imap
            out.scalars["imap_conn_limit"] = float(imap.connection_limit)
        if self.drain:
            out.scalars.update(self._onboarding())
        if self.drain and self.t95 is None and end > 0:
            # Not even 95 % synced by the cap: what was done is a lower bound of capacity.
            out.scalars["capacity_per_min"] = (self.n - self._remaining) / end * 60
        return out
