"""Bounds on scenario input.

Every bound says why it exists: past it the model allocates more memory or runs longer than
any capacity question needs (a file with 10⁹ tenants asked numpy for 75 GiB), or the daemon
itself would refuse the value. The loader reports a value out of bounds as
``file: line N: field: reason``. The cost of an event simulation is estimated before it
starts by ``run_cost``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    pass

# --- bounds on the input ----------------------------------------------------------------

# The event model keeps about 1-2 KB per mailbox and process (measured: 1.0-2.0 KB with
# 20,000-200,000 mailboxes) and samples every mailbox every ``sample_interval_s``: a million
# mailboxes is a few GB per replication process, ten times Plan C.
MAX_TENANTS = 1_000_000
MAX_MAILBOXES = 1_000_000
# IMAP pools and token caches keep a value per mailbox and process.
MAX_PROCESSES = 1_000
# A month of simulated time covers every daily and weekly pattern a run can show; the
# default is two hours.
MAX_HORIZON_S = 30 * 86_400.0
# Each sample scans every mailbox; the scheduler runs every 10 s, so a faster sample shows
# nothing new.
MIN_SAMPLE_INTERVAL_S = 1.0
# Confidence intervals hardly narrow past a few dozen replications (the default is 5).
MAX_REPLICATIONS = 1_000
# Exchange Online's documented limit is a million items per folder; a full sync of the
# largest mailbox is then 200,000 Gmail requests (batches of 5 on the 2026 preset), each
# walked by the model.
MAX_MAILBOX_SIZE = 1_000_000
# The daemon's API accepts per-tenant and per-mailbox intervals of at most one day
# (``daemon.api``: ``sync_interval_s`` le=86400).
MAX_SYNC_INTERVAL_S = 86_400.0
# Mail one incremental sync reads (arrivals, flag changes and deletions over one interval);
# the model walks every request of a sync and the fast path samples 2,000 syncs.
MAX_MESSAGES_PER_SYNC = 100_000

# Why, by field (the loader adds it to pydantic's "less than or equal to ..." messages).
WHY: dict[str, str] = {
    "population.tenants": "the event model keeps 1-2 KB per mailbox and process and scans "
    "every mailbox at each sample: a million mailboxes is a few GB per replication",
    "daemon.processes": "the model keeps a value per mailbox and daemon process",
    "run.horizon_s": "a month of simulated time covers every daily and weekly pattern",
    "run.sample_interval_s": "each sample scans every mailbox, and the scheduler runs only "
    "every 10 s",
    "run.replications": "confidence intervals hardly narrow past a few dozen",
    "population.mailbox_size_cap": "Exchange Online allows a million items per folder, and "
    "the model walks every request of a full sync",
    "sync_interval_s": "the daemon's API accepts at most one day per tenant or mailbox",
    "messages_per_sync": "the model walks every request of a sync and the fast path samples "
    "2,000 syncs",
}

# Fast-path grids (``mailsync sweep``): about 40 float arrays per configuration.
MAX_GRID = 1_000_000
