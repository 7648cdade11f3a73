"""The plain data the store hands out and takes (a claimed job, a run's start, a run in
progress), its errors, and the conversions between the database's values and ours. No I/O:
``mailboxes.py`` and ``runs.py`` read and write the rows.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from daemon.policy import SyncKind, Tier


def ts(t: float | None) -> datetime | None:
    """Epoch seconds to an aware datetime (``None`` stays ``None``)."""
    return None if t is None else datetime.fromtimestamp(t, UTC)


def epoch(d: datetime | None) -> float | None:
    """An aware datetime to epoch seconds."""
    return None if d is None else d.timestamp()


def normalise_address(address: str) -> str:
    """An address as stored and compared: lower-case (migration 0004; docs/daemon.md,
    "Registration rules"), so one account registers once per tenant and provider."""
    return address.lower()


class NotFound(LookupError):
    """No such tenant or mailbox."""


class Conflict(Exception):
    """The request clashes with existing data (duplicate name or address)."""


@dataclass(frozen=True, slots=True)
class Claimed:
    """A mailbox the scheduler moved to ``queued``: the job to enqueue."""

    mailbox_id: int
    run_seq: int
    tier: Tier
    kind: SyncKind

    @property
    def job_id(self) -> str:
        """The queue job id; unique per run so a finished run never blocks the next."""
        return f"{self.mailbox_id}-{self.run_seq}"


@dataclass(frozen=True, slots=True)
class RunStart:
    """Everything a worker needs to run one sync of one mailbox."""

    mailbox_id: int
    tenant_id: int
    provider: str
    address: str
    config: dict[str, Any]
    credentials_blob: bytes
    # Revision of the user-supplied credentials (see migration 0002).
    credentials_rev: int
    cursor: dict[str, Any] | None
    kind: SyncKind
    tier: Tier
    failure_count: int
    interval_s: float | None
    run_token: uuid.UUID
    started_at: float
    queued_at: float | None


@dataclass(frozen=True, slots=True)
class Running:
    """A mailbox in the middle of a run: its job and when the run started."""

    claimed: Claimed
    started_at: datetime


def public_mailbox(row: dict[str, Any]) -> dict[str, Any]:
    """A mailbox row without its secrets, fit for the API."""
    row = dict(row)
    row.pop("credentials", None)
    row.pop("credentials_rev", None)
    row.pop("run_token", None)
    return row
