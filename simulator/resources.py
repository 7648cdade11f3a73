"""CPU, RAM, database, Redis and cost of a deployment from what a run measured."""

from __future__ import annotations

import math

from daemon.policy import TIERS
from simulator.catalogue import load_catalogue
from simulator.scenario import Scenario

# Above this share of its vCPUs a managed database or Redis is treated as saturated.
SERVICE_HEADROOM = 0.8


def derive(s: Scenario, sc: dict[str, float]) -> dict[str, float]:
    """Resource, cost and headroom figures added to one run's scalars."""
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
    db_cores = (sc["db_ms_total"] + cycles * r.db_ms_per_claim) / 1000 / w
    _pg_name, pg = cat.postgres_for(db_cores, s.costs.postgres)
    out["db_busy_cores"] = db_cores
    out["db_util"] = db_cores / pg.vcpu
    quotas_per_request = 2.0  # a mailbox bucket and an app bucket per provider
    ops = (
        sc["jobs_per_s"] * r.redis_ops_per_job
        + sc.get("gated_requests_per_s", sc["requests_per_s"])
        * r.redis_ops_per_request
        * quotas_per_request
        + cycles / w * 2
    )
    _redis_name, redis = cat.redis_for(ops, s.costs.redis)
    out["redis_ops_per_s"] = ops
    out["redis_util"] = ops / redis.ops_per_s
    cost = h * inst.usd_month + redis.usd_month + pg.usd_month
    out["cost_month"] = cost
    out["cost_per_tenant"] = cost / s.population.tenants
    out["cost_hosts"] = h * inst.usd_month
    out["cost_redis"] = redis.usd_month
    out["cost_postgres"] = pg.usd_month
    # Headroom ratios (1.0 = at the limit) used to name the bottleneck.
    c = s.criteria
    for t in TIERS:
        u = sc.get(f"util_{t}", float("nan"))
        out[f"ratio_workers_{t}"] = 0.0 if math.isnan(u) else u
    out["ratio_scheduler"] = sc["claimed_per_cycle"] / s.profile().batch_size
    out["ratio_cpu"] = max(out["cpu_pct_host"] / c.cpu_pct_max, out["cpu_core_per_process"])
    out["ratio_ram"] = out["ram_gb_host"] / min(c.ram_gb_max, inst.ram_gb)
    out["ratio_database"] = out["db_util"] / SERVICE_HEADROOM
    out["ratio_redis"] = out["redis_util"] / SERVICE_HEADROOM
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
