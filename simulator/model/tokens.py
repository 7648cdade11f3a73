"""The daemon's per-process OAuth access-token caches (Gmail and Graph).

Each daemon process keeps the access token of every mailbox it synced
(``daemon.oauth.TokenCache``) and asks the provider's token endpoint for a new one when the
cached token is missing or within ``EXPIRY_MARGIN_S`` of its expiry. Jobs come from queues
shared by all processes, so with K processes a mailbox's token is fetched by every process
that syncs it, up to K times per token lifetime: one more request (and its latency) in those
syncs. ``TokenCaches`` tracks, per mailbox and process, until when the cached token serves;
``refresh_share`` is the same in closed form for the fast path.

Which process runs a sync is drawn here for HTTP providers as ``ConnectionPools`` draws it
for IMAP (uniform, from a stream of its own).
"""

from __future__ import annotations

import math
import random

import numpy as np

from daemon.oauth import EXPIRY_MARGIN_S

Arr = np.ndarray


class TokenCaches:
    """Cached tokens of every OAuth mailbox on every process."""

    def __init__(self, uses_oauth: Arr, processes: int, lifetime_s: Arr, seed: int) -> None:
        self.k = processes
        rows = np.flatnonzero(uses_oauth)
        row = np.full(uses_oauth.size, -1, dtype=np.int64)
        row[rows] = np.arange(rows.size)
        self.row: list[int] = row.tolist()
        self._rows = rows
        # How long a fetched token serves: its lifetime less the daemon's refresh margin.
        self.serves = np.maximum(1.0, lifetime_s[rows] - EXPIRY_MARGIN_S).tolist()
        # Until when each process's cached token serves (-inf: none cached), row by row
        # (``row * k + process``); a flat list, since one scalar read per job is cheaper on
        # it than on a numpy array or a list per row.
        self.until: list[float] = [-math.inf] * (rows.size * processes)
        self.rnd = random.Random(seed)  # which process runs a sync
        self.refreshes = 0
        self.syncs = 0

    def warm(self, interval: Arr, rng: np.random.Generator) -> None:
        """Caches of processes that have run for a while: a process holds a mailbox's token
        if one of the mailbox's syncs of the last token lifetime ran there, with a remaining
        life drawn uniformly."""
        serves = np.asarray(self.serves)
        every = np.maximum(interval[self._rows], 1.0)
        visits = serves / every
        held = 1.0 - (1.0 - 1.0 / self.k) ** visits
        shape = (serves.size, self.k)
        have = rng.random(shape) < held[:, None]
        left = rng.random(shape) * serves[:, None]
        self.until = np.where(have, left, -math.inf).ravel().tolist()

    def take(self, m: int, now: float, counting: bool) -> tuple[int, bool]:
        """(process, refresh): the process that runs mailbox ``m``'s sync and whether it must
        fetch a token first."""
        r = self.row[m]
        p = int(self.rnd.random() * self.k) if self.k > 1 else 0
        i = r * self.k + p
        refresh = self.until[i] <= now
        if refresh:
            self.until[i] = now + self.serves[r]
        if counting:
            self.syncs += 1
            self.refreshes += refresh
        return p, refresh

    def refresh(self, m: int, now: float, counting: bool) -> bool:
        """``take`` without the process: whether mailbox ``m``'s sync fetches a token first.

        The event model runs the same lines inlined in ``lifecycle.JobLife._start`` (once per job).
        """
        r = self.row[m]
        k = self.k
        i = r * k + int(self.rnd.random() * k) if k > 1 else r
        if counting:
            self.syncs += 1
        until = self.until
        if until[i] > now:
            return False
        until[i] = now + self.serves[r]
        if counting:
            self.refreshes += 1
        return True

    def reset_counters(self) -> None:
        """Start the measurement window."""
        self.refreshes = 0
        self.syncs = 0

    def scalars(self) -> dict[str, float]:
        """Token requests per sync in the window."""
        return {"token_refresh_share": self.refreshes / self.syncs if self.syncs else 0.0}


def refresh_share(interval_s: Arr | float, processes: Arr | float, serves_s: float) -> Arr:
    """Steady-state share of syncs that fetch a token first (fast path).

    A process sees a given mailbox every ``K · interval`` on average; its token serves
    ``serves_s`` and is renewed at the first visit after that, so a renewal cycle lasts about
    ``serves_s + K · interval`` and K processes renew ``K`` times per cycle, against
    ``cycle / interval`` syncs.
    """
    i = np.asarray(interval_s, dtype=float)
    k = np.asarray(processes, dtype=float)
    cycle = serves_s + k * i
    out: Arr = np.minimum(1.0, k * i / cycle)
    return out
