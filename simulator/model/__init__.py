"""The event model: the daemon simulated job by job on SimPy.

``engine`` (schedulers, tier queues, workers, pushes, sampling) and ``lifecycle`` (a job's
start, request walk and end), ``station`` (a multi-server station with priority classes),
``job``, ``general_walk``, ``gate`` and ``real_window`` (a sync's requests through the quota
gates of one provider, and the real provider's own window), ``mailboxes`` (mailbox state and
the scheduler's claim), ``tokens`` and ``imap_pool`` (per-process caches and pools),
``metrics`` (what a replication measures) and ``resources`` (CPU, RAM, stores and cost from
what was measured).
"""

from simulator.model.engine import JobTrace, Mode, Simulation
from simulator.model.gate import LOGIN, Latency, NOOP, ProviderRuntime, REUSE, Request, split_requests
from simulator.model.imap_pool import ConnectionPools, ImapProfile, PoolCosts, pool_costs, pool_odds
from simulator.model.mailboxes import MailboxTable
from simulator.model.metrics import EDGES, NB, RunMetrics, TIER_NAMES, hist_quantile
from simulator.model.resources import Deployment, KEEP_COMPLETED, KEEP_FAILED, REDIS_BYTES_PER_KEPT_JOB, derive, monthly_cost, service_tiers, store_memory, tiers_for_runs
from simulator.model.station import Station, TierPools
from simulator.model.tokens import refresh_share

__all__ = ["ConnectionPools", "Deployment", "EDGES", "ImapProfile", "JobTrace", "KEEP_COMPLETED", "KEEP_FAILED", "LOGIN", "Latency", "MailboxTable", "Mode", "NB", "NOOP", "PoolCosts", "ProviderRuntime", "REDIS_BYTES_PER_KEPT_JOB", "REUSE", "Request", "RunMetrics", "Simulation", "Station", "TIER_NAMES", "TierPools", "derive", "hist_quantile", "monthly_cost", "pool_costs", "pool_odds", "refresh_share", "service_tiers", "split_requests", "store_memory", "tiers_for_runs"]
