"""One provider as the simulated daemon sees it: requests per sync, quota gates, latency, 429s.

Quota buckets are lazy GCRA (``daemon.gcra.Gcra``): they compute delays instead of running
refill processes. Per-mailbox buckets are touched by one job at a time, so a job can be
walked on a virtual clock; app-wide buckets are shared and are only ever consulted at the
current simulated instant, which keeps their queries in time order.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import numpy as np

from daemon import policy
from daemon.gcra import Gcra, split_cost
from daemon.policy import ProviderLimits, QuotaScope, SyncKind
from daemon.provider_settings import OAuthProviderSettings
from simulator.inputs.providers import GraphModel, ImapModel, ProviderModel
from simulator.model.real_window import RealWindow, real_bucket
from simulator.model.sampler import Sampler

# The daemon retries a throttled request in the sync this many times, and only when the
# Retry-After is at most this long: its settings' defaults, read rather than repeated.
_CALL = OAuthProviderSettings.model_fields
IN_SYNC_RETRIES: int = _CALL["max_call_retries"].default
RETRY_AFTER_CAP_S: float = _CALL["max_inline_wait_s"].default


class Latency(Sampler):
    """A ``Sampler`` that can also hand out its next draws in one piece."""

    __slots__ = ()

    def take(self, k: int) -> list[float]:
        """The next ``k`` draws: the values ``k`` calls would return, in their order (the
        same blocks drawn at the same moments, so seeded runs do not change)."""
        c = self.constant
        if c is not None:
            return [c] * k
        i = self._i
        j = i + k
        buf = self._buf
        if j <= len(buf):
            self._i = j
            return buf[i:j]
        return [self() for _ in range(k)]


# (latency sampler, quota-charged calls, enforced units, real-provider units, extra latency)
Request = tuple[Latency, int, int, int, float]
# Consecutive equal requests as one: (latency sampler, calls, units, extra latency, count).
Run = tuple[Latency, int, int, float, int]

# How an IMAP sync gets its connection from the process's pool (indexes ``setup``).
REUSE, NOOP, LOGIN = 0, 1, 2


def split_requests(
    method: str, count: int, requests: int, batch: int = policy.DEFAULT_FETCH.gmail_batch
) -> list[int]:
    """Inner calls per HTTP request, as the daemon's providers fill them (full batches of
    ``batch`` gets, then the rest)."""
    if requests <= 1:
        return [count]
    per = -(-count // requests)
    if method == "messages.get" and requests == -(-count // batch):
        per = batch
    return [per] * (requests - 1) + [count - per * (requests - 1)]


@dataclass(slots=True)
class ProviderCounters:
    """What one provider did inside the measurement window."""

    requests: int = 0
    calls: int = 0
    units: int = 0
    throttled: int = 0
    gate_wait_s: float = 0.0
    syncs: int = 0
    # Time spent in provider calls (gates, latency, Retry-After waits), summed over syncs.
    api_s: float = 0.0


class ProviderRuntime:
    """Quota gates, latency and throttling of one provider for one replication."""

    def __init__(
        self,
        name: str,
        model: ProviderModel,
        enforced: ProviderLimits | None,
        real: ProviderLimits | None,
        n_mailboxes: int,
        rng: np.random.Generator,
        prng: random.Random,
    ) -> None:
        self.name = name
        self.model = model
        self.enforced = enforced
        self.real = real
        self._prng = prng
        quotas = enforced.quotas if enforced is not None else ()
        self.mb_quotas = [q for q in quotas if q.scope is QuotaScope.MAILBOX]
        self.app_quotas = [q for q in quotas if q.scope is QuotaScope.APP]
        # The daemon's gate touches Redis only for providers with quotas.
        self.gated = bool(quotas)
        self.app = [Gcra.for_quota(q) for q in self.app_quotas]
        self.real_mb_quotas = (
            [q for q in real.quotas if q.scope is QuotaScope.MAILBOX] if real else []
        )
        self.real_app = (
            [real_bucket(q) for q in real.quotas if q.scope is QuotaScope.APP] if real else []
        )
        # Per-mailbox buckets, created on first use (``mailbox_buckets``).
        self.mb_of: list[list[Gcra] | None] = [None] * n_mailboxes
        self._real_mb: list[list[RealWindow] | None] = [None] * n_mailboxes
        # Up to this many units, one reservation passes the (single) mailbox bucket.
        self.chunk = min((q.burst for q in self.mb_quotas), default=1 << 30)
        self.latency = Latency(model.latency_s, rng)
        self._by_method = {m: Latency(d, rng) for m, d in model.latency_by_method.items()}
        self.overhead = Sampler(model.sync_overhead_s, rng)
        self.imap = model if isinstance(model, ImapModel) else None
        # Batches sized as the daemon sizes them: whole in one admission of every bucket.
        self.shape = (
            self.imap.fetch_shape()
            if self.imap
            else policy.fetch_shape_for({name: enforced} if enforced is not None else {})
        )
        if isinstance(model, GraphModel):
            self.shape = model.fetch_shape(self.shape)
        self.setup = self._setup_requests()
        # A token refresh: one more round trip at the start of the sync, no quota call.
        self.token_request: Request = (self._sampler("token"), 0, 0, 0, 0.0)
        self.retry_after = Sampler(model.retry_after_s, rng)
        self.rate_429 = model.rate_429
        # No real-provider quotas and no random 429s: jobs take the short path.
        self.simple = real is None and model.rate_429 == 0
        # Full syncs stop for quota past the profile's budget (per-mailbox buckets only:
        # jobs stepped through app-wide buckets wait them out).
        self.chunks_full = name in policy.CHUNKED_FULL_SYNC_PROVIDERS and bool(self.mb_quotas)
        e = model.errors
        # Cumulative failure thresholds of one uniform draw: auth, +permanent, +transient.
        self.fail_p = (
            e.auth_revoked,
            e.auth_revoked + e.permanent,
            e.auth_revoked + e.permanent + e.transient,
        )
        self._cache: dict[tuple[int, int, int, int, int], tuple[Request, ...]] = {}
        self._cached = 0  # requests held by the cache
        # Derived from a request tuple, keyed by its id() and holding it: its runs, and it
        # after a connection set-up or a token fetch (keyed (how or -1, id)).
        self._runs: dict[int, tuple[tuple[Request, ...], tuple[Run, ...]]] = {}
        self._prefixed: dict[tuple[int, int], tuple[tuple[Request, ...], tuple[Request, ...]]]
        self._prefixed = {}
        self._memo_held = 0  # requests held by the memos
        # The requests of an incremental sync with nothing new, the most common sync, for
        # providers whose incremental calls do not depend on the size (all but IMAP); the
        # event model takes it without the memo's key (``requests`` builds the same tuple).
        self.quiet: tuple[Request, ...] | None = None
        if self.imap is None:
            self.quiet = self.requests(SyncKind.INCREMENTAL, 0, 0, 0, 0)
        self.counters = ProviderCounters()
        # A list: one scalar update per job is cheaper than on a numpy array.
        self.units_by_mailbox: list[float] = [0.0] * n_mailboxes
        # Units admitted by the app-wide buckets since t=0 (warm-up included), and when
        # ``app_log`` is a list, every admission as (instant, units) for checks.
        self.app_admitted = 0
        self.app_log: list[tuple[float, int]] | None = None

    def admitted_by_app(self, at: float, units: int) -> None:
        """Count units the app-wide buckets admitted (and log them when checks ask to)."""
        self.app_admitted += units
        if self.app_log is not None:
            self.app_log.append((at, units))

    # --- requests --------------------------------------------------------------------

    def _sampler(self, method: str) -> Latency:
        return self._by_method.get(method, self.latency)

    def _setup_requests(self) -> tuple[tuple[Request, ...], ...]:
        # Indexed by REUSE, NOOP, LOGIN. Handshake round trips are not IMAP commands (no call).
        if self.imap is None:
            return ((), (), ())
        noop: Request = (self._sampler("imap.noop"), 1, 0, 0, 0.0)
        connect: Request = (self._sampler("imap.connect"), 0, 0, 0, 0.0)
        login: Request = (self._sampler("imap.login"), 1, 0, 0, 0.0)
        enable: Request = (self._sampler("imap.enable"), 1, 0, 0, 0.0)
        opening = (connect,) * self.imap.connect_round_trips
        commands = (login,) + (enable,) * (self.imap.logins - 1)
        return ((), (noop,), opening + commands)

    def setup_mean_s(self, how: int) -> float:
        """Mean latency of the connection set-up ``how`` (REUSE, NOOP or LOGIN)."""
        return sum(r[0].mean + r[4] for r in self.setup[how])

    def setup_calls(self, how: int) -> int:
        """Commands of the connection set-up ``how``."""
        return sum(r[1] for r in self.setup[how])

    def requests(
        self, kind: SyncKind, messages: int, added: int, changed: int, deleted: int
    ) -> tuple[Request, ...]:
        """The requests of one sync (memoised; incremental shapes repeat a lot)."""
        full = kind is SyncKind.FULL
        # Only IMAP's incremental calls can depend on the mailbox's size (the flag scan).
        sized = full or self.imap is not None
        key = (1 if full else 0, messages if sized else 0, added, changed, deleted)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        out: list[Request] = []
        inner_s = self.model.batch_inner_s
        calls = policy.sync_calls(self.name, kind, messages, added, changed, deleted, self.shape)
        # Calls with no request of their own ride in the next request (calls, units).
        riding = [0, 0, 0]
        for call in calls:
            cost = self.enforced.cost(call.method) if self.enforced is not None else 0
            rcost = self.real.cost(call.method) if self.real else 0
            if call.requests == 0:
                riding = [riding[0] + call.count, riding[1] + call.count * cost,
                          riding[2] + call.count * rcost]  # fmt: skip
                continue
            sampler = self._sampler(call.method)
            for inner in split_requests(
                call.method, call.count, call.requests, self.shape.gmail_batch
            ):
                n = inner + riding[0]
                extra = inner_s * n if n > 1 else 0.0
                out.append((sampler, n, inner * cost + riding[1], inner * rcost + riding[2], extra))
                riding = [0, 0, 0]
        result = tuple(out)
        # Bounded by entries and by requests: a few syncs of a whole mailbox each hold
        # hundreds of thousands of requests (about 100 bytes each).
        if len(self._cache) > 200_000 or self._cached > 2_000_000:
            self._cache.clear()
            self._cached = 0
        self._cache[key] = result
        self._cached += len(result)
        return result

    def runs(self, reqs: tuple[Request, ...]) -> tuple[Run, ...]:
        """``reqs`` as runs of equal consecutive requests (memoised per tuple): a Graph sync
        is one run of a dozen requests, walked with one ``Latency.take``."""
        hit = self._runs.get(id(reqs))
        if hit is not None and hit[0] is reqs:
            return hit[1]
        out: list[Run] = []
        for sampler, inner, u, _ru, extra in reqs:
            if out:
                last = out[-1]
                if last[0] is sampler and last[1] == inner and last[2] == u and last[3] == extra:
                    out[-1] = (sampler, inner, u, extra, last[4] + 1)
                    continue
            out.append((sampler, inner, u, extra, 1))
        runs = tuple(out)
        self._forget_if_full(len(reqs))
        self._runs[id(reqs)] = (reqs, runs)
        return runs

    def with_setup(self, how: int, reqs: tuple[Request, ...]) -> tuple[Request, ...]:
        """``reqs`` after the connection set-up ``how`` (memoised per tuple, as ``runs``)."""
        return self._prefix(how, self.setup[how], reqs)

    def with_token(self, reqs: tuple[Request, ...]) -> tuple[Request, ...]:
        """``reqs`` after a token fetch (memoised per tuple, as ``runs``)."""
        return self._prefix(-1, (self.token_request,), reqs)

    def _prefix(
        self, what: int, head: tuple[Request, ...], reqs: tuple[Request, ...]
    ) -> tuple[Request, ...]:
        hit = self._prefixed.get((what, id(reqs)))
        if hit is not None and hit[0] is reqs:
            return hit[1]
        out = head + reqs
        self._forget_if_full(len(reqs))
        self._prefixed[(what, id(reqs))] = (reqs, out)
        return out

    def _forget_if_full(self, adding: int) -> None:
        # The memos hold each tuple they are keyed by, so its id is not reused while the
        # entry lives; bounded like the requests' cache (a full sync is a long tuple).
        self._memo_held += adding
        if len(self._runs) + len(self._prefixed) > 50_000 or self._memo_held > 1_000_000:
            self._runs.clear()
            self._prefixed.clear()
            self._memo_held = adding

    # --- buckets ---------------------------------------------------------------------

    def mailbox_buckets(self, m: int) -> list[Gcra]:
        """Enforced per-mailbox buckets of mailbox ``m``."""
        b = self.mb_of[m]
        if b is None:
            b = [Gcra.for_quota(q) for q in self.mb_quotas]
            self.mb_of[m] = b
        return b

    def real_mailbox_buckets(self, m: int) -> list[RealWindow]:
        """The real provider's per-mailbox buckets of mailbox ``m``."""
        b = self._real_mb[m]
        if b is None:
            b = [real_bucket(q) for q in self.real_mb_quotas]
            self._real_mb[m] = b
        return b

    def gate_mailbox(self, buckets: list[Gcra], t: float, units: int) -> float:
        """Pass per-mailbox gates from virtual time ``t``; returns the admitted instant.

        As the daemon's gate does: bucket after bucket, each in pieces of at most its burst
        (``daemon.gcra.split_cost``), each piece admitted when the bucket first allows it.
        Only this mailbox's job uses these buckets, so waiting is reserving ahead.
        """
        for b in buckets:
            for piece in split_cost(units, b.capacity):
                t = b.reserve(t, piece)
        return t

    def mailbox_earliest(self, buckets: list[Gcra], t: float, units: int) -> float:
        """When every per-mailbox bucket would admit ``units`` from ``t``; changes nothing
        (a chunked full sync asks before it waits, as the daemon's gate does)."""
        at = t
        for b in buckets:
            at = max(at, b.earliest(t, min(units, b.capacity)))
        return at

    def mailbox_deferral(
        self, buckets: list[Gcra], t: float, units: int, waited: float, budget: float
    ) -> float | None:
        """``policy.quota_deferral`` for the next request of a chunked full sync at ``t``."""
        return policy.quota_deferral(waited, self.mailbox_earliest(buckets, t, units) - t, budget)

    def real_admits(self, buckets: list[RealWindow], t: float, units: int) -> float:
        """0 if the real provider takes ``units`` at ``t`` (and charges them), else the wait."""
        if not buckets or units <= 0:
            return 0.0
        worst = 0.0
        for b in buckets:
            c = units if units <= b.capacity else b.capacity
            e = b.earliest(t, c) - t
            if e > worst:
                worst = e
        if worst > 0:
            return worst
        for b in buckets:
            b.reserve(t, units if units <= b.capacity else b.capacity)
        return 0.0

    def refused(self, pending: int) -> int:
        """How many of a request's ``pending`` inner requests the provider answers 429
        regardless of quotas (the model's 429 rate). A batch's inner requests are throttled
        one by one (Graph's JSON batching and Gmail's batch both answer 429 per inner
        request inside a 200), and the daemon resends only the refused ones."""
        if self.rate_429 <= 0:
            return 0
        r, p = self._prng.random, self.rate_429
        return sum(1 for _ in range(pending) if r() < p)

    def retry_after_for(self, real_wait: float) -> float:
        """The Retry-After of a 429: the real window's wait (rounded up) or the model's draw."""
        return float(math.ceil(real_wait) if real_wait > 0 else self.retry_after())

    @staticmethod
    def gives_up(tries: int, retry_after: float) -> bool:
        """The daemon waits a 429 out in the sync at most ``IN_SYNC_RETRIES`` times, and only
        when the Retry-After is at most ``RETRY_AFTER_CAP_S``; otherwise the sync fails."""
        return tries > IN_SYNC_RETRIES or retry_after > RETRY_AFTER_CAP_S

    def reset_counters(self) -> None:
        """Start the measurement window."""
        self.counters = ProviderCounters()
        self.units_by_mailbox = [0.0] * len(self.units_by_mailbox)
