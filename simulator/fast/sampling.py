"""The fast path's per-sync figures: a scenario's syncs sampled once (``job_profile``).

The same request model and quota arithmetic as the event simulation walk 2,000 incremental
syncs and 200 full ones of a sampled population (seeded); ``analytic.evaluate`` then scales
the figures to whole grids of configurations. The profile does not depend on the
population's size.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

from daemon import policy
from daemon.oauth import EXPIRY_MARGIN_S
from daemon.policy import QuotaScope, SyncKind
from simulator.fast import drain, in_flight
from simulator.fast.job_profile import RUN_WAITS, JobProfile
from simulator.inputs import population
from simulator.inputs.population import PopulationArrays
from simulator.inputs.providers import IMAP, PROVIDERS
from simulator.inputs.scenario import Scenario
from simulator.model.gate import LOGIN, NOOP, ProviderRuntime, Request
from simulator.model.imap_pool import ImapProfile

Arr = np.ndarray

__all__ = ["RUN_WAITS", "JobProfile", "job_profile"]


def _walk(
    pv: ProviderRuntime,
    idx: int,
    reqs: tuple[Request, ...],
    budget: float | None = None,
    pieces: list[tuple[float, float]] | None = None,
) -> tuple[float, float, int, int, int]:
    """A job alone on its mailbox's buckets (the event simulation's virtual clock): its
    length, the part of it that holds a worker, quota units, calls and jobs (chunks).

    With ``budget`` (a chunked full sync) a wait past it is spent off the worker, as the
    daemon's gate and the event model's walk decide (``policy.quota_deferral``).
    """
    mb = pv.mailbox_buckets(idx) if pv.mb_quotas else None
    t = pv.overhead()
    held, run_wait = t, 0.0
    piece_start = 0.0
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
                if pieces is not None:
                    # A chunk's worker time and the quota pause after it.
                    pieces.append((held - piece_start, later))
                oh = pv.overhead()
                t += later + oh
                piece_start = held
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


@dataclass(frozen=True)
class _Sample:
    """The sampled population and its providers' runtimes (one seed for both)."""

    s: Scenario
    pop: PopulationArrays
    runtimes: dict[str, ProviderRuntime]
    rng: np.random.Generator
    full_samples: int


@dataclass(frozen=True)
class _Incremental:
    """Per sampled incremental sync: its length, CPU, DB time, requests, API time, units."""

    dur: np.ndarray
    cpu: np.ndarray
    db: np.ndarray
    reqs: np.ndarray
    api: np.ndarray
    units: dict[str, np.ndarray]


@dataclass(frozen=True)
class _Full:
    """Per sampled full sync: its length, worker time, CPU, chunks and app units."""

    dur: np.ndarray
    held: np.ndarray
    cpu: np.ndarray
    jobs: np.ndarray
    units: dict[str, np.ndarray]
    # Each later chunk's predecessor: its worker time and the quota pause after it.
    piece_run: np.ndarray
    piece_pause: np.ndarray


def job_profile(
    s: Scenario, samples: int = 2000, full_samples: int = 200, seed: int = 7
) -> JobProfile:
    """Sample the scenario's syncs once (seeded) to get the fast path's per-sync figures."""
    sm = _sample(s, samples, full_samples, seed)
    inc = _incremental(sm)
    full = _full(sm)
    full_cpu = _full_cpu(sm, full)
    run_cpu, run_held = _run_shares(s, full)
    by_wait = [_run_shares(s, full, w) for w in RUN_WAITS]
    f = s.daemon.cursor_expiry_per_sync
    app_units = {
        k: (1 - f) * float(v.mean()) + f * float(full.units.get(k, np.zeros(1)).mean())
        for k, v in inc.units.items()
    }
    app_rate = {
        q.name: q.sustained_per_s
        for lim in s.limits().values()
        for q in lim.quotas
        if q.scope is QuotaScope.APP and q.name in app_units
    }
    err = {p: s.providers[p].errors for p in s.population.providers}
    shares = s.population.providers
    error_rate = sum(
        shares[p] * (e.auth_revoked + e.permanent + e.transient) for p, e in err.items()
    )
    pop = sm.pop
    oauth_share, token_s, serves = _oauth(sm)
    push_rates, push_weights = _push_groups(pop.arrivals_per_s * s.daemon.push_share)
    period = s.profile().scheduler_interval_s
    renewal_mean, renewal_var = drain.renewal(inc.dur, seed)
    return JobProfile(
        s_inc=float(inc.dur.mean()),
        s2_inc=float(np.mean(inc.dur**2)),
        s_full=float(full.held.mean()),
        s_full_p99=float(np.percentile(full.dur, 99)),
        full_share=f,
        app_units=app_units,
        app_rate=app_rate,
        full_jobs=float(full.jobs.mean()),
        cpu_ms=(1 - f) * float(inc.cpu.mean()) + f * full_cpu,
        cpu_ms_run=(1 - f) * float(inc.cpu.mean()) + f * full_cpu * run_cpu,
        run_held_share=run_held,
        db_ms=float(inc.db.mean()),
        requests=float(inc.reqs.mean()),
        error_rate=error_rate,
        mailboxes_per_tenant=population.expected_mailboxes(s) / s.population.tenants,
        inv_interval=float(np.mean(1 / pop.interval_s)),
        imap=_imap(sm, inc),
        oauth_share=oauth_share,
        token_s=token_s,
        token_serves_s=max(1.0, serves),
        push_rates=push_rates,
        push_weights=push_weights,
        in_service=tuple(float(x) for x in in_flight.in_service(inc.dur, period)),
        renewal_mean=renewal_mean,
        renewal_var=renewal_var,
        run_cpu_ms_by_wait=tuple(
            (1 - f) * float(inc.cpu.mean()) + f * full_cpu * c for c, _h in by_wait
        ),
        run_held_by_wait=tuple(h for _c, h in by_wait),
        job_times=tuple(float(x) for x in inc.dur),
        **_chunks(full, seed),
    )


# Chunks kept in a profile (a sample of all the sampled full syncs' chunks).
CHUNK_SAMPLES = 2000


def _chunks(full: _Full, seed: int) -> dict[str, tuple[float, ...]]:
    """``JobProfile``'s chunk samples: up to ``CHUNK_SAMPLES`` (run, pause) pairs, seeded."""
    if full.piece_run.size == 0:
        return {}
    rng = np.random.default_rng(seed)
    pick = rng.choice(full.piece_run.size, min(CHUNK_SAMPLES, full.piece_run.size), False)
    return {
        "chunk_runs": tuple(float(x) for x in full.piece_run[pick]),
        "chunk_pauses": tuple(float(x) for x in full.piece_pause[pick]),
        "jobs_per_full": tuple(float(x) for x in full.jobs),
    }


def _sample(s: Scenario, samples: int, full_samples: int, seed: int) -> _Sample:
    """A population of up to ``samples`` tenants and its providers, seeded."""
    rng = np.random.default_rng(seed)
    small = s.updated({"population.tenants": min(s.population.tenants, samples)})
    pop = population.build(small, rng)
    prng = random.Random(seed)
    runtimes = {
        p: ProviderRuntime(p, s.providers[p], s.enforced(p), None, pop.n + full_samples, rng, prng)
        for p in s.population.providers
    }
    return _Sample(s, pop, runtimes, rng, full_samples)


def _incremental(sm: _Sample) -> _Incremental:
    """Walk one incremental sync per sampled mailbox, with a cycle's mail changes."""
    s, pop, rng = sm.s, sm.pop, sm.rng
    n = pop.n
    r = s.resources
    pe = s.population
    mu = pop.arrivals_per_s * pop.interval_s
    added = rng.poisson(mu)
    other = rng.poisson(mu * (pe.changes_per_arrival + pe.deletes_per_arrival))
    share_del = pe.deletes_per_arrival / max(pe.changes_per_arrival + pe.deletes_per_arrival, 1e-12)
    deleted = rng.binomial(other, share_del)
    dur, cpu, db, reqs_n, api = np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n)
    units: dict[str, np.ndarray] = {}
    for i in range(n):
        pv = sm.runtimes[PROVIDERS[pop.provider[i]]]
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
    return _Incremental(dur, cpu, db, reqs_n, api, units)


def _full(sm: _Sample) -> _Full:
    """Walk ``full_samples`` full syncs of sampled mailboxes (chunked where quota-bound)."""
    s, pop, k = sm.s, sm.pop, sm.full_samples
    r = s.resources
    n = pop.n
    fdur, fheld, fcpu, fjobs = np.zeros(k), np.zeros(k), np.zeros(k), np.ones(k)
    budget = s.profile().full_sync_quota_wait_s
    funits: dict[str, np.ndarray] = {}
    pieces: list[tuple[float, float]] = []
    pick = sm.rng.integers(0, n, k)
    for j, i in enumerate(pick):
        pv = sm.runtimes[PROVIDERS[pop.provider[i]]]
        size = int(pop.size[i])
        reqs = pv.requests(SyncKind.FULL, size, 0, 0, 0)
        t, held, u, calls, chunks = _walk(
            pv, n + j, reqs, budget if pv.chunks_full else None, pieces
        )
        fjobs[j] = chunks
        # Every chunk is a job with its own commit (as in the event model).
        fcpu[j] = (
            r.cpu_ms_per_call * calls + r.cpu_ms_per_message * size + r.cpu_ms_per_job * chunks
        )
        fdb = r.db_commit_ms * chunks + r.db_ms_per_message * size
        fdur[j] = t + (fcpu[j] + fdb) / 1000
        fheld[j] = held + (fcpu[j] + fdb) / 1000
        for q in pv.app_quotas:
            funits.setdefault(q.name, np.zeros(k))[j] = u
    run_pause = np.asarray(pieces, dtype=float).reshape(-1, 2)
    return _Full(fdur, fheld, fcpu, fjobs, funits, run_pause[:, 0], run_pause[:, 1])


def _full_cpu(sm: _Sample, full: _Full) -> float:
    """A full sync's mean CPU (ms).

    It grows with the mailbox (a call and a stored row per message) and the sizes are
    heavy-tailed: the mean of 200 walks is left to chance (±10 % with the default
    lognormal, σ = 1), so calls and rows are counted on every sampled mailbox (the calls do
    not depend on the walk) and the walks give only the chunks.
    """
    pop, r = sm.pop, sm.s.resources
    fcalls = np.array(
        [
            sum(
                c.count
                for c in policy.sync_calls(
                    PROVIDERS[pop.provider[i]], SyncKind.FULL, int(pop.size[i]),
                    shape=sm.runtimes[PROVIDERS[pop.provider[i]]].shape,
                )
            )
            for i in range(pop.n)
        ]
    )  # fmt: skip
    return (
        r.cpu_ms_per_call * float(fcalls.mean())
        + r.cpu_ms_per_message * float(pop.size.mean())
        + r.cpu_ms_per_job * float(full.jobs.mean())
    )


def _run_shares(s: Scenario, full: _Full, chunk_wait: float = 0.0) -> tuple[float, float]:
    """The shares of full syncs' CPU and worker time a run of the scenario counts.

    A run counts from its warm-up to its horizon and starts with no full sync under way, so
    it misses part of those longer than its warm-up (Gmail's, quota-bound: with 2 s jobs
    about 0.6 s a message at the 2026 quota, 50 minutes for 5,000). At an instant t the full
    syncs started since 0 do min(1, t / L) of their steady work (a sync of length L works
    evenly over it: its chunks come at the quota's pace); averaged over the window and
    weighted by each sync's CPU or worker time, that is the share of it a run counts. Each
    chunk after the first is queued when its quota is back and waits ``chunk_wait`` there
    before it starts, which the walk leaves out: L grows by that wait per chunk (on
    plan-b-1000 with 2 s jobs the event model's full syncs take 3.6 s a chunk, the walk's
    3.2 s).
    """
    ts = np.linspace(s.run.warmup_s, s.run.horizon_s, 64)
    length = full.dur + (full.jobs - 1) * chunk_wait
    seen = np.minimum(1.0, ts[None, :] / np.maximum(length[:, None], 1e-9)).mean(axis=1)
    run_cpu = float(np.sum(full.cpu * seen) / max(float(np.sum(full.cpu)), 1e-12))
    run_held = float(np.sum(full.held * seen) / max(float(np.sum(full.held)), 1e-12))
    return run_cpu, run_held


def _imap(sm: _Sample, inc: _Incremental) -> ImapProfile | None:
    """The IMAP connection pool's inputs; None without IMAP mailboxes."""
    is_imap = sm.pop.provider == IMAP
    if not is_imap.any():
        return None
    s = sm.s
    pv, model, pool = sm.runtimes["imap"], s.providers.imap, s.daemon.imap
    return ImapProfile(
        share=float(is_imap.mean()),
        login_s=pv.setup_mean_s(LOGIN),
        noop_s=pv.setup_mean_s(NOOP),
        login_calls=pv.setup_calls(LOGIN),
        busy_s=float(inc.api[is_imap].mean()),
        keepalive_s=pool.idle_keepalive_s,
        max_idle_s=pool.max_idle_s,
        reauth_after_s=pool.reauth_after_s,
        connection_limit=model.connection_limit,
    )


def _oauth(sm: _Sample) -> tuple[float, float, float]:
    """OAuth mailboxes' share, a token request's mean latency and how long a token serves."""
    oauth = sm.pop.provider != IMAP
    if not oauth.any():
        return 0.0, 0.0, 0.0
    provs = [PROVIDERS[int(x)] for x in sm.pop.provider[oauth]]
    token_s = float(np.mean([sm.runtimes[p].token_request[0].mean for p in provs]))
    lifetime = float(np.mean([sm.s.providers[p].token_lifetime_s for p in provs]))
    return float(oauth.mean()), token_s, lifetime - EXPIRY_MARGIN_S


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
