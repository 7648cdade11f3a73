"""The fast path: the daemon's steady state in closed form, vectorised over configurations.

A scenario's per-sync figures (service time, API units, CPU, DB) are sampled once with the
same request model and quota arithmetic as the event simulation (``job_profile``); then
``evaluate`` computes throughput, capacity, waits, staleness, resources and cost for whole
numpy grids of tenants x processes x concurrency x interval x instance at once.

Queue waits use the batch-drain approximation: each of K unsynchronised schedulers releases
b = λT/K jobs per cycle onto c workers, so jobs wait for the batch ahead of them to drain
(``closed_forms.batch_drain_mean``); M/M/c would predict almost no wait at all.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from daemon import policy
from daemon.oauth import EXPIRY_MARGIN_S
from daemon.policy import QuotaScope, SyncKind
from simulator import closed_forms as cf
from simulator import in_flight, population, resources
from simulator.catalogue import load_catalogue
from simulator.distributions import mean as dist_mean
from simulator.gate import LOGIN, NOOP, ProviderRuntime, Request
from simulator.imap_pool import ImapProfile, pool_costs
from simulator.scenario import IMAP, PROVIDERS, Scenario
from simulator.tokens import refresh_share

Arr = np.ndarray


@dataclass(frozen=True)
class JobProfile:
    """Per-sync figures of one scenario's population (independent of its size)."""

    s_inc: float  # mean incremental job time, seconds (API, gates, CPU, DB)
    s2_inc: float  # its second moment
    s_full: float  # mean worker time of a full sync (its chunks, when chunked)
    s_full_p99: float  # 99th percentile of its length, start to end
    full_share: float  # share of jobs that are full syncs (cursor expiry)
    full_jobs: float  # jobs (chunks) per full sync: 1 unless quota-chunked
    app_units: dict[str, float]  # app-scope quota -> units per sync (population mix)
    app_rate: dict[str, float]  # app-scope quota -> sustained units per second
    cpu_ms: float  # per sync
    # Per sync as a run of the scenario measures it, and the share of full syncs' worker time
    # it counts (``evaluate(run_window=True)``): less of the full syncs than the steady state.
    cpu_ms_run: float
    run_held_share: float
    db_ms: float  # per sync
    requests: float  # HTTP requests per sync
    error_rate: float
    mailboxes_per_tenant: float
    inv_interval: float  # E[1 / interval] over mailboxes
    imap: ImapProfile | None = None  # None: no IMAP mailboxes
    # OAuth mailboxes (Gmail, Graph): their share, a token request's mean latency and how
    # long a token serves a process.
    oauth_share: float = 0.0
    token_s: float = 0.0
    token_serves_s: float = 3479.0
    # Push notifications: per-mailbox rates (share of arrivals that notify x arrivals per
    # second) in up to 16 groups, with the share of mailboxes in each; empty without push.
    push_rates: tuple[float, ...] = ()
    push_weights: tuple[float, ...] = ()
    # Scheduled incremental jobs still in service at ``in_flight.PHASES`` instants of the
    # scheduler's cycle after their batch's release, per job released each cycle (this
    # batch's and earlier ones'); empty: none sampled.
    in_service: tuple[float, ...] = ()


def _walk(
    pv: ProviderRuntime, idx: int, reqs: tuple[Request, ...], budget: float | None = None
) -> tuple[float, float, int, int, int]:
    """A job alone on its mailbox's buckets (the event simulation's virtual clock): its
    length, the part of it that holds a worker, quota units, calls and jobs (chunks).

    With ``budget`` (a chunked full sync) a wait past it is spent off the worker, as the
    daemon's gate and the event model's walk decide (``policy.quota_deferral``).
    """
    mb = pv.mailbox_buckets(idx) if pv.mb_quotas else None
    t = pv.overhead()
    held, run_wait = t, 0.0
    units = calls = 0
    chunks = 1
    for sampler, inner, u, _ru, extra in reqs:
        if mb:
            later = None if budget is None else pv.mailbox_deferral(mb, t, u, run_wait, budget)
            if later is not None:
                # A new run starts when the quota is back, off the worker: a job of its own
                # that pays the sync's fixed cost again before it asks the gate, as every
                # job does in the event model (the fixed cost is no refill: a bucket holds
                # at most its burst). With the plan's 2 s jobs that is minutes of worker
                # time per full sync where one fixed cost counted seconds.
                run_wait = 0.0
                oh = pv.overhead()
                t += later + oh
                held += oh
                chunks += 1
            t2 = pv.gate_mailbox(mb, t, u)
            run_wait += t2 - t
            held += t2 - t
            t = t2
        lat = sampler() + extra
        t += lat
        held += lat
        units += u
        calls += inner
    return t, held, units, calls, chunks


def job_profile(
    s: Scenario, samples: int = 2000, full_samples: int = 200, seed: int = 7
) -> JobProfile:
    """Sample the scenario's syncs once (seeded) to get the fast path's per-sync figures."""
    import random

    rng = np.random.default_rng(seed)
    small = s.updated({"population.tenants": min(s.population.tenants, samples)})
    pop = population.build(small, rng)
    n = pop.n
    limits = s.limits()
    r = s.resources
    prng = random.Random(seed)
    runtimes = {
        p: ProviderRuntime(p, s.providers[p], s.enforced(p), None, n + full_samples, rng, prng)
        for p in s.population.providers
    }
    pe = s.population
    mu = pop.arrivals_per_s * pop.interval_s
    added = rng.poisson(mu)
    other = rng.poisson(mu * (pe.changes_per_arrival + pe.deletes_per_arrival))
    share_del = pe.deletes_per_arrival / max(pe.changes_per_arrival + pe.deletes_per_arrival, 1e-12)
    deleted = rng.binomial(other, share_del)
    dur, cpu, db, reqs_n, api = np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n)
    units: dict[str, np.ndarray] = {}
    for i in range(n):
        p = PROVIDERS[pop.provider[i]]
        pv = runtimes[p]
        a, d = int(added[i]), int(deleted[i])
        c = int(other[i]) - d
        reqs = pv.requests(SyncKind.INCREMENTAL, int(pop.size[i]), a, c, d)
        t, _held, u, calls, _chunks = _walk(pv, i, reqs)
        stored = a + c
        cpu[i] = r.cpu_ms_per_call * calls + r.cpu_ms_per_message * stored + r.cpu_ms_per_job
        db[i] = r.db_commit_ms + r.db_ms_per_message * stored
        dur[i] = t + (cpu[i] + db[i]) / 1000
        api[i] = t
        # Requests through the Redis-backed gate (IMAP passes none).
        reqs_n[i] = len(reqs) if pv.gated else 0
        for q in pv.app_quotas:
            units.setdefault(q.name, np.zeros(n))[i] = u
    fdur = np.zeros(full_samples)
    fheld = np.zeros(full_samples)
    fcpu = np.zeros(full_samples)
    budget = s.profile().full_sync_quota_wait_s
    funits: dict[str, np.ndarray] = {}
    fjobs = np.ones(full_samples)
    pick = rng.integers(0, n, full_samples)
    for j, i in enumerate(pick):
        pv = runtimes[PROVIDERS[pop.provider[i]]]
        size = int(pop.size[i])
        reqs = pv.requests(SyncKind.FULL, size, 0, 0, 0)
        t, held, u, calls, chunks = _walk(pv, n + j, reqs, budget if pv.chunks_full else None)
        fjobs[j] = chunks
        # Every chunk is a job with its own commit (as in the event model).
        fcpu[j] = (
            r.cpu_ms_per_call * calls + r.cpu_ms_per_message * size + r.cpu_ms_per_job * chunks
        )
        fdb = r.db_commit_ms * chunks + r.db_ms_per_message * size
        fdur[j] = t + (fcpu[j] + fdb) / 1000
        fheld[j] = held + (fcpu[j] + fdb) / 1000
        for q in pv.app_quotas:
            funits.setdefault(q.name, np.zeros(full_samples))[j] = u
    # A full sync's CPU grows with its mailbox (a call and a stored row per message) and the
    # sizes are heavy-tailed: the mean of 200 walks is left to chance (±10 % with the default
    # lognormal, σ = 1), so calls and rows are counted on every sampled mailbox (the calls
    # do not depend on the walk) and the walks give only the chunks.
    fcalls = np.array(
        [
            sum(
                c.count
                for c in policy.sync_calls(
                    PROVIDERS[pop.provider[i]], SyncKind.FULL, int(pop.size[i]),
                    shape=runtimes[PROVIDERS[pop.provider[i]]].shape,
                )
            )
            for i in range(n)
        ]
    )  # fmt: skip
    full_cpu = (
        r.cpu_ms_per_call * float(fcalls.mean())
        + r.cpu_ms_per_message * float(pop.size.mean())
        + r.cpu_ms_per_job * float(fjobs.mean())
    )
    # A run counts from its warm-up to its horizon and starts with no full sync under way, so
    # it misses part of those longer than its warm-up (Gmail's, quota-bound: with 2 s jobs
    # about 0.6 s a message at the 2026 quota, 50 minutes for 5,000). At an instant t the full
    # syncs started since 0 do min(1, t / L) of their steady work (a sync of length L works
    # evenly over it: its chunks come at the quota's pace); averaged over the window and
    # weighted by each sync's CPU or worker time, that is the share of it a run counts.
    ts = np.linspace(s.run.warmup_s, s.run.horizon_s, 64)
    seen = np.minimum(1.0, ts[None, :] / np.maximum(fdur[:, None], 1e-9)).mean(axis=1)
    run_cpu = float(np.sum(fcpu * seen) / max(float(np.sum(fcpu)), 1e-12))
    run_held = float(np.sum(fheld * seen) / max(float(np.sum(fheld)), 1e-12))
    f = s.daemon.cursor_expiry_per_sync
    app_units = {
        k: (1 - f) * float(v.mean()) + f * float(funits.get(k, np.zeros(1)).mean())
        for k, v in units.items()
    }
    app_rate = {
        q.name: q.sustained_per_s
        for lim in limits.values()
        for q in lim.quotas
        if q.scope is QuotaScope.APP and q.name in app_units
    }
    err = {p: s.providers[p].errors for p in s.population.providers}
    shares = s.population.providers
    error_rate = sum(
        shares[p] * (e.auth_revoked + e.permanent + e.transient) for p, e in err.items()
    )
    imap = None
    is_imap = pop.provider == IMAP
    if is_imap.any():
        pv, model, pool = runtimes["imap"], s.providers.imap, s.daemon.imap
        imap = ImapProfile(
            share=float(is_imap.mean()),
            login_s=pv.setup_mean_s(LOGIN),
            noop_s=pv.setup_mean_s(NOOP),
            login_calls=pv.setup_calls(LOGIN),
            busy_s=float(api[is_imap].mean()),
            keepalive_s=pool.idle_keepalive_s,
            max_idle_s=pool.max_idle_s,
            reauth_after_s=pool.reauth_after_s,
            connection_limit=model.connection_limit,
        )
    oauth = pop.provider != IMAP
    token_s = serves = 0.0
    if oauth.any():
        provs = [PROVIDERS[int(x)] for x in pop.provider[oauth]]
        token_s = float(np.mean([runtimes[p].token_request[0].mean for p in provs]))
        serves = float(np.mean([s.providers[p].token_lifetime_s for p in provs])) - EXPIRY_MARGIN_S
    push_rates, push_weights = _push_groups(pop.arrivals_per_s * s.daemon.push_share)
    period = s.profile().scheduler_interval_s
    in_service = in_flight.in_service(dur, period)
    return JobProfile(
        s_inc=float(dur.mean()),
        s2_inc=float(np.mean(dur**2)),
        s_full=float(fheld.mean()),
        s_full_p99=float(np.percentile(fdur, 99)),
        full_share=f,
        app_units=app_units,
        app_rate=app_rate,
        full_jobs=float(fjobs.mean()),
        cpu_ms=(1 - f) * float(cpu.mean()) + f * full_cpu,
        cpu_ms_run=(1 - f) * float(cpu.mean()) + f * full_cpu * run_cpu,
        run_held_share=run_held,
        db_ms=float(db.mean()),
        requests=float(reqs_n.mean()),
        error_rate=error_rate,
        mailboxes_per_tenant=population.expected_mailboxes(s) / s.population.tenants,
        inv_interval=float(np.mean(1 / pop.interval_s)),
        imap=imap,
        oauth_share=float(oauth.mean()),
        token_s=token_s,
        token_serves_s=max(1.0, serves),
        push_rates=push_rates,
        push_weights=push_weights,
        in_service=tuple(float(x) for x in in_service),
    )


def _push_groups(
    rates: np.ndarray, groups: int = 16
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-mailbox push rates as (rate, share) groups: the distinct rates (activity classes),
    or the means of ``groups`` quantile bins when there are more."""
    if rates.size == 0 or float(rates.max()) <= 0:
        return (), ()
    values, counts = np.unique(rates, return_counts=True)
    if values.size > groups:
        order = np.sort(rates)
        bins = np.array_split(order, groups)
        values = np.array([b.mean() for b in bins])
        counts = np.array([b.size for b in bins])
    w = counts / counts.sum()
    return tuple(float(x) for x in values), tuple(float(x) for x in w)


def push_cycle(rates: Arr, d_claim: Arr) -> tuple[Arr, Arr, Arr]:
    """A mailbox's sync cycle when pushes (Poisson, rate r) can cut it short.

    From a sync's start the next one is claimed at ``d_claim`` (interval + claim wait)
    unless a push comes first (X ~ Exp(r)): then it is enqueued at once. Either way it
    starts a dispatch and a queue wait later. With M = min(X, d_claim): returns
    E[M], E[M²] and P(push first) = 1 - exp(-r d_claim), broadcast over ``rates``' last axis.
    """
    r = np.asarray(rates, dtype=float)
    d = np.asarray(d_claim, dtype=float)[..., None]
    rd = r * d
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        e = np.exp(-rd)
        p_push = -np.expm1(-rd)
        m1 = np.where(r > 0, p_push / np.where(r > 0, r, 1.0), d)
        m2 = np.where(r > 0, 2 / np.where(r > 0, r, 1.0) ** 2 * (p_push - rd * e), d**2)
    return m1, m2, p_push


def age_quantile(q: float, rates: Arr, weights: Arr, span: Arr) -> Arr:
    """The ``q`` quantile of staleness over mailboxes whose syncs come every ``span`` seconds
    or at a push (rate r), whichever first: P(age > a) = (e^(-r a) - e^(-r L)) / (1 - e^(-r L))
    on [0, L] per group (uniform when r = 0), mixed with ``weights``. Bisection."""
    r = np.asarray(rates, dtype=float)
    w = np.asarray(weights, dtype=float)
    big = np.asarray(span, dtype=float)
    lo = np.zeros_like(big)
    hi = big.copy()

    def survival(a: Arr) -> Arr:
        rl = r * big[..., None]
        ra = r * a[..., None]
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            pushed = (np.exp(-ra) - np.exp(-rl)) / -np.expm1(-rl)
            flat = 1 - a[..., None] / big[..., None]
            sj = np.where(r > 0, pushed, flat)
        return np.asarray(np.sum(w * np.clip(sj, 0.0, 1.0), axis=-1), dtype=float)

    for _ in range(40):
        mid = (lo + hi) / 2
        above = survival(mid) > 1 - q
        lo = np.where(above, mid, lo)
        hi = np.where(above, hi, mid)
    out: Arr = (lo + hi) / 2
    return out


RATIO_NAMES = [
    "workers",
    "scheduler batch (claim rate)",
    "CPU",
    "RAM",
    "database",
    "Redis",
    "IMAP connections per account",
]


def claim_wait(
    period: float, k: Arr, interval: Arr, dispatch: Arr, wait: Arr | float, overshoot: float = 0.0
) -> Arr:
    """Mean time from a mailbox falling due to a scheduler claiming it.

    A mailbox is due one interval after its sync started, a dispatch delay (plus any queue
    wait) ``c`` after the cycle that claimed it. When the interval is a whole number ``n``
    of scheduler periods, the cycle ``n`` periods later is late by the sum ``X`` of ``n``
    cycles' overshoots (each the event loop's lateness, exponential with mean
    ``overshoot``): if ``X >= c`` the mailbox is due before that cycle and waits ``X - c``;
    otherwise it just missed it and waits almost a whole cycle. So the mean wait is
    ``E[X] - c + P(X < c) × cycle``, a K-th of the cycle with K schedulers taken in phase
    order. Otherwise due instants fall anywhere in the cycle and the wait to the next of K
    randomly phased cycles is ``period / (K + 1)`` on average.
    """
    from scipy.special import gammainc

    k_arr = np.asarray(k, dtype=float)
    i = np.asarray(interval, dtype=float)
    frac = np.mod(i, period) / period
    locked = (frac < 1e-6) | (frac > 1 - 1e-6)
    cycle = (period + overshoot) / k_arr
    n = np.maximum(np.rint(i / period), 1.0)
    c = np.asarray(dispatch, dtype=float) + np.asarray(wait, dtype=float)
    if overshoot > 0:
        missed = gammainc(n, np.maximum(c, 0.0) / overshoot)
    else:
        missed = np.where(c > 0, 1.0, 0.0)
    after = n * overshoot - c + missed * cycle
    out: Arr = np.where(locked, np.clip(after, 0.0, cycle), period / (k_arr + 1))
    return out


def evaluate(
    s: Scenario,
    p: JobProfile,
    tenants: Arr,
    processes: Arr,
    hosts: Arr | None = None,
    conc_scale: Arr | float = 1.0,
    interval: Arr | float | None = None,
    instance: Arr | None = None,
    run_window: bool = False,
) -> dict[str, Arr]:
    """Steady-state figures for every configuration (arrays broadcast together).

    ``instance`` holds indices into the catalogue's instance list (default: the scenario's).
    ``run_window``: the figures a run of the scenario measures instead (its warm-up and
    horizon; only long full syncs differ, see ``JobProfile.cpu_ms_run``), to check the fast
    path against the event model; plans use the steady state.
    """
    prof = s.profile()
    share = p.run_held_share if run_window else 1.0
    s_full, cpu_ms = p.s_full * share, p.cpu_ms_run if run_window else p.cpu_ms
    cat = load_catalogue(s.costs.catalogue)
    names = list(cat.instances)
    inst_idx = np.asarray(names.index(s.daemon.instance) if instance is None else instance)
    vcpu = np.array([cat.instances[n].vcpu for n in names], dtype=float)[inst_idx]
    ram_cap = np.array([cat.instances[n].ram_gb for n in names])[inst_idx]
    price = np.array([cat.instances[n].usd_month for n in names])[inst_idx]
    k = np.asarray(processes, dtype=float)
    h = k if hosts is None else np.asarray(hosts, dtype=float)
    n = np.asarray(tenants, dtype=float) * p.mailboxes_per_tenant
    inv_i = p.inv_interval if interval is None else 1 / np.asarray(interval, dtype=float)
    mean_i = 1 / np.asarray(inv_i)
    lam = n * inv_i / (1 - p.error_rate)  # syncs per second, retries included
    # Mailboxes synced every interval stay in the tier of their age; normally high.
    tier = policy.tier_for(float(np.max(mean_i)) / 3600, prof)
    scale = np.asarray(conc_scale, dtype=float)
    # The workers that may serve that tier: its own pool, and when work conserving the lower
    # pools too, whose own queues are then empty (every mailbox is in this one tier).
    c_tier = np.maximum(1, np.rint(scale * policy.workers_serving(tier, prof)))
    c_all = np.maximum(1, np.rint(scale * prof.concurrency.total))
    c = k * c_tier
    period = prof.scheduler_interval_s
    f = p.full_share
    r = s.resources
    demand = lam
    # Push notifications: Poisson syncs on the high queue beside the batch releases.
    has_push = bool(p.push_rates)
    pr = np.asarray(p.push_rates if has_push else (0.0,), dtype=float)
    pw = np.asarray(p.push_weights if has_push else (1.0,), dtype=float)
    lam_p: Arr = np.zeros_like(lam)
    w_prev: Arr | float = 0.0  # scheduled jobs' queue wait beyond their dispatch
    b_prev = np.minimum(lam * period / k, prof.batch_size)
    dispatch = (r.dispatch_ms + r.enqueue_ms_per_job * b_prev) / 1000
    over = r.scheduler_overshoot_ms / 1000
    claim_mean = claim_wait(period, k, mean_i, dispatch, w_prev, over)
    # Intervals of whole scheduler periods: due instants re-align to the claims, and the
    # batches even out (``cf.equal_batch_wait``); otherwise they follow the phases.
    frac = np.mod(np.asarray(mean_i, dtype=float), period) / period
    locked = (frac < 1e-6) | (frac > 1 - 1e-6)
    # Service-time variability of incremental jobs (squared coefficient of variation).
    var_inc = max(p.s2_inc - p.s_inc**2, 0.0)
    # A mailbox is due one interval after its sync *started*, so each cycle lasts the
    # interval plus the claim wait and the queue wait: the rate is N / (I + claim + wait).
    # Three passes settle the wait and the rate it depends on.
    for _ in range(3):
        # IMAP connection set-up depends on how far apart a mailbox's syncs are.
        gap = mean_i + claim_mean + dispatch + w_prev
        pool = pool_costs(
            p.imap, n, gap, k, r.cpu_ms_per_call, interval=mean_i,
            cpu_ms_per_connect=r.cpu_ms_per_connect,
        )  # fmt: skip
        tok_s = p.oauth_share * refresh_share(gap, k, p.token_serves_s) * p.token_s
        s_inc = p.s_inc + pool.extra_s + tok_s
        s_mean = (1 - f) * s_inc + f * (s_full + pool.extra_s + tok_s)
        cs2 = var_inc / np.maximum(s_inc, 1e-12) ** 2
        cpu_s = (cpu_ms + pool.extra_cpu_ms) / 1000
        # Capacity: the smallest of the independent ceilings.
        caps = [c / s_mean, k * prof.batch_size / period]
        cpu_cap = k * 1.0 / np.maximum(cpu_s, 1e-12)  # one event loop per process
        caps.append(cpu_cap)
        for q, units in p.app_units.items():
            if units > 0:
                caps.append(np.full_like(lam, p.app_rate[q] / units))
        shape = np.broadcast(lam, c, k, s_mean).shape
        x_max = np.minimum.reduce([np.broadcast_to(x, shape) for x in caps])
        stable = lam < 0.98 * x_max
        # Waits. Scheduled syncs: batches released by K randomly phased schedulers, each
        # the mailboxes due since the cycle before (``cf.batch_release_wait``), on the
        # workers that long (full) syncs and push syncs leave free. Push syncs arrive at
        # random and queue behind the batches' time-average backlog.
        lam_s = np.maximum(lam - lam_p, 0.0)
        busy_long = lam * f * s_full + lam_p * s_inc
        c_eff = np.maximum(c - busy_long, 1)
        w_s = np.where(
            locked,
            cf.equal_batch_wait(lam_s, c_eff, s_inc, cs2, period, k),
            cf.batch_release_wait(lam_s, c_eff, s_inc, cs2, period, k),
        )
        # The job-weighted batch: larger batches hold more jobs (and take longer to enqueue).
        _b_mean, b_spaced = cf.spacing_moments(period, k)
        b_jobs = np.where(locked, period / k, b_spaced)
        dispatch = (r.dispatch_ms + r.enqueue_ms_per_job * lam_s * b_jobs) / 1000
        push_dispatch = (r.dispatch_ms + r.enqueue_ms_per_job) / 1000
        w_p = lam_s * w_s * s_inc / c_eff + cf.allen_cunneen_wait(c, lam, s_inc, var_inc + s_inc**2)
        w_s = np.where(stable, w_s, np.inf)
        w_p = np.where(stable, w_p, np.inf)
        w_prev = np.where(stable, w_s, 0.0)
        claim_mean = claim_wait(period, k, mean_i, dispatch, w_prev, over)
        # Each mailbox: claimed an interval plus the claim wait after its start, or pushed.
        d_claim = mean_i + claim_mean
        d_start = dispatch + w_prev
        m1, m2, p_push = push_cycle(pr, d_claim)
        cycle_j = m1 + np.asarray(d_start)[..., None]
        per_box = np.sum(pw / cycle_j, axis=-1)
        push_box = np.sum(pw * p_push / cycle_j, axis=-1)
        lam = np.where(stable, n * per_box / (1 - p.error_rate), demand)
        lam_p = np.where(stable, n * push_box / (1 - p.error_rate), 0.0)
    lam_s = np.maximum(lam - lam_p, 0.0)
    thr = np.minimum(lam, x_max)
    # The mean wait of all high-queue jobs, their dispatch included (as the event model
    # measures it: from the enqueue to the start of the sync).
    # A quota-chunked full sync's later chunks are jobs too: each is queued again when its
    # quota is back, at random instants like a push (only the dispatch, no bulk enqueue).
    # With the model's latencies they are a fifth to a quarter of the high queue's jobs on
    # the presets and wait little, which the mean of every job counts.
    lam_ch = lam * f * (p.full_jobs - 1) * share
    chunk_dispatch = r.dispatch_ms / 1000
    with np.errstate(divide="ignore", invalid="ignore"):
        w_all = (
            lam_s * (dispatch + w_s)
            + lam_p * (push_dispatch + w_p)
            + lam_ch * (chunk_dispatch + w_p)
        ) / np.maximum(lam + lam_ch, 1e-300)
    w_mean = np.where(stable, np.where(lam > 0, w_all, dispatch + w_s), np.inf)
    # The longest wait: the job last in the batch behind the longest spacing.
    b_big = np.where(
        locked,
        lam_s * period / k + 2 * np.sqrt(lam_s * period / k),
        lam_s * period * cf.harmonic(k) / k,
    )
    w_max = (r.dispatch_ms + r.enqueue_ms_per_job * b_big) / 1000 + np.maximum(
        b_big - c_eff * (1 + cs2) / 2, 0
    ) * s_inc / c_eff
    w_max = np.where(stable, np.maximum(w_max, w_mean), np.inf)
    claim_max = period * cf.harmonic(k) / k
    lag_mean = claim_mean + w_mean + s_inc
    gap = mean_i + claim_mean + dispatch + w_s
    # Staleness: the age of each mailbox's last sync, mixed over the push-rate groups (all
    # mailboxes alike without push: uniform over the cycle).
    d_claim = mean_i + claim_mean
    m1, m2, _pp = push_cycle(pr, d_claim)
    d_start = np.asarray(dispatch + w_s)[..., None]
    g1 = m1 + d_start
    g2 = m2 + 2 * d_start * m1 + d_start**2
    with np.errstate(divide="ignore", invalid="ignore"):
        st_mean = np.sum(pw * g2 / (2 * g1), axis=-1)
    st_mean = np.where(stable, st_mean, np.inf)
    span95 = mean_i + claim_max + w_max
    if has_push:
        st_p50 = age_quantile(0.5, pr, pw, np.broadcast_to(gap, np.shape(st_mean)))
        st_p95 = age_quantile(0.95, pr, pw, np.broadcast_to(span95, np.shape(st_mean)))
    else:
        st_p50 = gap / 2
        st_p95 = 0.95 * span95
    # The longest staleness: a full cycle plus the worst waits, or a full-sync straggler.
    fulls_in_horizon = lam * f * (s.run.horizon_s - s.run.warmup_s)
    straggler = np.where(fulls_in_horizon >= 1, p.s_full_p99, 0.0)
    st_max = mean_i + claim_max + w_max + np.maximum(s_inc, straggler)
    fq = s.criteria.fresh_quantile
    st_q = st_max if fq >= 1 else fq * (mean_i + claim_max + w_max)
    # Resources.
    per_host = np.ceil(k / h)
    cores = thr * cpu_s + k * (r.cpu_ms_per_cycle / period + r.cpu_ms_per_s_process) / 1000
    cpu_pct = cores / k * per_host / vcpu * 100
    inflight = np.minimum(
        in_flight.peak(
            s, p.in_service, lam_s * (1 - f), lam * f * s_full + lam_p * s_inc, s_inc, cs2,
            c_tier, k, thr * s_mean / k,
        ),
        c_all,
    )  # fmt: skip
    rss = (
        r.rss_base_mb
        + r.rss_per_job_mb * inflight
        + r.rss_per_mailbox_kb * n / 1024
        + r.rss_per_imap_connection_kb * pool.held_peak / 1024
    )
    ram_gb = rss * per_host / 1024
    db_busy = thr * p.db_ms / 1000 + k / period * r.db_ms_per_claim / 1000
    ops = thr * r.redis_ops_per_job + thr * p.requests * r.redis_ops_per_request * 2
    # Managed tiers and the price: the same sizing and cost function as the event model's.
    svc = resources.service_tiers(s, ops, db_busy, n, thr, k)
    db_util, redis_util = svc["postgres_util"], np.maximum(svc["redis_util"], svc["redis_mem_util"])
    cost = h * price + svc["postgres_cost"] + svc["redis_cost"]
    t_claim = 0.95 * n / (k * prof.batch_size / period)
    t_work = 0.95 * n * s_inc / c
    t95 = period / (k + 1) + np.maximum(t_claim, t_work) + s_inc
    # The drain measures burst capacity: full-sync stragglers do not hold it back, but
    # quotas and the event loop's CPU still cap it.
    burst_cap = np.minimum.reduce(
        [np.broadcast_to(x, np.broadcast(lam, c, k).shape) for x in caps[2:]]
    )
    capacity = np.minimum(0.95 * n / t95, burst_cap) * 60
    cr = s.criteria
    ratios = np.stack(
        np.broadcast_arrays(
            thr * s_mean / c,
            thr / (k * prof.batch_size / period),
            np.maximum(cpu_pct / cr.cpu_pct_max, cores / k),
            ram_gb / np.minimum(cr.ram_gb_max, ram_cap),
            db_util / 0.8,
            redis_util / 0.8,
            pool.account_peak / pool.limit,
        )
    )
    passes = (
        (capacity >= cr.throughput_per_min)
        & (cpu_pct < cr.cpu_pct_max)
        & (ram_gb < np.minimum(cr.ram_gb_max, ram_cap))
        & (p.error_rate < cr.error_rate_max)
        & (st_q <= cr.fresh_within_s)
        & (pool.account_peak <= pool.limit)
        & stable
    )
    return {
        "mailboxes": n,
        "demand_per_min": demand * 60,
        "throughput_per_min": thr * 60,
        "x_max_per_min": x_max * 60,
        "capacity_per_min": capacity,
        "stable": stable,
        "wait_mean": w_mean,
        "wait_max": w_max,
        "lag_mean": lag_mean,
        "staleness_mean": st_mean,
        "staleness_p50": st_p50,
        "push_per_min": np.minimum(lam_p, thr) * 60,
        "staleness_p95": st_p95,
        "staleness_max": st_max,
        "staleness_q": st_q,
        "util_workers": thr * s_mean / c,
        "cpu_pct_host": cpu_pct,
        "cpu_core_per_process": cores / k,
        "ram_gb_host": ram_gb,
        "db_util": db_util,
        "redis_ops_per_s": ops,
        "redis_mb": np.broadcast_to(svc["redis_mb"], thr.shape),
        "pg_memory_mb": np.broadcast_to(svc["pg_memory_mb"], thr.shape),
        "redis_tier": np.broadcast_to(svc["redis_tier"], thr.shape),
        "postgres_tier": np.broadcast_to(svc["postgres_tier"], thr.shape),
        "cost_month": cost,
        "cost_per_tenant": cost / np.asarray(tenants, dtype=float),
        "imap_login_share": np.broadcast_to(pool.login_share, thr.shape),
        "imap_noop_share": np.broadcast_to(pool.noop_share, thr.shape),
        "imap_conn_account_peak": np.broadcast_to(pool.account_peak, thr.shape),
        "imap_conn_process_mean": np.broadcast_to(pool.held_mean, thr.shape),
        "imap_conn_process_peak": np.broadcast_to(pool.held_peak, thr.shape),
        "bottleneck": ratios.argmax(axis=0),
        "bottleneck_ratio": ratios.max(axis=0),
        "passes": passes,
    }


def largest_interval(
    s: Scenario, p: JobProfile, tenants: float, processes: float, candidates: Arr | None = None
) -> float:
    """The longest sync interval whose staleness still meets the freshness criterion."""
    cand = np.arange(10.0, 3601.0, 5.0) if candidates is None else candidates
    out = evaluate(s, p, np.full_like(cand, tenants), np.full_like(cand, processes), interval=cand)
    ok = (out["staleness_q"] <= s.criteria.fresh_within_s) & out["stable"]
    return float(cand[ok].max()) if ok.any() else math.nan


def mean_interval(s: Scenario) -> float:
    """The scenario's mean sync interval."""
    d = s.population.sync_interval_s
    return s.profile().sync_interval_s if d is None else dist_mean(d)
