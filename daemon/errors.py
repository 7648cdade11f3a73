"""The exception tree of mailsync.

Provider and store code translates library errors (httpx, asyncpg, aioimaplib) into these at
the boundary with ``raise ... from``; the worker only needs ``ProviderError.kind`` to decide
what happens next (see ``policy.on_failure``).

    MailsyncError
    ├── ConfigError            bad settings or scenario input, named field
    ├── StoreUnavailable       our own PostgreSQL or Redis failed mid-job: retry the job
    ├── QuotaDeferred          a chunked full sync gives its worker back until quota refills
    └── ProviderError          a sync against a provider failed
        ├── TransientError     network error, timeout, 5xx: retry with backoff
        │   ├── BadResponse    the provider answered with something we cannot read
        │   └── CursorExpired  stored cursor no longer valid (providers fall back to full)
        ├── RateLimited        429 / quota errors that outlived the in-sync retries
        ├── AuthRevoked        invalid_grant, wrong password: the user must reconnect
        └── PermanentError     mailbox gone, access denied: stop retrying
"""

from __future__ import annotations

import asyncpg
import redis.exceptions
from throttled.exceptions import StoreUnavailableError

from daemon.policy import ErrorKind


class MailsyncError(Exception):
    """Base of every error mailsync raises on purpose."""


class ConfigError(MailsyncError):
    """Invalid configuration or input; the message names the offending field."""


class StoreUnavailable(MailsyncError):
    """PostgreSQL or Redis, not the provider, failed: the job is retried and the mailbox's
    failure count stays as it is."""


# Library errors that mean one of our own stores is unavailable (not the provider): the
# worker lets them end the job attempt, so the queue retries it, instead of recording a
# provider failure. OSError is included for sockets the libraries do not wrap.
INFRASTRUCTURE_ERRORS: tuple[type[BaseException], ...] = (
    StoreUnavailable,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    redis.exceptions.RedisError,
    StoreUnavailableError,
    OSError,
)


class QuotaDeferred(MailsyncError):
    """Not a failure: the quota a full sync needs next is ``delay_s`` away, beyond what one
    run may wait (``policy.quota_deferral``). The provider commits its progress and the
    mailbox is due again after the delay."""

    def __init__(self, delay_s: float, *, provider: str = "") -> None:
        super().__init__(f"{provider}: quota refills in {delay_s:.1f} s")
        self.delay_s = delay_s
        self.provider = provider


class ProviderError(MailsyncError):
    """A provider call or sync failed."""

    kind: ErrorKind = ErrorKind.TRANSIENT

    def __init__(self, message: str, *, provider: str = "", status: int | None = None) -> None:
        super().__init__(message)
        self.provider = provider
        self.status = status

    def __str__(self) -> str:
        where = f"{self.provider}: " if self.provider else ""
        code = f" (HTTP {self.status})" if self.status is not None else ""
        return f"{where}{self.args[0]}{code}"


class TransientError(ProviderError):
    """Worth retrying later: network trouble, timeouts, server errors."""

    kind = ErrorKind.TRANSIENT


class BadResponse(TransientError):
    """The provider's answer was malformed; the message says which part."""


class CursorExpired(TransientError):
    """The stored sync cursor (historyId, deltaLink, UIDVALIDITY) is no longer valid."""


class RateLimited(ProviderError):
    """The provider kept throttling; ``retry_after`` is its advice in seconds, if any."""

    kind = ErrorKind.RATE_LIMITED

    def __init__(
        self,
        message: str,
        *,
        provider: str = "",
        status: int | None = 429,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, provider=provider, status=status)
        self.retry_after = retry_after


class AuthRevoked(ProviderError):
    """Credentials are no longer accepted; only the user can fix it."""

    kind = ErrorKind.AUTH_REVOKED


class PermanentError(ProviderError):
    """Retrying will not help (mailbox deleted, access denied, unsupported server)."""

    kind = ErrorKind.PERMANENT
