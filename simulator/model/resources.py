"""CPU, RAM, database, Redis and cost of a deployment from what a run measured."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from daemon import policy
from daemon.policy import TIERS
from daemon.settings import Settings
from simulator.inputs.catalogue import Catalogue, load_catalogue
from simulator.inputs.distributions import mean as dist_mean
from simulator.inputs.scenario import Scenario

# Above this share of its vCPUs a managed database or Redis is treated as saturated.
SERVICE_HEADROOM = 0.8
# A managed tier is chosen so that its commands, vCPUs and memory stay below this share.
SIZING_HEADROOM = 0.7

# Redis memory, measured by benchmarks/store_memory.py (Redis 7, bullmq 2 through
# daemon.queues.TierQueues and TierWorkers, daemon.ratelimit.QuotaLimiters; growth of
# used_memory per item, so hash, sorted-set entry and key overhead included):
REDIS_BASE_MB = 3.0  # an empty instance (Redis FAQ: "an empty instance uses ~3 MB")
REDIS_BYTES_PER_QUEUED_JOB = 850  # a waiting job (measured 819-920 bytes)
REDIS_BYTES_PER_KEPT_JOB = 1_650  # a completed or failed job bullmq keeps (1,500-1,666)
REDIS_BYTES_PER_QUOTA_KEY = 250  # one GCRA bucket key of one account (232-250)
# bullmq keeps this many completed and failed jobs per queue (the daemon's settings).
KEEP_COMPLETED = int(Settings.model_fields["keep_completed_jobs"].default)
KEEP_FAILED = int(Settings.model_fields["keep_failed_jobs"].default)
RETENTION_DAYS = float(Settings.model_fields["sync_runs_retention_days"].default)

# PostgreSQL, measured by benchmarks/store_memory.py on PostgreSQL 15 (pg_total_relation_size
# after VACUUM: heap, indexes and TOAST, rows shaped as the daemon writes them) and from
# /proc/<pid>/smaps_rollup of idle backends:
PG_SHARED_BUFFERS_MB = 128.0  # PostgreSQL's default shared_buffers
PG_MB_PER_CONNECTION = 3.5  # private memory of one backend (measured 3.4 MB)
PG_BYTES_PER_MAILBOX = 690  # mailboxes row with credentials, cursor and its indexes
PG_BYTES_PER_MESSAGE = 360  # messages row (ids, subject, sender, flags) with its indexes
PG_BYTES_PER_SYNC_RUN = 180  # sync_runs row with its two indexes


@dataclass(frozen=True)
class StoreMemory:
    """What Redis and PostgreSQL hold for a deployment."""

    redis_mb: float  # worst case: every queue keeps its completed and failed jobs
    redis_mb_expected: float  # kept completed jobs only (failed jobs are rare)
    pg_memory_mb: float  # shared buffers, backends and the mailboxes table
    pg_data_gb: float  # on disk: mailboxes, messages, sync_runs within the retention


def store_memory(
    s: Scenario, mailboxes: Any, syncs_per_s: Any, processes: Any = None
) -> StoreMemory:
    """Redis and PostgreSQL memory of ``mailboxes`` synced ``syncs_per_s`` per second by
    ``processes`` (default: the scenario's); numbers or numpy arrays."""
    prof = s.profile()
    k = s.daemon.processes if processes is None else processes
    shares = s.population.providers
    limits = policy.get_quota_preset(s.daemon.quota_preset)
    keys_per_mailbox = sum(
        share * sum(1 for q in limits[p].quotas if q.scope is policy.QuotaScope.MAILBOX)
        for p, share in shares.items()
        if p in limits
    )
    queued = k * prof.batch_size  # at most one cycle's claim per process waits
    kept = len(TIERS) * KEEP_COMPLETED
    common = (
        REDIS_BASE_MB * 2**20
        + queued * REDIS_BYTES_PER_QUEUED_JOB
        + mailboxes * keys_per_mailbox * REDIS_BYTES_PER_QUOTA_KEY
    )
    worst = common + len(TIERS) * (KEEP_COMPLETED + KEEP_FAILED) * REDIS_BYTES_PER_KEPT_JOB
    connections = k * (prof.concurrency.total + 6)  # Settings.pool_max per process
    size = min(dist_mean(s.population.mailbox_size), s.population.mailbox_size_cap)
    runs = syncs_per_s * 86_400 * RETENTION_DAYS
    data = (
        mailboxes * PG_BYTES_PER_MAILBOX
        + mailboxes * size * PG_BYTES_PER_MESSAGE
        + runs * PG_BYTES_PER_SYNC_RUN
    )
    return StoreMemory(
        redis_mb=worst / 2**20,
        redis_mb_expected=(common + kept * REDIS_BYTES_PER_KEPT_JOB) / 2**20,
        pg_memory_mb=PG_SHARED_BUFFERS_MB
        + connections * PG_MB_PER_CONNECTION
        + mailboxes * PG_BYTES_PER_MAILBOX / 2**20,
        pg_data_gb=data / 2**30,
    )


@dataclass(frozen=True)
class Deployment:
    """What is paid for: hosts of one instance size, one Redis and one PostgreSQL tier."""

    hosts: int
    instance: str
    redis: str
    postgres: str

    def label(self) -> str:
        """How every table names the deployment."""
        return f"{self.hosts} × {self.instance}, {self.redis}, {self.postgres}"


def monthly_cost(cat: Catalogue, d: Deployment) -> float:
    """The one price of a deployment, used by every table of every report."""
    return (
        d.hosts * cat.instance(d.instance).usd_month
        + cat.redis[d.redis].usd_month
        + cat.postgres[d.postgres].usd_month
    )


def size_tiers(
    s: Scenario, ops_per_s: float, db_busy_cores: float, mem: StoreMemory
) -> tuple[str, str]:
    """The Redis and PostgreSQL tiers of a scenario: those it names, else the cheapest whose
    commands (vCPUs) and memory stay below ``SIZING_HEADROOM``."""
    cat = load_catalogue(s.costs.catalogue)
    redis, _ = cat.redis_for(ops_per_s, s.costs.redis, mem.redis_mb / 1024)
    pg, _ = cat.postgres_for(db_busy_cores, s.costs.postgres, mem.pg_memory_mb / 1024)
    return redis, pg


def _cheapest(load: Any, mem_gb: Any, caps: Any, rams: Any, prices: Any) -> tuple[Any, Any]:
    # Per configuration the cheapest tier within the sizing headroom (else the largest), as
    # ``Catalogue.redis_for`` / ``postgres_for`` choose one; returns (price, tier index).
    order = np.argsort(prices)
    fits = (np.asarray(load)[..., None] <= SIZING_HEADROOM * caps[order]) & (
        np.asarray(mem_gb)[..., None] <= SIZING_HEADROOM * rams[order]
    )
    largest = int(np.argmax(caps))
    idx = np.where(fits.any(axis=-1), order[fits.argmax(axis=-1)], largest)
    return prices[idx], idx


def service_tiers(
    s: Scenario, ops: Any, db_busy: Any, mailboxes: Any, syncs_per_s: Any, processes: Any
) -> dict[str, Any]:
    """Vectorised ``size_tiers`` for the fast path's grids: price, utilisation and memory of
    the Redis and PostgreSQL tiers each configuration needs."""
    cat = load_catalogue(s.costs.catalogue)
    mem = store_memory(s, mailboxes, syncs_per_s, processes)
    out: dict[str, Any] = {"redis_mb": mem.redis_mb, "pg_memory_mb": mem.pg_memory_mb}
    for kind, tiers, load, cap_of, need, named in (
        ("redis", cat.redis, ops, "ops_per_s", mem.redis_mb / 1024, s.costs.redis),
        ("postgres", cat.postgres, db_busy, "vcpu", mem.pg_memory_mb / 1024, s.costs.postgres),
    ):
        caps = np.array([float(getattr(t, cap_of)) for t in tiers.values()])
        rams = np.array([t.ram_gb for t in tiers.values()])
        prices = np.array([t.usd_month for t in tiers.values()])
        if named is not None:
            idx: Any = np.full(np.shape(load), list(tiers).index(named))
            price = prices[idx]
        else:
            price, idx = _cheapest(load, need, caps, rams, prices)
        out[f"{kind}_cost"] = price
        out[f"{kind}_tier"] = idx
        out[f"{kind}_util"] = np.asarray(load) / caps[idx]
        out[f"{kind}_mem_util"] = np.asarray(need) / rams[idx]
    return out


def mean_load(runs: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Scalars averaged over replications (NaN-free), to size one deployment for all."""
    keys = {k for r in runs for k in r}
    out = {}
    for k in keys:
        vals = [r[k] for r in runs if k in r and not math.isnan(r[k])]
        out[k] = sum(vals) / len(vals) if vals else float("nan")
    return out


def _loads(s: Scenario, sc: Mapping[str, float]) -> tuple[float, float]:
    r = s.resources
    w = sc["window_s"]
    cycles = sc["cycles_per_min"] * w / 60
    db_cores = (sc["db_ms_total"] + cycles * r.db_ms_per_claim) / 1000 / w
    quotas_per_request = 2.0  # a mailbox bucket and an app bucket per provider
    ops = (
        sc["jobs_per_s"] * r.redis_ops_per_job
        + sc.get("gated_requests_per_s", sc["requests_per_s"])
        * r.redis_ops_per_request
        * quotas_per_request
        + cycles / w * 2
    )
    return ops, db_cores


def tiers_for_runs(s: Scenario, runs: Sequence[Mapping[str, float]]) -> tuple[str, str]:
    """One Redis and one PostgreSQL tier for all replications of a scenario, sized on their
    mean load, so that a deployment has one price."""
    sc = mean_load(runs)
    ops, db = _loads(s, sc)
    return size_tiers(s, ops, db, store_memory(s, sc["mailboxes"], sc["jobs_per_s"]))


def derive(
    s: Scenario, sc: dict[str, float], tiers: tuple[str, str] | None = None
) -> dict[str, float]:
    """Resource, cost and headroom figures added to one run's scalars; ``tiers`` (Redis,
    PostgreSQL) fixes the managed tiers instead of sizing them on this run."""
    r, d = s.resources, s.daemon
    cat = load_catalogue(s.costs.catalogue)
    inst = cat.instance(d.instance)
    w = sc["window_s"]
    k, h = d.processes, d.hosts
    per_host = math.ceil(k / h)
    cycles = sc["cycles_per_min"] * w / 60
    # Plus what each process burns with nothing to sync (queue polling, timers, lock renewal).
    cores = (sc["cpu_ms_total"] + cycles * r.cpu_ms_per_cycle) / 1000 / w
    cores += k * r.cpu_ms_per_s_process / 1000
    out: dict[str, float] = {}
    out["cpu_cores_total"] = cores
    out["cpu_core_per_process"] = cores / k
    out["cpu_pct_host"] = cores / k * per_host / inst.vcpu * 100
    workers = s.profile().concurrency.total
    inflight = min(sc["max_inflight"] / k, workers)
    # Pooled IMAP connections: the busiest process at its sampled peak.
    conns = sc.get("imap_conn_process_peak", 0.0)
    conns = 0.0 if math.isnan(conns) else conns
    rss = (
        r.rss_base_mb
        + r.rss_per_job_mb * inflight
        + r.rss_per_mailbox_kb * sc["mailboxes"] / 1024
        + r.rss_per_imap_connection_kb * conns / 1024
    )
    out["rss_mb_process"] = rss
    out["ram_gb_host"] = rss * per_host / 1024
    ops, db_cores = _loads(s, sc)
    mem = store_memory(s, sc["mailboxes"], sc["jobs_per_s"])
    redis_name, pg_name = tiers or size_tiers(s, ops, db_cores, mem)
    pg, redis = cat.postgres[pg_name], cat.redis[redis_name]
    out["db_busy_cores"] = db_cores
    out["db_util"] = db_cores / pg.vcpu
    out["redis_ops_per_s"] = ops
    out["redis_util"] = ops / redis.ops_per_s
    out["redis_mb"] = mem.redis_mb
    out["pg_memory_mb"] = mem.pg_memory_mb
    out["pg_data_gb"] = mem.pg_data_gb
    cost = monthly_cost(cat, Deployment(h, d.instance, redis_name, pg_name))
    out["cost_month"] = cost
    out["cost_per_tenant"] = cost / s.population.tenants
    out["cost_hosts"] = h * inst.usd_month
    out["cost_redis"] = redis.usd_month
    out["cost_postgres"] = pg.usd_month
    # Tier indices into the catalogue (the same for every replication when ``tiers`` is set).
    out["redis_tier"] = float(list(cat.redis).index(redis_name))
    out["postgres_tier"] = float(list(cat.postgres).index(pg_name))
    # Headroom ratios (1.0 = at the limit) used to name the bottleneck.
    c = s.criteria
    for t in TIERS:
        u = sc.get(f"util_{t}", float("nan"))
        out[f"ratio_workers_{t}"] = 0.0 if math.isnan(u) else u
    out["ratio_scheduler"] = sc["claimed_per_cycle"] / s.profile().batch_size
    out["ratio_cpu"] = max(out["cpu_pct_host"] / c.cpu_pct_max, out["cpu_core_per_process"])
    out["ratio_ram"] = out["ram_gb_host"] / min(c.ram_gb_max, inst.ram_gb)
    out["ratio_database"] = out["db_util"] / SERVICE_HEADROOM
    out["ratio_redis"] = max(out["redis_util"], mem.redis_mb / 1024 / redis.ram_gb) / (
        SERVICE_HEADROOM
    )
    if "imap_conn_account_peak" in sc:
        # Connections one account holds against what its server accepts at once.
        out["ratio_imap_connections"] = sc["imap_conn_account_peak"] / sc["imap_conn_limit"]
    for key, value in sc.items():
        if key.startswith("quota_util_"):
            out["ratio_quota_" + key.removeprefix("quota_util_")] = value
    return out


def tiers_of(catalogue: str) -> tuple[list[str], list[str]]:
    """Names of the Redis and PostgreSQL tiers (for reports)."""
    cat = load_catalogue(catalogue)
    return list(cat.redis), list(cat.postgres)
