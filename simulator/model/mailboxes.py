"""Mailbox state and the scheduler's claim, as the daemon keeps them in PostgreSQL.

The event simulation and the parity harness both drive this module, and every decision
goes through ``daemon.policy`` (``assign_rows``, ``plan_cycle``'s decisions, on the batch
``select_batch`` would take, ``next_due``, ``on_failure``, ``sync_now_assignment``), so
the simulator decides exactly what the policy decides. ``Box`` holds what the event
simulation alone keeps of a mailbox (mail not yet stored, token-cache slot).
"""

from __future__ import annotations

import heapq
import math
import random
from bisect import bisect_right
from collections.abc import Sequence
from typing import TYPE_CHECKING

from daemon import policy
from daemon.policy import (
    Assignment,
    DueMailbox,
    DueRow,
    ErrorKind,
    FailureDecision,
    Outcome,
    Profile,
    SyncKind,
    Tier,
)

if TYPE_CHECKING:  # import cycle: the simulation's modules import this one
    from simulator.inputs.population import PopulationArrays
    from simulator.model.gate import ProviderRuntime, Request
    from simulator.model.tokens import TokenCaches

IDLE, QUEUED, RUNNING = 0, 1, 2
ACTIVE, NEEDS_REAUTH, ERROR = 0, 1, 2
# Due entries are kept in buckets of this many seconds (see ``MailboxTable``).
BUCKET_S = 1.0
# Bucket of due instants too far off to index (never, in practice).
_FAR = 1e15
_FAR_KEY = int(_FAR // BUCKET_S)
Entry = tuple[float, int, int]  # (due at, mailbox, version)


class MailboxTable:
    """Columns of the ``mailboxes`` table, one list per column, indexed by mailbox id."""

    def __init__(
        self,
        next_sync_at: Sequence[float],
        last_success_at: Sequence[float | None],
        has_cursor: Sequence[bool],
        interval_s: Sequence[float],
    ) -> None:
        n = len(next_sync_at)
        if not len(last_success_at) == len(has_cursor) == len(interval_s) == n:
            raise ValueError("mailbox columns must have equal lengths")
        self.n = n
        self.next_sync_at = list(next_sync_at)
        self.last_success_at = list(last_success_at)
        self.has_cursor = list(has_cursor)
        self.interval_s = list(interval_s)
        self.state = bytearray(n)
        self.status = bytearray(n)
        self.failures = [0] * n
        # A push arrived while queued or running: due again as soon as the run ends.
        self.push_pending = bytearray(n)
        self._version = [0] * n
        # Due entries (due at, mailbox, version), an entry stale once the version moved on.
        # Not one heap of every mailbox: popping a heap of 10,000 tuples is a dozen tuple
        # comparisons on cold memory per claimed mailbox, the most expensive step of the
        # whole claim. Entries go to buckets of ``BUCKET_S`` seconds (a heap of bucket keys
        # finds the due ones); a claim sorts only the few hundred entries due since the last
        # one, and keeps those over the batch size sorted for the next (``_overdue``).
        self._buckets: dict[int, list[Entry]] = {}
        self._keys: list[int] = []
        self._overdue: list[Entry] = []
        for i, t in enumerate(next_sync_at):
            self._add(t, i, 0)

    def due_mailbox(self, m: int) -> DueMailbox:
        """The policy's view of mailbox ``m``."""
        return DueMailbox(m, self.next_sync_at[m], self.last_success_at[m], self.has_cursor[m])

    def arm(self, m: int, at: float) -> None:
        """Set ``next_sync_at`` of an idle mailbox (old heap entries become stale)."""
        v = self._version[m] + 1
        self._version[m] = v
        self.next_sync_at[m] = at
        self._add(at, m, v)

    def _add(self, t: float, m: int, v: int) -> None:
        k = int(t // BUCKET_S) if -_FAR < t < _FAR else (_FAR_KEY if t > 0 else -_FAR_KEY)
        b = self._buckets.get(k)
        if b is None:
            self._buckets[k] = [(t, m, v)]
            heapq.heappush(self._keys, k)
        else:
            b.append((t, m, v))

    def _pop_due(self, now: float, limit: int) -> list[DueRow]:
        # Entries sort like policy.due_order_key, so the first ``limit`` valid due entries
        # are exactly the batch select_batch would take from the whole table. An entry
        # found stale stays stale (a mailbox becomes idle again only through a new version,
        # or inactive for good), so dropping every stale one seen changes no later claim.
        out: list[DueRow] = []
        if limit < 1:
            return out
        keys, buckets = self._keys, self._buckets
        due = self._overdue
        # The last bucket that may hold due entries (keyed as ``_add`` keys them).
        top = int(now // BUCKET_S) if -_FAR < now < _FAR else _FAR_KEY
        while keys and keys[0] <= top:
            due += buckets.pop(heapq.heappop(keys))
        if not due:
            return out
        due.sort()
        if due[-1][0] > now:
            # The last bucket is only partly due: its later entries go back, as that bucket
            # (every entry later than ``now`` came from bucket ``top``: the earlier buckets
            # and the overdue ones were due before now).
            cut = bisect_right(due, (now, math.inf, math.inf))
            buckets[top] = due[cut:]
            heapq.heappush(keys, top)
            del due[cut:]
        version, state, status = self._version, self.state, self.status
        last, cursor = self.last_success_at, self.has_cursor
        i = 0
        for t, m, v in due:
            i += 1
            if v != version[m] or state[m] != IDLE or status[m] != ACTIVE:
                continue
            # Laid out as DueMailbox(m, t, ...), a plain tuple: cheaper to build. Claimed:
            # queued from now on (``assign_rows`` does not read the state).
            out.append((m, t, last[m], cursor[m]))
            state[m] = QUEUED
            if len(out) == limit:
                break
        self._overdue = due[i:]
        return out

    def claim(self, now: float, profile: Profile) -> list[Assignment]:
        """One scheduler cycle: the policy's assignments; claimed mailboxes become queued."""
        return [Assignment._make(a) for a in self.claim_rows(now, profile)]

    def claim_rows(self, now: float, profile: Profile) -> list[tuple[int, Tier, SyncKind]]:
        """``claim`` with each assignment a plain (mailbox id, tier, kind) tuple."""
        # The batch is what ``policy.select_batch`` takes from the whole table, in its order
        # (the parity tests hold the claims to ``plan_cycle``), so it is assigned as
        # ``plan_cycle`` assigns it (``assign_rows``: ``assign`` on each, in one call),
        # without sorting it again.
        return policy.assign_rows(self._pop_due(now, profile.batch_size), now, profile)

    def due_backlog(self, now: float) -> int:
        """Idle active mailboxes already due (the claim backlog); O(entries) so for samples only."""
        entries = [e for b in self._buckets.values() for e in b] + self._overdue
        return sum(
            1
            for t, m, v in entries
            if t <= now
            and v == self._version[m]
            and self.state[m] == IDLE
            and self.status[m] == ACTIVE
        )

    def push(self, m: int, now: float, profile: Profile) -> Assignment | None:
        """A push notification: a high-tier assignment if idle; a running mailbox is flagged
        to be due again when its run ends; a queued one will read the new mail anyway."""
        if self.status[m] != ACTIVE:
            return None
        if self.state[m] == RUNNING:
            self.push_pending[m] = 1
            return None
        if self.state[m] != IDLE:
            return None
        self.state[m] = QUEUED
        self._version[m] += 1  # its due entry is superseded by this sync
        return policy.sync_now_assignment(self.due_mailbox(m), now, profile)

    def start(self, m: int) -> None:
        """A worker picked the job up."""
        self.state[m] = RUNNING

    def succeed(self, m: int, started_at: float, finished_at: float) -> None:
        """A successful sync: cursor saved, due again one interval after it started."""
        self.last_success_at[m] = finished_at
        self.has_cursor[m] = True
        self.failures[m] = 0
        self.state[m] = IDLE
        due = policy.next_due(started_at, self.interval_s[m])
        if self.push_pending[m]:
            self.push_pending[m] = 0
            due = finished_at
        # arm() and _add(), inlined: this runs once per simulated sync.
        v = self._version[m] + 1
        self._version[m] = v
        self.next_sync_at[m] = due
        # (``due`` is a start or an end plus an interval: never below -_FAR.)
        k = int(due // BUCKET_S) if due < _FAR else _FAR_KEY
        b = self._buckets.get(k)
        if b is None:
            self._buckets[k] = [(due, m, v)]
            heapq.heappush(self._keys, k)
        else:
            b.append((due, m, v))

    def fail(
        self,
        m: int,
        kind: ErrorKind,
        now: float,
        rng: random.Random,
        retry: policy.RetryPolicy,
        retry_after_s: float | None = None,
    ) -> FailureDecision:
        """A failed sync: retry later with backoff, or park the mailbox."""
        d = policy.on_failure(kind, self.failures[m], now, rng, retry, retry_after_s)
        self.failures[m] = d.failures
        self.state[m] = IDLE
        self.push_pending[m] = 0
        if d.outcome is Outcome.RETRY:
            assert d.retry_at is not None  # the policy always sets it for RETRY
            self.arm(m, d.retry_at)
        else:
            self.status[m] = NEEDS_REAUTH if d.outcome is Outcome.NEEDS_REAUTH else ERROR
        return d


class Box:
    """What the engine keeps of one mailbox beside its table row, read on every job: kept
    in one object so that a job finds it in one place rather than in a list per field."""

    __slots__ = (
        "added",
        "arrived",
        "changed",
        "content_at",
        "deleted",
        "provider",
        "pv",
        "rate",
        "resume",
        "serves",
        "size",
        "token",
    )

    def __init__(
        self, provider: int, pv: ProviderRuntime, rate: float, size: int, token: int, serves: float
    ) -> None:
        self.provider, self.pv, self.rate, self.size = provider, pv, rate, size
        # Mail events drawn but not yet stored by a successful sync (added, flag changes,
        # deletions), and when the contents were last drawn.
        self.added = self.changed = self.deleted = 0
        self.content_at = 0.0
        # Arrival instants of mail not yet stored (None: none pending), drawn from a stream
        # of their own so the other draws do not depend on them.
        self.arrived: list[float] | None = None
        # A full sync stopped for quota: its requests, the first still to make, and the
        # messages still to store (None: none stopped since the last success).
        self.resume: tuple[tuple[Request, ...], int, int] | None = None
        # The mailbox's first slot in ``TokenCaches.until`` and how long a token serves
        # (OAuth providers; -1 and 0.0 otherwise).
        self.token, self.serves = token, serves

    @classmethod
    def all(
        cls,
        pop: PopulationArrays,
        prov: list[ProviderRuntime | None],
        tokens: TokenCaches | None,
    ) -> list[Box]:
        """One per mailbox of ``pop``."""
        n = pop.n
        rows = tokens.row if tokens is not None else [-1] * n
        k = tokens.k if tokens is not None else 1
        serves = tokens.serves if tokens is not None else []
        out = []
        for m, (p, rate, size) in enumerate(
            zip(pop.provider.tolist(), pop.arrivals_per_s.tolist(), pop.size.tolist(), strict=True)
        ):
            pv = prov[p]
            assert pv is not None  # every mailbox's provider has a runtime
            r = rows[m]
            token, serve = (r * k, serves[r]) if r >= 0 else (-1, 0.0)
            out.append(cls(p, pv, rate, size, token, serve))
        return out
