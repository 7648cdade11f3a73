"""The daemon's per-process IMAP connection pools: tracked per sync, and in closed form.

Each daemon process keeps logged-in connections per mailbox login
(``daemon.providers.imap_pool``). A sync takes one: an idle connection is reused, with a
NOOP first when it idled longer than ``idle_keepalive_s``; a process with no connection
younger than ``max_idle_s`` for the mailbox, or whose login is older than the
re-authentication bound (``policy.imap_reauth_after``: under 0.9 x the mailbox's sync
interval, so every scheduled sync logs in), opens one (TCP and TLS handshakes, LOGIN,
ENABLE). Jobs come from queues shared by all processes, so which process runs a sync is
modelled as a uniform draw per sync: exact for one process, and for K processes the even
spread the rest of the model assumes (a mailbox's syncs do not stick to the process that
holds its connection).

``ConnectionPools`` tracks, per IMAP mailbox and process, when the pool would close the
connection and when it logged in, and counts logins, NOOPs and the connections held.
``pool_odds`` gives the fast path the same figures from the mean gap between a mailbox's
syncs.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import numpy as np

from daemon import policy
from simulator.model.gate import LOGIN, NOOP, REUSE

Arr = np.ndarray


class ConnectionPools:
    """Live pooled connections of every IMAP mailbox on every process."""

    def __init__(
        self,
        is_imap: Arr,
        processes: int,
        keepalive_s: float,
        max_idle_s: float,
        seed: int,
        reauth_s: Arr | float = math.inf,
    ) -> None:
        self.k = processes
        self.keepalive_s = keepalive_s
        self.max_idle_s = max_idle_s
        rows = np.flatnonzero(is_imap)
        self._rows = rows
        self.n = int(rows.size)
        row = np.full(is_imap.size, -1, dtype=np.int64)
        row[rows] = np.arange(self.n)
        self.row: list[int] = row.tolist()
        # When each process's pool would close the mailbox's connection (-inf: none open) ...
        self.expire = np.full((self.n, processes), -math.inf)
        # ... when that connection logged in, and each mailbox's re-authentication bound
        # (``reauth_s`` per mailbox of the population, or one value for all).
        self.born = np.full((self.n, processes), -math.inf)
        bound = np.broadcast_to(np.asarray(reauth_s, dtype=float), is_imap.shape)[rows]
        self.reauth: list[float] = bound.tolist()
        self._rnd = random.Random(seed)
        # The daemon's sweeper closes a session that can no longer serve (idle past
        # max_idle_s, or its login past the bound) at its next sweep: until then it is held.
        self.sweep_s = policy.imap_sweep_every(max_idle_s)
        self.phase = np.asarray([self._rnd.random() * self.sweep_s for _ in range(processes)])
        self.closed = np.full((self.n, processes), -math.inf)
        self.reset_counters()

    def _swept(self, usable: Arr | float, p: Arr | int) -> Arr:
        """The first sweep of process ``p`` at or after ``usable``."""
        ph = self.phase[p]
        out: Arr = ph + np.ceil((np.asarray(usable) - ph) / self.sweep_s) * self.sweep_s
        return out

    def reset_counters(self) -> None:
        """Start the measurement window."""
        self.takes = [0, 0, 0]  # REUSE, NOOP, LOGIN
        self.account_peak = 0
        self.samples = 0
        self.held_sum = np.zeros(self.k)
        self.process_peak = 0

    def warm(self, last_use: Arr, interval: Arr, rng: np.random.Generator) -> None:
        """Pools of a daemon that has been running: the syncs before t=0 (one interval
        apart, the latest at ``last_use``, per mailbox) each ran on a random process."""
        last, every = last_use[self._rows], interval[self._rows]
        idx = np.arange(self.n)
        back = math.ceil(self.max_idle_s / max(float(np.min(every, initial=1.0)), 1.0))
        for j in range(back + 1):
            # Never-synced mailboxes (NaN) hold nothing.
            until = last - j * every + self.max_idle_s
            proc = rng.integers(0, self.k, self.n)
            live = until > 0
            cur = self.expire[idx[live], proc[live]]
            self.expire[idx[live], proc[live]] = np.maximum(cur, until[live])
            # Logged in at that sync: exact when syncs are at least the bound apart.
            born = self.born[idx[live], proc[live]]
            self.born[idx[live], proc[live]] = np.maximum(born, (last - j * every)[live])
            bound = np.asarray(self.reauth)[idx[live]]
            usable = np.minimum(until[live], (last - j * every)[live] + bound)
            shut = self._swept(usable, proc[live])
            cur = self.closed[idx[live], proc[live]]
            self.closed[idx[live], proc[live]] = np.maximum(cur, shut)

    def take(self, m: int, now: float, counting: bool) -> tuple[int, int]:
        """(process, how): the process that runs mailbox ``m``'s sync and how it gets its
        connection (``REUSE``, ``NOOP`` or ``LOGIN``)."""
        r = self.row[m]
        p = int(self._rnd.random() * self.k) if self.k > 1 else 0
        expire = self.expire
        e = float(expire[r, p])
        if e > now and now - float(self.born[r, p]) < self.reauth[r]:
            idle = now - (e - self.max_idle_s)
            how = NOOP if idle > self.keepalive_s else REUSE
        else:
            how = LOGIN
            self.born[r, p] = now
            if counting:
                # A login that replaces this process's unswept one does not add a connection.
                closed = self.closed[r]
                held = int(np.count_nonzero(closed > now)) + (0 if closed[p] > now else 1)
                if held > self.account_peak:
                    self.account_peak = held
        # In use: live until given back.
        expire[r, p] = math.inf
        self.closed[r, p] = math.inf
        if counting:
            self.takes[how] += 1
        return p, how

    def give_back(self, m: int, p: int, at: float, broken: bool) -> None:
        """The sync ended at ``at``; a failed sync's connection is not pooled again."""
        r = self.row[m]
        if broken:
            self.expire[r, p] = self.closed[r, p] = at
            return
        self.expire[r, p] = at + self.max_idle_s
        usable = min(at + self.max_idle_s, float(self.born[r, p]) + self.reauth[r])
        self.closed[r, p] = float(self._swept(usable, p))

    def sample(self, now: float) -> None:
        """Count the connections each process holds now."""
        held = np.count_nonzero(self.closed > now, axis=0)
        self.held_sum += held
        self.samples += 1
        top = int(held.max(initial=0))
        if top > self.process_peak:
            self.process_peak = top

    def scalars(self, window_s: float) -> dict[str, float]:
        """Logins, NOOPs and connections held over the measurement window."""
        syncs = sum(self.takes)
        w = max(window_s, 1e-9)
        per_process = float(self.held_sum.mean() / self.samples) if self.samples else math.nan
        return {
            "imap_syncs_per_min": syncs / w * 60,
            "imap_logins_per_min": self.takes[LOGIN] / w * 60,
            "imap_noops_per_min": self.takes[NOOP] / w * 60,
            "imap_login_share": self.takes[LOGIN] / syncs if syncs else 0.0,
            "imap_noop_share": self.takes[NOOP] / syncs if syncs else 0.0,
            "imap_reuse_share": self.takes[REUSE] / syncs if syncs else 0.0,
            "imap_conn_account_peak": float(self.account_peak),
            "imap_conn_account_mean": per_process * self.k / self.n if self.n else 0.0,
            "imap_conn_process_mean": per_process,
            "imap_conn_process_peak": float(self.process_peak) if self.samples else math.nan,
        }


def reauth_bounds(reauth_after_s: float, interval_s: Arr | float) -> Arr:
    """The daemon's re-authentication bound (``policy.imap_reauth_after``), element-wise
    over the intervals of a population or a sweep."""
    out: Arr = np.vectorize(policy.imap_reauth_after, otypes=[float])(reauth_after_s, interval_s)
    return out


def _recent(window: Arr | float, gap: Arr | float) -> Arr:
    # Earlier syncs of a mailbox whose connection was given back within ``window`` of a take.
    out: Arr = np.floor(np.maximum(np.asarray(window, dtype=float), 0.0) / np.asarray(gap))
    return out


def pool_odds(
    gap: Arr | float,
    busy: float,
    processes: Arr | float,
    keepalive_s: float,
    max_idle_s: float,
    reauth_s: Arr | float = math.inf,
) -> dict[str, Arr]:
    """Closed form of the pools when a mailbox's syncs start ``gap`` seconds apart, each
    lasting ``busy``, on one of ``processes`` drawn uniformly.

    The process that takes the sync last ran the mailbox j syncs ago with probability
    (1/K)(1 - 1/K)^(j-1); its connection idled j * gap - busy. A login also serves only
    until ``reauth_s`` after it: of the r = ceil(reauth / gap) - 1 later syncs that fall
    within that time, each runs on its process with probability 1/K, so a login serves
    1 + r/K syncs on average and at least 1 / (1 + r/K) of syncs log in (exact when
    gap >= reauth, as with the default bound under 0.9 x the interval: every sync logs in).
    Returns the shares of syncs that log in and that send a NOOP, the expected connections
    one process holds per mailbox at a random instant, and the most one account holds.
    """
    gap = np.maximum(np.asarray(gap, dtype=float), 1e-9)
    k = np.asarray(processes, dtype=float)
    q = 1.0 - 1.0 / k
    within_keepalive = _recent(keepalive_s + busy, gap)
    within_idle = _recent(max_idle_s + busy, gap)
    reuses = np.maximum(np.ceil(np.asarray(reauth_s, dtype=float) / gap) - 1, 0.0)
    login = np.maximum(q**within_idle, 1 / (1 + reuses / k))
    noop = np.maximum(q**within_keepalive - login, 0.0)
    # At a random instant the last give-backs lie at uniform phases: interpolate. A session
    # serves until max_idle_s after its sync or the bound after its login, whichever comes
    # first, and is closed at the next sweep, on average half a sweep period later.
    serves = np.minimum(max_idle_s + busy, np.asarray(reauth_s, dtype=float))
    span = (serves + policy.imap_sweep_every(max_idle_s) / 2) / gap
    lo = np.floor(span)
    frac = span - lo
    held = 1.0 - ((1 - frac) * q**lo + frac * q ** (lo + 1))
    peak = np.minimum(k, within_idle + 1)
    return {"login": login, "noop": noop, "held": held, "account_peak": peak}


@dataclass(frozen=True)
class ImapProfile:
    """What IMAP syncs add on top of their calls: connection set-up, by the pool's state."""

    share: float  # share of mailboxes (and so of syncs) on IMAP
    login_s: float  # mean time of handshakes + LOGIN (+ ENABLE)
    noop_s: float
    login_calls: int
    busy_s: float  # mean time an IMAP sync holds its connection
    keepalive_s: float
    max_idle_s: float
    connection_limit: int
    reauth_after_s: float = math.inf  # the setting; the bound also depends on the interval


@dataclass(frozen=True)
class PoolCosts:
    """The pools' effect on the average sync and on each process, per configuration."""

    extra_s: Arr | float  # set-up time added to the average sync (all providers)
    extra_cpu_ms: Arr | float
    login_share: Arr | float  # of IMAP syncs
    noop_share: Arr | float
    held_mean: Arr | float  # connections one process holds, mean
    held_peak: Arr | float  # the same, mean + 3 standard deviations
    account_peak: Arr | float
    limit: float


NO_IMAP = PoolCosts(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, math.inf)


def pool_costs(
    imap: ImapProfile | None,
    mailboxes: Arr | float,
    gap: Arr | float,
    processes: Arr | float,
    cpu_ms_per_call: float,
    interval: Arr | float | None = None,
    cpu_ms_per_connect: float = 0.0,
) -> PoolCosts:
    """``pool_odds`` turned into time, CPU and connections for the fast path; ``interval``
    (the sync interval) sets the re-authentication bound."""
    if imap is None:
        return NO_IMAP
    reauth = (
        imap.reauth_after_s if interval is None else reauth_bounds(imap.reauth_after_s, interval)
    )
    odds = pool_odds(gap, imap.busy_s, processes, imap.keepalive_s, imap.max_idle_s, reauth)
    login, noop, held = odds["login"], odds["noop"], odds["held"]
    n = np.asarray(mailboxes, dtype=float) * imap.share
    sd = np.sqrt(n * held * (1 - held))
    return PoolCosts(
        extra_s=imap.share * (login * imap.login_s + noop * imap.noop_s),
        extra_cpu_ms=imap.share
        * ((login * imap.login_calls + noop) * cpu_ms_per_call + login * cpu_ms_per_connect),
        login_share=login,
        noop_share=noop,
        held_mean=n * held,
        held_peak=n * held + 3 * sd,
        account_peak=odds["account_peak"],
        limit=float(imap.connection_limit),
    )
