"""What happens after a failed sync: retry with exponential backoff and jitter, or stop."""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum

from daemon.policy.profiles import RetryPolicy


class ErrorKind(StrEnum):
    """How a failed sync is classified; decides retry or stop."""

    TRANSIENT = "transient"  # network error, 5xx, timeout
    RATE_LIMITED = "rate_limited"  # 429 / Gmail 403 usageLimits that outlived in-sync retries
    AUTH_REVOKED = "auth_revoked"  # invalid_grant, wrong password: the user must reconnect
    PERMANENT = "permanent"  # mailbox gone, permission denied, malformed config


class Outcome(StrEnum):
    """What happens to a mailbox after a failed sync."""

    RETRY = "retry"
    NEEDS_REAUTH = "needs_reauth"
    ERROR = "error"


def backoff_delay(failures: int, rng: random.Random, retry: RetryPolicy) -> float:
    """Delay before retry number ``failures`` (1-based): exponential, capped, jittered."""
    if failures < 1:
        raise ValueError("failures must be >= 1")
    # Exponent capped so huge failure counts cannot overflow the float.
    exp = min(failures - 1, 64)
    ceiling = min(retry.cap_s, retry.base_s * retry.factor**exp)
    return ceiling * (1.0 - retry.jitter) + rng.random() * ceiling * retry.jitter


@dataclass(frozen=True, slots=True)
class FailureDecision:
    """What to do with a mailbox whose sync failed."""

    outcome: Outcome
    retry_at: float | None
    failures: int


def on_failure(
    kind: ErrorKind,
    failures_before: int,
    now: float,
    rng: random.Random,
    retry: RetryPolicy,
    retry_after_s: float | None = None,
) -> FailureDecision:
    """Retry with backoff, or stop: revoked credentials need the user, others park as error."""
    failures = failures_before + 1
    if kind is ErrorKind.AUTH_REVOKED:
        return FailureDecision(Outcome.NEEDS_REAUTH, None, failures)
    if kind is ErrorKind.PERMANENT or failures >= retry.max_failures:
        return FailureDecision(Outcome.ERROR, None, failures)
    delay = backoff_delay(failures, rng, retry)
    if retry_after_s is not None:
        delay = max(delay, retry_after_s)
    return FailureDecision(Outcome.RETRY, now + delay, failures)
