"""What the routes are built from (``ApiDeps``), made by the daemon at start-up."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import redis.asyncio as aioredis

from daemon.crypto import CredentialCipher
from daemon.metrics import Metrics
from daemon.providers.imap_hosts import HostPolicy
from daemon.queues import TierQueues
from daemon.ratelimit import QuotaLimiters
from daemon.scheduler import Scheduler
from daemon.store.mailboxes import MailboxStore


def _none_failed() -> Sequence[str]:
    return ()


@dataclass
class ApiDeps:
    """What the routes need, built by the daemon at start-up."""

    store: MailboxStore
    scheduler: Scheduler
    queues: TierQueues
    redis: aioredis.Redis
    cipher: CredentialCipher
    metrics: Metrics
    limiters: QuotaLimiters
    clock: Callable[[], float]
    token: str
    # Names of long-lived background tasks (scheduler, workers) that are not running;
    # /healthz answers 503 naming them.
    failed_tasks: Callable[[], Sequence[str]] = _none_failed
    # Where IMAP mailboxes may point (settings ``imap.allowed_networks``).
    imap_hosts: HostPolicy = field(default_factory=HostPolicy)
