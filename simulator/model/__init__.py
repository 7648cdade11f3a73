"""The event model: the daemon simulated job by job on SimPy.

``engine`` (schedulers, tier queues, workers, pushes, sampling), ``calendar`` (its event
loop), ``lifecycle`` (a job's start, request walk and end) and ``plain`` (the common
incremental sync in one step), ``station`` (a multi-server station with priority classes),
``job``, ``general_walk``, ``gate`` and ``real_window`` (a sync's requests through the quota
gates of one provider, and the real provider's own window), ``sampler`` (draws served from
numpy blocks), ``mailboxes`` (mailbox state and the scheduler's claim), ``tokens`` and
``imap_pool`` (per-process caches and pools), ``metrics`` (what a replication measures) and
``resources`` (CPU, RAM, stores and cost from what was measured).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from simulator.compiled import refuse_stale
from simulator.exports import lazy

# Inside a compiled build (``simulator.compiled``), never older than the sources.
refuse_stale(__file__)

if TYPE_CHECKING:
    from simulator.model.engine import JobTrace, Mode, Simulation
    from simulator.model.gate import (
        LOGIN,
        NOOP,
        REUSE,
        Latency,
        ProviderRuntime,
        Request,
        split_requests,
    )
    from simulator.model.imap_pool import (
        ConnectionPools,
        ImapProfile,
        PoolCosts,
        pool_costs,
        pool_odds,
    )
    from simulator.model.mailboxes import MailboxTable
    from simulator.model.metrics import (
        EDGES,
        NB,
        TIER_NAMES,
        RunMetrics,
        bin_index,
        hist_quantile,
    )
    from simulator.model.resources import (
        KEEP_COMPLETED,
        KEEP_FAILED,
        REDIS_BYTES_PER_KEPT_JOB,
        Deployment,
        derive,
        monthly_cost,
        service_tiers,
        store_memory,
        tiers_for_runs,
    )
    from simulator.model.sampler import Sampler
    from simulator.model.station import Station, TierPools
    from simulator.model.tokens import refresh_share

# Where each public name lives; imported on first use (``simulator.exports``).
_WHERE = {
    "ConnectionPools": "imap_pool",
    "Deployment": "resources",
    "EDGES": "metrics",
    "ImapProfile": "imap_pool",
    "JobTrace": "engine",
    "KEEP_COMPLETED": "resources",
    "KEEP_FAILED": "resources",
    "LOGIN": "gate",
    "Latency": "gate",
    "MailboxTable": "mailboxes",
    "Mode": "engine",
    "NB": "metrics",
    "NOOP": "gate",
    "PoolCosts": "imap_pool",
    "ProviderRuntime": "gate",
    "REDIS_BYTES_PER_KEPT_JOB": "resources",
    "REUSE": "gate",
    "Request": "gate",
    "Sampler": "sampler",
    "RunMetrics": "metrics",
    "Simulation": "engine",
    "Station": "station",
    "TIER_NAMES": "metrics",
    "TierPools": "station",
    "bin_index": "metrics",
    "derive": "resources",
    "hist_quantile": "metrics",
    "monthly_cost": "resources",
    "pool_costs": "imap_pool",
    "pool_odds": "imap_pool",
    "refresh_share": "tokens",
    "service_tiers": "resources",
    "split_requests": "gate",
    "store_memory": "resources",
    "tiers_for_runs": "resources",
}

__all__ = [
    "EDGES",
    "KEEP_COMPLETED",
    "KEEP_FAILED",
    "LOGIN",
    "NB",
    "NOOP",
    "REDIS_BYTES_PER_KEPT_JOB",
    "REUSE",
    "TIER_NAMES",
    "ConnectionPools",
    "Deployment",
    "ImapProfile",
    "JobTrace",
    "Latency",
    "MailboxTable",
    "Mode",
    "PoolCosts",
    "ProviderRuntime",
    "Request",
    "RunMetrics",
    "Sampler",
    "Simulation",
    "Station",
    "TierPools",
    "bin_index",
    "derive",
    "hist_quantile",
    "monthly_cost",
    "pool_costs",
    "pool_odds",
    "refresh_share",
    "service_tiers",
    "split_requests",
    "store_memory",
    "tiers_for_runs",
]

__getattr__ = lazy(__name__, _WHERE)
