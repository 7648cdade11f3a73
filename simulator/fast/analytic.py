"""The fast path: the daemon's steady state in closed form, vectorised over configurations.

A scenario's per-sync figures (service time, API units, CPU, DB) are sampled once with the
same request model and quota arithmetic as the event simulation (``sampling.job_profile``);
then ``evaluate`` computes throughput, capacity, waits, staleness, resources and cost for
whole numpy grids of tenants x processes x concurrency x interval x instance at once.

Queue waits come from the batches the schedulers release: each of K schedulers releases the
mailboxes due since its cycle before onto c workers, and jobs wait for the batch ahead of
them to drain. With whole-period intervals the batches even out and drain by the sampled
sync times (``drain``); otherwise they follow the schedulers' phases
(``closed_forms.batch_release_wait``). M/M/c would predict almost no wait at all.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from daemon import policy
from simulator.fast import closed_forms as cf
from simulator.fast import cycle_map, drain
from simulator.fast import resources as fast_resources
from simulator.fast.config import Config, Settled
from simulator.fast.cycles import age_quantile, claim_wait, push_cycle
from simulator.fast.sampling import JobProfile, job_profile
from simulator.inputs.distributions import mean as dist_mean
from simulator.inputs.scenario import Scenario
from simulator.model.imap_pool import pool_costs
from simulator.model.tokens import refresh_share

Arr = np.ndarray

__all__ = [
    "RATIO_NAMES",
    "JobProfile",
    "age_quantile",
    "claim_wait",
    "evaluate",
    "job_profile",
    "largest_interval",
    "mean_interval",
    "push_cycle",
    "settle",
]

# ``evaluate``'s figures, in the order it returns them.
_ORDER = [
    "mailboxes",
    "demand_per_min",
    "throughput_per_min",
    "x_max_per_min",
    "capacity_per_min",
    "stable",
    "wait_mean",
    "wait_max",
    "lag_mean",
    "staleness_mean",
    "staleness_p50",
    "push_per_min",
    "staleness_p95",
    "staleness_max",
    "staleness_q",
    "util_workers",
    "cpu_pct_host",
    "cpu_core_per_process",
    "ram_gb_host",
    "db_util",
    "redis_ops_per_s",
    "redis_mb",
    "pg_memory_mb",
    "redis_tier",
    "postgres_tier",
    "cost_month",
    "cost_per_tenant",
    "imap_login_share",
    "imap_noop_share",
    "imap_conn_account_peak",
    "imap_conn_process_mean",
    "imap_conn_process_peak",
    "bottleneck",
    "bottleneck_ratio",
    "passes",
]

RATIO_NAMES = [
    "workers",
    "scheduler batch (claim rate)",
    "CPU",
    "RAM",
    "database",
    "Redis",
    "IMAP connections per account",
]


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
    cycles: bool = True,
) -> dict[str, Arr]:
    """Steady-state figures for every configuration (arrays broadcast together).

    ``instance`` holds indices into the catalogue's instance list (default: the scenario's).
    ``run_window``: the figures a run of the scenario measures instead (its warm-up and
    horizon; only long full syncs differ, see ``JobProfile.cpu_ms_run``), to check the fast
    path against the event model; plans use the steady state. ``cycles``: with
    ``run_window``, the cycle map where the closed forms miss (``settle``).
    """
    cfg, st = settle(s, p, tenants, processes, conc_scale, interval, run_window, cycles)
    vcpu, ram_cap, price = fast_resources.instances(s, instance)
    out: dict[str, Arr] = {
        "mailboxes": cfg.n,
        "demand_per_min": st.demand * 60,
        "throughput_per_min": np.minimum(st.lam, st.x_max) * 60,
        "x_max_per_min": st.x_max * 60,
        "stable": st.stable,
        "push_per_min": np.minimum(st.lam_p, np.minimum(st.lam, st.x_max)) * 60,
        "util_workers": np.minimum(st.lam, st.x_max) * st.s_mean / cfg.c,
    }
    out.update(_waits(cfg, st))
    out.update(_staleness(cfg, st, out["wait_mean"], out["wait_max"]))
    res, redis_util = fast_resources.resources(
        cfg, st, processes if hosts is None else hosts, vcpu, price
    )
    out.update(res)
    out.update(fast_resources.verdict(cfg, st, out, ram_cap, redis_util))
    return {key: out[key] for key in _ORDER}


def settle(
    s: Scenario,
    p: JobProfile,
    tenants: Arr,
    processes: Arr,
    conc_scale: Arr | float = 1.0,
    interval: Arr | float | None = None,
    run_window: bool = False,
    cycles: bool = True,
) -> tuple[Config, Settled]:
    """The configurations (``evaluate``'s arguments) and the rates and waits they settle to:
    what ``evaluate`` derives its figures from.

    With ``run_window``, configurations where the drain's closed forms miss what a run
    meets (``cycle_map.in_regime``) take the release cycle from a map simulated over the
    run's horizon: with one scheduler the batches' spread, the chunks busy at a release and
    the chunks' wait (``cycle_map``), with several the waits over drawn phases
    (``phased_map``); a second or two each, up to ten on large configurations: meant for
    a scenario's own configuration. ``cycles=False`` keeps the closed forms there too."""
    cfg = _config(s, p, tenants, processes, conc_scale, interval, run_window)
    st = _settle(cfg)
    if not run_window:
        return cfg, st
    for _ in range(2 if p.full_share > 0 else 1):
        # A run's full syncs last longer by their chunks' queue waits, so it counts less of
        # them: settled again with the waits of the settling before, the maps' figures (on
        # the configuration settled without them) kept.
        chunk_wait = np.where(st.stable, s.resources.dispatch_ms / 1000 + st.w_ch, 0.0)
        cycle = cfg.cycle or (cycle_map.refine(cfg, st) if cycles else None)
        if cycle is None and p.full_share <= 0:
            break
        cfg = _config(s, p, tenants, processes, conc_scale, interval, run_window, chunk_wait)
        cfg = replace(cfg, cycle=cycle)
        st = _settle(cfg)
        if cycle is None:
            break
    return cfg, st


def _config(
    s: Scenario,
    p: JobProfile,
    tenants: Arr,
    processes: Arr,
    conc_scale: Arr | float,
    interval: Arr | float | None,
    run_window: bool,
    chunk_wait: Arr | float = 0.0,
) -> Config:
    """The grid's mailboxes, intervals and workers; with ``run_window`` the full syncs a run
    counts, their later chunks waiting ``chunk_wait`` in the queue."""
    prof = s.profile()
    cpu_run, held_run = p.run_shares(chunk_wait)
    share: Arr | float = held_run if run_window else 1.0
    k = np.asarray(processes, dtype=float)
    n = np.asarray(tenants, dtype=float) * p.mailboxes_per_tenant
    inv_i = p.inv_interval if interval is None else 1 / np.asarray(interval, dtype=float)
    mean_i = 1 / np.asarray(inv_i)
    # Mailboxes synced every interval stay in the tier of their age; normally high.
    tier = policy.tier_for(float(np.max(mean_i)) / 3600, prof)
    scale = np.asarray(conc_scale, dtype=float)
    # The workers that may serve that tier: its own pool, and when work conserving the lower
    # pools too, whose own queues are then empty (every mailbox is in this one tier).
    c_tier = np.maximum(1, np.rint(scale * policy.workers_serving(tier, prof)))
    c_all = np.maximum(1, np.rint(scale * prof.concurrency.total))
    # Intervals of whole scheduler periods: due instants re-align to the claims, and the
    # batches even out (``drain.evened_variance``); otherwise they follow the phases.
    frac = (
        np.mod(np.asarray(mean_i, dtype=float), prof.scheduler_interval_s)
        / prof.scheduler_interval_s
    )
    locked = (frac < 1e-6) | (frac > 1 - 1e-6)
    return Config(
        s, p, np.asarray(tenants, dtype=float), k, n, mean_i, np.asarray(inv_i), c_tier,
        c_all, k * c_tier, locked, p.s_full * share,
        cpu_run if run_window else p.cpu_ms, share,
    )  # fmt: skip


def _settle(cfg: Config) -> Settled:
    """Rates, capacity and waits, settled together.

    A mailbox is due one interval after its sync *started*, so each cycle lasts the
    interval plus the claim wait and the queue wait: the rate is N / (I + claim + wait).
    Three passes settle the wait and the rate it depends on.
    """
    s, p, k, n, mean_i, c = cfg.s, cfg.p, cfg.k, cfg.n, cfg.mean_i, cfg.c
    prof = s.profile()
    r = s.resources
    period = prof.scheduler_interval_s
    f = p.full_share
    lam = n * cfg.inv_i / (1 - p.error_rate)  # syncs per second, retries included
    demand = lam
    # Push notifications: Poisson syncs on the high queue beside the batch releases.
    pr, pw = _push_groups(p)
    lam_p: Arr = np.zeros_like(lam)
    w_prev: Arr | float = 0.0  # scheduled jobs' queue wait beyond their dispatch
    b_prev = np.minimum(lam * period / k, prof.batch_size)
    dispatch = (r.dispatch_ms + r.enqueue_ms_per_job * b_prev) / 1000
    over = r.scheduler_overshoot_ms / 1000
    claim_mean = claim_wait(period, k, mean_i, dispatch, w_prev, over)
    # Service-time variability of incremental jobs (squared coefficient of variation).
    var_inc = max(p.s2_inc - p.s_inc**2, 0.0)
    push_dispatch = (r.dispatch_ms + r.enqueue_ms_per_job) / 1000
    for _ in range(3):
        # IMAP connection set-up depends on how far apart a mailbox's syncs are.
        gap = mean_i + claim_mean + dispatch + w_prev
        pool = pool_costs(
            p.imap, n, gap, k, r.cpu_ms_per_call, interval=mean_i,
            cpu_ms_per_connect=r.cpu_ms_per_connect,
        )  # fmt: skip
        tok_s = p.oauth_share * refresh_share(gap, k, p.token_serves_s) * p.token_s
        s_inc = p.s_inc + pool.extra_s + tok_s
        s_mean = (1 - f) * s_inc + f * (cfg.s_full + pool.extra_s + tok_s)
        cs2 = var_inc / np.maximum(s_inc, 1e-12) ** 2
        cpu_s = np.asarray((cfg.cpu_ms + pool.extra_cpu_ms) / 1000, dtype=float)
        caps = _ceilings(cfg, lam, s_mean, cpu_s)
        shape = np.broadcast(lam, c, k, s_mean).shape
        x_max = np.minimum.reduce([np.broadcast_to(x, shape) for x in caps])
        stable = lam < 0.98 * x_max
        # Waits. Scheduled syncs: batches released by the schedulers on the workers that long
        # (full) syncs and push syncs leave free: full syncs hold theirs for the whole drain,
        # push syncs (at random instants) until their residual time. Push syncs queue
        # behind the batches' time-average backlog.
        lam_s = np.maximum(lam - lam_p, 0.0)
        busy_long = lam * f * cfg.s_full + lam_p * s_inc
        c_eff = np.maximum(c - busy_long, 1)
        long: list[tuple[Arr | float, Arr | float]] = [
            (lam * f * cfg.s_full, np.inf),
            (lam_p * s_inc, s_inc * (1 + cs2) / 2),
        ]
        w_s = drain.scheduled_wait(
            (p.renewal_mean, p.renewal_var),
            lam_s,
            c,
            c_eff,
            s_inc,
            cs2,
            period,
            k,
            cfg.locked,
            long,
        )
        # The job-weighted batch: larger batches hold more jobs (and take longer to enqueue).
        _b_mean, b_spaced = cf.spacing_moments(period, k)
        b_jobs = np.where(cfg.locked, period / k, b_spaced)
        dispatch = (r.dispatch_ms + r.enqueue_ms_per_job * lam_s * b_jobs) / 1000
        w_p = lam_s * w_s * s_inc / c_eff + cf.allen_cunneen_wait(c, lam, s_inc, var_inc + s_inc**2)
        w_ch = w_p
        if cfg.cycle is not None:
            ref = cfg.cycle
            m = lam_s * period / k
            w_s = cycle_map.refined_wait(ref, p, m, c, s_inc, cs2, w_s)
            whole = np.isfinite(ref.sched_wait)
            w_s = np.where(whole, np.maximum(ref.sched_wait - dispatch, 0.0), w_s)
            w_ch = np.where(ref.on, ref.chunk_wait, w_p)
        w_s = np.where(stable, w_s, np.inf)
        w_p = np.where(stable, w_p, np.inf)
        w_ch = np.where(stable, w_ch, np.inf)
        w_prev = np.where(stable, w_s, 0.0)
        claim_mean = claim_wait(period, k, mean_i, dispatch, w_prev, over)
        # Each mailbox: claimed an interval plus the claim wait after its start, or pushed.
        m1, _m2, p_push = push_cycle(pr, mean_i + claim_mean)
        cycle_j = m1 + np.asarray(dispatch + w_prev)[..., None]
        per_box = np.sum(pw / cycle_j, axis=-1)
        push_box = np.sum(pw * p_push / cycle_j, axis=-1)
        lam = np.where(stable, n * per_box / (1 - p.error_rate), demand)
        lam_p = np.where(stable, n * push_box / (1 - p.error_rate), 0.0)
    return Settled(
        lam, lam_p, demand, x_max, caps, stable, s_inc, s_mean, cs2, cpu_s, pool, c_eff, w_s,
        w_p, w_ch, dispatch, push_dispatch, claim_mean,
    )  # fmt: skip


def _push_groups(p: JobProfile) -> tuple[Arr, Arr]:
    """Push rates and their mailbox shares; one group at rate 0 without push."""
    if p.push_rates:
        return np.asarray(p.push_rates, dtype=float), np.asarray(p.push_weights, dtype=float)
    return np.zeros(1), np.ones(1)


def _ceilings(cfg: Config, lam: Arr, s_mean: Arr, cpu_s: Arr) -> list[Arr]:
    """Capacity's independent ceilings (syncs per second): workers, the schedulers' claims,
    one event loop per process, and every app quota."""
    prof = cfg.s.profile()
    k = cfg.k
    caps = [cfg.c / s_mean, k * prof.batch_size / prof.scheduler_interval_s]
    caps.append(k * 1.0 / np.maximum(cpu_s, 1e-12))
    for q, units in cfg.p.app_units.items():
        if units > 0:
            caps.append(np.full_like(lam, cfg.p.app_rate[q] / units))
    return caps


def _waits(cfg: Config, st: Settled) -> dict[str, Arr]:
    """The mean and longest queue wait of high-queue jobs, their dispatch included (as the
    event model measures it: from the enqueue to the start of the sync)."""
    s, p, k = cfg.s, cfg.p, cfg.k
    r = s.resources
    period = s.profile().scheduler_interval_s
    lam, lam_p, stable = st.lam, st.lam_p, st.stable
    lam_s = np.maximum(lam - lam_p, 0.0)
    # A quota-chunked full sync's later chunks are jobs too: each is queued again when its
    # quota is back, at random instants like a push (only the dispatch, no bulk enqueue).
    # With the model's latencies they are a fifth to a quarter of the high queue's jobs on
    # the presets and wait little, which the mean of every job counts.
    lam_ch = lam * p.full_share * (p.full_jobs - 1) * cfg.share
    chunk_dispatch = r.dispatch_ms / 1000
    with np.errstate(divide="ignore", invalid="ignore"):
        w_all = (
            lam_s * (st.dispatch + st.w_s)
            + lam_p * (st.push_dispatch + st.w_p)
            + lam_ch * (chunk_dispatch + st.w_ch)
        ) / np.maximum(lam + lam_ch, 1e-300)
    w_mean = np.where(stable, np.where(lam > 0, w_all, st.dispatch + st.w_s), np.inf)
    # The longest wait: the job last in the batch behind the longest spacing.
    b_big = np.where(
        cfg.locked,
        lam_s * period / k + 2 * np.sqrt(lam_s * period / k),
        lam_s * period * cf.harmonic(k) / k,
    )
    w_max = (r.dispatch_ms + r.enqueue_ms_per_job * b_big) / 1000 + np.maximum(
        b_big - st.c_eff * (1 + st.cs2) / 2, 0
    ) * st.s_inc / st.c_eff
    w_max = np.where(stable, np.maximum(w_max, w_mean), np.inf)
    return {"wait_mean": w_mean, "wait_max": w_max}


def _staleness(cfg: Config, st: Settled, w_mean: Arr, w_max: Arr) -> dict[str, Arr]:
    """Lag and the age of each mailbox's last sync, mixed over the push-rate groups (all
    mailboxes alike without push: uniform over the cycle)."""
    s, p, k, mean_i = cfg.s, cfg.p, cfg.k, cfg.mean_i
    period = s.profile().scheduler_interval_s
    stable, claim_mean = st.stable, st.claim_mean
    pr, pw = _push_groups(p)
    claim_max = period * cf.harmonic(k) / k
    gap = mean_i + claim_mean + st.dispatch + st.w_s
    m1, m2, _pp = push_cycle(pr, mean_i + claim_mean)
    d_start = np.asarray(st.dispatch + st.w_s)[..., None]
    g1 = m1 + d_start
    g2 = m2 + 2 * d_start * m1 + d_start**2
    with np.errstate(divide="ignore", invalid="ignore"):
        st_mean = np.sum(pw * g2 / (2 * g1), axis=-1)
    st_mean = np.where(stable, st_mean, np.inf)
    span95 = mean_i + claim_max + w_max
    if p.push_rates:
        st_p50 = age_quantile(0.5, pr, pw, np.broadcast_to(gap, np.shape(st_mean)))
        st_p95 = age_quantile(0.95, pr, pw, np.broadcast_to(span95, np.shape(st_mean)))
    else:
        st_p50 = gap / 2
        st_p95 = 0.95 * span95
    # The longest staleness: a full cycle plus the worst waits, or a full-sync straggler.
    fulls_in_horizon = st.lam * p.full_share * (s.run.horizon_s - s.run.warmup_s)
    straggler = np.where(fulls_in_horizon >= 1, p.s_full_p99, 0.0)
    st_max = mean_i + claim_max + w_max + np.maximum(st.s_inc, straggler)
    fq = s.criteria.fresh_quantile
    st_q = st_max if fq >= 1 else fq * (mean_i + claim_max + w_max)
    return {
        "lag_mean": claim_mean + w_mean + st.s_inc,
        "staleness_mean": st_mean,
        "staleness_p50": st_p50,
        "staleness_p95": st_p95,
        "staleness_max": st_max,
        "staleness_q": st_q,
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
