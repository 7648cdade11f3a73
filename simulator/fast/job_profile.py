"""``JobProfile``: the per-sync figures of one scenario's population that ``sampling``
measures once and ``analytic.evaluate`` scales to grids of configurations."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.model.imap_pool import ImapProfile

Arr = np.ndarray

# Queue waits of a full sync's later chunks (seconds) at which a profile holds the share of
# full syncs a run counts (``JobProfile.run_shares`` interpolates between them).
RUN_WAITS = (0.0, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)


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
    # These are for chunks that start as soon as their quota is back; ``run_shares`` gives
    # them for chunks that also wait in the queue.
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
    # One worker's completions by u mean incremental job times (``drain.GRID``), mean and
    # variance, with the sampled job times back to back: how a batch drains.
    renewal_mean: tuple[float, ...] = ()
    renewal_var: tuple[float, ...] = ()
    # ``cpu_ms_run`` and ``run_held_share`` when every chunk after a full sync's first waits
    # ``RUN_WAITS`` seconds in the queue (dispatch included): each wait lengthens the sync.
    run_cpu_ms_by_wait: tuple[float, ...] = ()
    run_held_by_wait: tuple[float, ...] = ()
    # A quota-chunked full sync as the release cycle sees it (``fast.cycle_map``): sampled
    # chunks' worker time and the quota pause after each, and the jobs of each sampled full
    # sync; empty without chunking.
    chunk_runs: tuple[float, ...] = ()
    chunk_pauses: tuple[float, ...] = ()
    jobs_per_full: tuple[float, ...] = ()
    # The sampled incremental syncs' job times, seconds (``phased_map`` draws from them).
    job_times: tuple[float, ...] = ()

    def run_shares(self, chunk_wait: Arr | float) -> tuple[Arr, Arr]:
        """(CPU ms per sync, share of full syncs' worker time) a run counts when each later
        chunk of a full sync waits ``chunk_wait`` seconds in the queue."""
        if not self.run_cpu_ms_by_wait:
            w = np.zeros_like(np.asarray(chunk_wait, dtype=float))
            return w + self.cpu_ms_run, w + self.run_held_share
        w = np.asarray(chunk_wait, dtype=float)
        return (
            np.interp(w, RUN_WAITS, self.run_cpu_ms_by_wait),
            np.interp(w, RUN_WAITS, self.run_held_by_wait),
        )
