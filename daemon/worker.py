"""Runs one sync job: start the run, call the provider, commit result and cursor together.

Provider failures are decided by ``policy.on_failure`` and recorded; the job then completes.
Infrastructure failures (PostgreSQL or Redis unreachable mid-job) propagate, so the queue
retries the job with backoff; the stored cursor makes the re-run idempotent.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import asyncpg
import redis.exceptions

from daemon.crypto import CredentialCipher, UndecryptableCredentials
from daemon.errors import INFRASTRUCTURE_ERRORS, BadResponse, ProviderError, QuotaDeferred
from daemon.keys import UNDECRYPTABLE, defer_undecryptable
from daemon.logs import get_logger
from daemon.metrics import Metrics
from daemon.oauth import MailboxTokens, OAuthClient, TokenCache
from daemon.policy import (
    CHUNKED_FULL_SYNC_PROVIDERS,
    ErrorKind,
    Outcome,
    Profile,
    next_due,
    on_failure,
)
from daemon.providers.base import (
    CallGate,
    Credentials,
    MailboxContext,
    NoToken,
    Provider,
    SyncResult,
    TokenSource,
)
from daemon.ratelimit import CountingGate, QuotaLimiters, account_key
from daemon.store.mailboxes import MailboxStore
from daemon.store.messages import apply_result, writes_messages
from daemon.store.records import Claimed, RunStart
from daemon.store.runs import (
    finish_failure,
    finish_partial,
    finish_success_recorded,
    record_run,
)

# Adds jobs for claimed mailboxes, delayed by some seconds (``TierQueues.enqueue``).
Requeue = Callable[[list[Claimed], float], Awaitable[int]]
_STATUS = {Outcome.RETRY: "active", Outcome.NEEDS_REAUTH: "needs_reauth", Outcome.ERROR: "error"}
log = get_logger("worker")


def _transaction(conn: asyncpg.Connection, needed: bool) -> AbstractAsyncContextManager[Any]:
    return conn.transaction() if needed else nullcontext()


class Fenced(Exception):
    """Another run of the same mailbox took over; this run's writes are rolled back."""


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """What became of one job (returned to the queue as the job's result)."""

    mailbox_id: int
    status: str  # synced | partial | failed | stale | fenced
    kind: str | None = None
    error_kind: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "mailbox_id": self.mailbox_id,
            "status": self.status,
            "kind": self.kind,
            "error_kind": self.error_kind,
        }


class SyncRunner:
    """The queue processor of every tier."""

    def __init__(
        self,
        store: MailboxStore,
        providers: Mapping[str, Provider],
        limiters: QuotaLimiters,
        oauth: Mapping[str, OAuthClient],
        tokens: TokenCache,
        cipher: CredentialCipher,
        profile: Profile,
        clock: Callable[[], float],
        rng: random.Random,
        worker_name: str,
        metrics: Metrics,
        requeue: Requeue,
    ) -> None:
        self.store = store
        self.providers = providers
        self.limiters = limiters
        self.oauth = oauth
        self.tokens = tokens
        self.cipher = cipher
        self.profile = profile
        self.clock = clock
        self.rng = rng
        self.worker_name = worker_name
        self.metrics = metrics
        self.requeue = requeue

    async def process(self, job: Any, token: str) -> dict[str, Any]:
        """bullmq processor entry point."""
        data = job.data
        outcome = await self.run(int(data["mailbox_id"]), int(data["run_seq"]))
        return outcome.as_dict()

    def _gate(self, provider: str, address: str) -> CallGate:
        if provider in self.limiters.limits:
            # Only providers whose full syncs the policy chunks get a wait budget.
            chunked = provider in CHUNKED_FULL_SYNC_PROVIDERS
            wait = self.profile.full_sync_quota_wait_s if chunked else None
            # Per-user quotas belong to the account, which several mailbox rows (tenants)
            # may register: they share its buckets.
            return self.limiters.gate(provider, account_key(provider, address), wait)
        return CountingGate()

    async def run(self, mailbox_id: int, run_seq: int) -> RunOutcome:
        """Run the sync the job stands for, unless the job is stale."""
        start = await self.store.start_run(mailbox_id, run_seq, self.clock())
        if start is None:
            await self.store.release_inactive(mailbox_id, run_seq)
            return RunOutcome(mailbox_id, "stale")
        provider = self.providers.get(start.provider)
        gate = self._gate(start.provider, start.address)
        self.metrics.in_flight.inc()
        try:
            if provider is None:
                raise ProviderError(
                    f"provider {start.provider!r} is not enabled in this daemon",
                    provider=start.provider,
                )
            creds = self.cipher.decrypt(start.credentials_blob)
            ctx = MailboxContext(
                mailbox_id=mailbox_id,
                address=start.address,
                credentials=creds,
                config=start.config or {},
                gate=gate,
                save_credentials=lambda c: self._save_credentials(start, c),
                tokens=self._tokens(start, creds),
                sync_interval_s=self._interval(start),
            )
            result = await provider.sync(ctx, start.kind, start.cursor)
        except QuotaDeferred as exc:
            # Deferred before any progress: the stored cursor stays, the mailbox waits.
            result = SyncResult(
                start.kind, dict(start.cursor or {}), resume_in_s=exc.delay_s, resumed=True
            )
        except ProviderError as exc:
            return await self._fail(start, run_seq, exc, gate)
        except UndecryptableCredentials:
            # The operator's key configuration, not the provider: no failure is counted, the
            # mailbox is tried again at its next regular sync (docs/daemon.md).
            await defer_undecryptable(
                self.store, start, run_seq, self.worker_name, self.clock(), self._interval(start)
            )
            self.metrics.observe_sync(start, start.kind, "failed", 0.0, 0, UNDECRYPTABLE)
            return RunOutcome(mailbox_id, "failed", str(start.kind), UNDECRYPTABLE)
        except INFRASTRUCTURE_ERRORS as exc:
            # Our PostgreSQL or Redis, not the provider: the queue retries the job; the
            # mailbox's failure count and backoff stay as they are.
            log.warning(
                "sync interrupted: store unavailable; the job will be retried",
                mailbox_id=mailbox_id,
                provider=start.provider,
                error=f"{type(exc).__name__}: {exc}"[:300],
            )
            raise
        except Exception as exc:
            log.exception("provider crashed", mailbox_id=mailbox_id, provider=start.provider)
            err = BadResponse(f"unexpected {type(exc).__name__}: {exc}", provider=start.provider)
            return await self._fail(start, run_seq, err, gate)
        finally:
            self.metrics.in_flight.dec()
        return await self._commit(start, run_seq, result, gate)

    def _interval(self, start: RunStart) -> float:
        return float(start.interval_s or self.profile.sync_interval_s)

    def _tokens(self, start: RunStart, creds: Credentials) -> TokenSource:
        client = self.oauth.get(start.provider)
        if client is None or "refresh_token" not in creds:
            return NoToken()
        return MailboxTokens(
            client,
            self.tokens,
            start.mailbox_id,
            creds,
            lambda c: self._save_credentials(start, c),
            self.clock,
            start.credentials_rev,
        )

    async def _save_credentials(self, start: RunStart, creds: Credentials) -> None:
        saved = await self.store.save_credentials_now(
            start.mailbox_id, self.cipher.encrypt(creds), start.credentials_rev
        )
        if not saved:
            # The user replaced the credentials during this sync: theirs win.
            log.info("rotated credentials not saved", mailbox_id=start.mailbox_id)

    async def _commit(
        self, start: RunStart, run_seq: int, result: SyncResult, gate: CallGate
    ) -> RunOutcome:
        """Store the result and cursor; a chunk of a full sync also frees the worker until
        its quota has refilled (``result.resume_in_s``)."""
        finished = self.clock()
        delay = result.resume_in_s or 0.0
        again: Claimed | None = None
        # A run that changed no message commits in one statement, atomic by itself; anything
        # else (messages, a chunk of a full sync) in one transaction.
        atomic = writes_messages(result) or result.partial
        try:
            async with self.store.pool.acquire() as conn, _transaction(conn, atomic):
                counts = await apply_result(conn, start.mailbox_id, result)
                delta = counts.added - counts.deleted
                tallies = (counts.added, counts.changed, counts.deleted, len(result.skipped))
                if result.partial:
                    again = await finish_partial(
                        conn, start, result.cursor, finished, finished + delay, delta
                    )
                    if again is None:
                        raise Fenced
                    await record_run(
                        conn,
                        start,
                        run_seq,
                        self.worker_name,
                        finished,
                        result.kind,
                        gate.calls,
                        tallies,
                        result.fell_back_to_full,
                        partial=True,
                    )
                else:
                    due = next_due(start.started_at, self._interval(start))
                    ok = await finish_success_recorded(
                        conn,
                        start,
                        result.cursor,
                        finished,
                        due,
                        delta,
                        run_seq,
                        self.worker_name,
                        result.kind,
                        gate.calls,
                        tallies,
                        result.fell_back_to_full,
                    )
                    if not ok:
                        raise Fenced
        except Fenced:
            log.warning("run superseded; changes rolled back", mailbox_id=start.mailbox_id)
            return RunOutcome(start.mailbox_id, "fenced")
        except asyncpg.ForeignKeyViolationError:
            # The mailbox was deleted while it synced; nothing of it may be stored.
            log.info("mailbox deleted during its sync", mailbox_id=start.mailbox_id)
            return RunOutcome(start.mailbox_id, "stale")
        if again is not None:
            # Straight onto the tier's queue, delayed: no scheduler cycle in between. If Redis
            # fails here, the scheduler's repair re-adds the job of the queued mailbox.
            try:
                await self.requeue([again], delay)
            except (redis.exceptions.RedisError, OSError) as exc:
                log.warning(
                    "resumption not queued; repair will",
                    mailbox_id=start.mailbox_id,
                    error=f"{type(exc).__name__}: {exc}",
                )
        status = "partial" if result.partial else "synced"
        self.metrics.observe_sync(
            start, result.kind, status, finished - start.started_at, gate.calls
        )
        if result.skipped:
            log.info(
                "messages skipped",
                mailbox_id=start.mailbox_id,
                skipped=len(result.skipped),
                first_reason=result.skipped[0][1][:200],
            )
        if result.partial:
            log.info(
                "full sync paused for quota",
                mailbox_id=start.mailbox_id,
                provider=start.provider,
                added=counts.added,
                resume_in_s=round(delay, 1),
            )
        return RunOutcome(start.mailbox_id, status, str(result.kind))

    async def _fail(
        self, start: RunStart, run_seq: int, exc: ProviderError, gate: CallGate
    ) -> RunOutcome:
        finished = self.clock()
        retry_after = getattr(exc, "retry_after", None)
        decision = on_failure(
            exc.kind, start.failure_count, finished, self.rng, self.profile.retry, retry_after
        )
        reason = str(exc)[:1000]
        async with self.store.pool.acquire() as conn, conn.transaction():
            ok = await finish_failure(
                conn,
                start,
                finished,
                decision.failures,
                decision.retry_at,
                _STATUS[decision.outcome],
                None if decision.outcome is Outcome.RETRY else reason,
            )
            if ok:
                await record_run(
                    conn,
                    start,
                    run_seq,
                    self.worker_name,
                    finished,
                    start.kind,
                    gate.calls,
                    (0, 0, 0, 0),
                    False,
                    str(exc.kind),
                    reason,
                )
        level = log.warning if exc.kind is not ErrorKind.TRANSIENT else log.info
        level(
            "sync failed",
            mailbox_id=start.mailbox_id,
            provider=start.provider,
            error_kind=str(exc.kind),
            outcome=str(decision.outcome),
            error=reason[:300],
            failures=decision.failures,
        )
        self.metrics.observe_sync(
            start, start.kind, "failed", finished - start.started_at, gate.calls, str(exc.kind)
        )
        return RunOutcome(start.mailbox_id, "failed", str(start.kind), str(exc.kind))
