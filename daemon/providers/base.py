"""What every provider (Gmail, Graph, IMAP) implements and what it is handed.

A provider turns (mailbox, sync kind, stored cursor) into a ``SyncResult``: the messages to
upsert, flag changes, deletions and the new cursor. It performs no database writes; the
worker commits the result and the cursor in one transaction, so a crash mid-sync loses
nothing and duplicates nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

from daemon.errors import AuthRevoked
from daemon.policy import SyncKind

# A scope meaning "the whole mailbox" in ``SyncResult.full_scopes``.
ALL_FOLDERS = "*"

# Told the duration of every provider request: (provider, method, seconds). The metrics
# histogram behind it is what a load test calibrates the capacity model's latencies from.
RequestObserver = Callable[[str, str, float], None]


def ignore_request(provider: str, method: str, seconds: float) -> None:
    """The observer of providers built without metrics (tools, tests)."""


class Credentials(Mapping[str, str]):
    """Decrypted secrets of one mailbox (refresh token, password, ...); masked in repr."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, str]) -> None:
        self._data = dict(data)

    def __getitem__(self, key: str) -> str:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return "Credentials(" + ", ".join(f"{k}='***'" for k in self._data) + ")"

    __str__ = __repr__

    def updated(self, **changes: str) -> Credentials:
        """A copy with some secrets replaced (a rotated refresh token)."""
        return Credentials({**self._data, **changes})


@dataclass(slots=True)
class MessageRecord:
    """One message as stored: metadata only, unique per (mailbox, provider_id)."""

    provider_id: str
    folder: str = ""
    thread_id: str | None = None
    internet_message_id: str | None = None
    subject: str | None = None
    sender: str | None = None
    received_at: float | None = None  # epoch seconds
    size: int | None = None
    flags: tuple[str, ...] = ()
    # Set when only part of the message could be parsed; says what was wrong.
    parse_error: str | None = None


@dataclass(slots=True)
class SyncResult:
    """Everything one sync learned, applied by the worker in a single transaction."""

    kind: SyncKind
    cursor: dict[str, Any]
    upserts: list[MessageRecord] = field(default_factory=list)
    # (provider_id, complete new flag set) for messages whose flags or labels changed.
    flag_updates: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    # Messages gone from the whole mailbox.
    deletes: list[str] = field(default_factory=list)
    # (provider_id, folder): the message left this folder (deleted, or moved to a folder this
    # sync may or may not have read yet). Its row goes only while it is still filed under
    # that folder, so a removal never undoes the row a move stored under the new folder.
    removals: list[tuple[str, str]] = field(default_factory=list)
    # Folders listed completely by this sync: stored messages of these folders that are not
    # in ``upserts`` no longer exist. ``ALL_FOLDERS`` covers the whole mailbox.
    full_scopes: list[str] = field(default_factory=list)
    # Messages left out, with the reason (unparseable, too large, ...).
    skipped: list[tuple[str, str]] = field(default_factory=list)
    api_calls: int = 0
    # True when an incremental sync found its cursor expired and did a full one instead.
    fell_back_to_full: bool = False
    # A chunk of a full sync that stopped for quota: ``cursor`` says where to resume, and the
    # mailbox is due again after this many seconds. None when the sync is complete.
    resume_in_s: float | None = None
    # This result continues a full sync begun by an earlier run (its chunks' messages count
    # as seen when the last chunk removes what the full listing did not find).
    resumed: bool = False

    @property
    def partial(self) -> bool:
        """A chunk that leaves the full sync unfinished."""
        return self.resume_in_s is not None


class CallGate(Protocol):
    """The quota gate a provider passes every API call through."""

    async def acquire(self, method: str, count: int = 1, requests: int = 1) -> None:
        """Wait until the provider's quotas admit ``count`` calls of ``method``; count them.

        An HTTP batch of 50 inner ``messages.get`` is one ``acquire("messages.get", 50)``.
        ``requests`` is the HTTP requests they take: 0 for calls riding in a batch that is
        counted under another method (Graph's folder list inside a delta batch).
        """
        ...

    async def reserve(self, calls: Mapping[str, int]) -> None:
        """Admit, at once, calls the sync is about to make (``{method: count}``); their
        ``acquire`` then returns without waiting. Units not used stay spent."""
        ...

    def throttled(self, retry_after: float | None) -> None:
        """Record that the provider answered 429 / rate-limit (for metrics and backoff)."""
        ...

    def chunked(self) -> AbstractContextManager[None]:
        """A block whose calls may raise ``daemon.errors.QuotaDeferred`` rather than wait
        past the run's quota budget; the provider commits progress and resumes later."""
        ...

    @property
    def calls(self) -> int:
        """API calls made through this gate so far."""
        ...


class TokenSource(Protocol):
    """Hands out a valid OAuth2 access token for one mailbox, refreshing when needed."""

    async def get(self, force_refresh: bool = False) -> str:
        """A usable access token; ``force_refresh`` after the provider rejected the last one."""
        ...


class NoToken:
    """The token source of a mailbox that authenticates without OAuth (IMAP password)."""

    async def get(self, force_refresh: bool = False) -> str:
        """Always fails: this mailbox has no OAuth grant."""
        raise AuthRevoked("mailbox has no OAuth grant")


@dataclass(slots=True)
class MailboxContext:
    """What a provider gets to sync one mailbox."""

    mailbox_id: int
    address: str
    credentials: Credentials
    # Provider-specific settings of the mailbox (IMAP host and folders, Graph folders, ...).
    config: Mapping[str, Any]
    gate: CallGate
    # Persist changed secrets at once (Microsoft rotates refresh tokens on every use).
    save_credentials: Callable[[Credentials], Awaitable[None]]
    tokens: TokenSource = field(default_factory=NoToken)
    # The mailbox's sync interval; bounds how long a pooled login is trusted (IMAP).
    sync_interval_s: float | None = None


class Provider(Protocol):
    """A mail provider the daemon can sync; one instance per daemon process."""

    name: str

    async def sync(
        self, mailbox: MailboxContext, kind: SyncKind, cursor: Mapping[str, Any] | None
    ) -> SyncResult:
        """Run one sync; raise ``daemon.errors.ProviderError`` subclasses on failure."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...
