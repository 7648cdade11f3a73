"""The event simulation of the daemon: schedulers, tier queues, workers, pushes, sampling.

SimPy is the calendar, stepped by ``simulator.model.calendar.run_until``. Jobs are
callback-driven (no process per job): a job's life is in ``simulator.model.lifecycle`` (the
common incremental sync in one step in ``simulator.model.plain``), its request walks through
the quota gates in ``simulator.model.job`` and ``simulator.model.general_walk``.
"""

from __future__ import annotations

import gc
import heapq
import math
import random
from collections.abc import Generator
from typing import Any, Literal

import numpy as np
import simpy

from daemon import policy
from daemon.policy import SyncKind
from simulator.inputs import population
from simulator.inputs.providers import IMAP, PROVIDERS
from simulator.inputs.scenario import Scenario
from simulator.model.calendar import run_until
from simulator.model.gate import ProviderRuntime
from simulator.model.imap_pool import ConnectionPools, reauth_bounds
from simulator.model.job import Callbacks, Job
from simulator.model.job import JobTrace as JobTrace  # re-exported: tests read traces
from simulator.model.lifecycle import JobLife
from simulator.model.mailboxes import ACTIVE, Box, MailboxTable
from simulator.model.metrics import Recorder, RunMetrics
from simulator.model.plain import PlanMemo, plain_provider, plans_for
from simulator.model.station import TierPools
from simulator.model.tokens import TokenCaches

Mode = Literal["steady", "drain"]
TIER_INDEX = {t: i for i, t in enumerate(policy.TIERS)}
_exp = math.exp
_heappush = heapq.heappush
FULL, INCR = SyncKind.FULL, SyncKind.INCREMENTAL


class Simulation(JobLife):
    """One replication of a scenario; ``mode='drain'`` makes every mailbox due at t=0.

    Built in steps, in the order their random draws are made: the population and its
    table, the providers, connection pools and token caches, the calendar and worker pools,
    the recorder and the schedulers' phases, then the per-job constants.
    """

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
        self.lag_rng = random.Random(seed ^ 0x5A17)
        self.prov = self._providers(scenario, self.n, rng, self.prng)
        k = scenario.daemon.processes
        self.pools = self._pools(scenario, pop, seed)
        self.tokens = self._tokens(scenario, pop, seed)
        self.boxes = Box.all(pop, self.prov, self.tokens)
        self._calendar_and_workers(k)
        self.warm = 0.0 if mode == "drain" else scenario.run.warmup_s
        hours0 = [policy.hours_since(x, 0.0) for x in last]
        tier0 = [TIER_INDEX[policy.tier_for(h, self.profile)] for h in hours0]
        self.rec = Recorder(scenario, self.n, pop.last_success_at, np.array(tier0), self.warm)
        self.phases = [float(x) for x in rng.uniform(0, self.profile.scheduler_interval_s, k)]
        self._drain_state(mode)
        self._job_constants(scenario, seed)
        # Set to a list to record every job that walked on the virtual clock (tests).
        self.trace: list[JobTrace] | None = None
        # Jobs put on a tier queue (claimed, pushed or a chunk's resumption), warm-up
        # included: with those still waiting, the jobs started (``jobs_started``).
        self._enqueued = 0

    @property
    def jobs_started(self) -> int:
        """Jobs a worker took, warm-up included (benchmarks compare them with bare SimPy):
        every job enqueued but those still waiting, counted so rather than once per start."""
        return self._enqueued - sum(len(q) for q in self.workers.queues)

    @staticmethod
    def _providers(
        s: Scenario, n: int, rng: np.random.Generator, prng: random.Random
    ) -> list[ProviderRuntime | None]:
        """Each provider's runtime, indexed as ``PROVIDERS`` (None: no mailbox uses it)."""
        out: list[ProviderRuntime | None] = []
        for name in PROVIDERS:
            model = s.providers[name]
            if name not in s.population.providers:
                out.append(None)
                continue
            real = (
                policy.get_quota_preset(model.actual_quotas)[name] if model.actual_quotas else None
            )
            out.append(ProviderRuntime(name, model, s.enforced(name), real, n, rng, prng))
        return out

    def _calendar_and_workers(self, processes: int) -> None:
        """SimPy's environment, the jobs' callbacks on its calendar, the tier pools."""
        self.env = simpy.Environment()
        # A job's callbacks on the calendar, built once, not once per job: its end, a chunk's
        # end, a chunk's resumption (SimPy's ``step`` only iterates them).
        self._on_end: Callbacks = (self._finish,)
        self._on_pause: Callbacks = (self._pause,)
        self._on_resume: Callbacks = (self._resume_event,)
        # A job is its own end event, pushed on SimPy's calendar as ``Environment.schedule``
        # does (``_schedule``): one object per job, no event object and no call around it.
        self._calendar: list[Any] = self.env._queue
        # Finished jobs, whose objects the next claims reuse: building a slotted object
        # through its Python ``__init__`` costs as much as the rest of its enqueueing.
        self._spare: list[Job] = []
        self._eid = self.env._eid
        # Tier queues and worker pools; ``stations`` reads each tier like a station.
        self.workers = TierPools.for_profile(self.profile, processes, self._start)
        self.stations = self.workers.views

    def _drain_state(self, mode: Mode) -> None:
        """What a drain run follows: first syncs done, and when 95 % and all were done."""
        self.drain = mode == "drain"
        self.synced_once = bytearray(self.n)
        self.drained_at: float | None = None
        self._remaining = self.n
        # The drain's capacity is read when 95 % are done: one slow full sync must not
        # stand for the throughput of the whole deployment.
        self._t95_left = self.n - math.ceil(0.95 * self.n)
        self.t95: float | None = None
        self._done = self.env.event()
        # When each mailbox finished its first sync (drain runs: onboarding times).
        self.first_done = np.full(self.n, np.nan)

    def _job_constants(self, scenario: Scenario, seed: int) -> None:
        """Figures every job reads, looked up once: resource costs, dispatch delays, the
        split of mail events by kind, cursor expiry, the full sync's quota budget."""
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
        self._expiry = scenario.daemon.cursor_expiry_per_sync
        self._chunk_wait = self.profile.full_sync_quota_wait_s
        self._plain: list[PlanMemo | None] = [
            {} if pv is not None and plain_provider(pv) else None for pv in self.prov
        ]
        self._quiet_plans = [
            plans_for(pv, pv.quiet, self._costs) if memo is not None and pv and pv.quiet else None
            for pv, memo in zip(self.prov, self._plain, strict=True)
        ]

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
        env, table, profile, workers = self.env, self.table, self.profile, self.workers
        spare = self._spare
        yield env.timeout(phase)
        period = profile.scheduler_interval_s
        while True:
            now = env.now
            plan = table.claim_rows(now, profile)
            self.rec.cycle(now, len(plan))
            nsa = table.next_sync_at
            # The whole batch is enqueued at once (one bulk add) after the claim. (Its jobs
            # are built before any starts: a start changes no mailbox's ``next_sync_at``.)
            ready = now + (self._dispatch_ms + self._enqueue_ms * len(plan)) / 1000.0
            jobs, tiers = [], []
            for m, tier, kind in plan:
                ti = TIER_INDEX[tier]
                tiers.append(ti)
                if spare:
                    # A finished job's object, as ``Job(...)`` would set it (the fields its
                    # start sets are set again when it starts).
                    job = spare.pop()
                    job.m, job.tier, job.kind, job.due, job.enq = m, ti, kind, nsa[m], now
                    job.ready = ready
                else:
                    job = Job(m, ti, kind, nsa[m], now, ready)
                jobs.append(job)
            self._enqueued += len(jobs)
            workers.arrive_many(jobs, tiers, now)
            # The event loop wakes the scheduler a little late, by a random amount.
            late = self._late_rng.expovariate(1 / self._overshoot) if self._overshoot else 0.0
            yield env.timeout(period + late)

    def _pushes(self) -> Generator[simpy.Event, Any, None]:
        share = self.s.daemon.push_share
        rates = self.pop.arrivals_per_s * share
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
                    self._enqueued += 1
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
                run_until(env, env.any_of([self._done, env.timeout(cap)]))
            else:
                env.process(self._sampler())
                if self.warm > 0:
                    env.process(self._warmup())
                run_until(env, self.s.run.horizon_s)
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
