"""What the load generator is told by the orchestrator (one JSON file), and the timeline."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class MailboxSpec:
    """A mailbox as a tenant user drives it."""

    id: int
    provider: str
    address: str
    username: str
    password: str
    arrivals_per_s: float
    interval_s: float
    inbox_size: int


@dataclass(frozen=True)
class TenantSpec:
    """A tenant: its database id and mailboxes."""

    index: int
    id: int
    mailboxes: tuple[MailboxSpec, ...]


@dataclass(frozen=True)
class LevelSpec:
    """A level of the load, in seconds from ``LoadgenConfig.t0``."""

    name: str
    tenants: int
    start_s: float
    duration_s: float
    settle_s: float
    spawn_s: float


@dataclass(frozen=True)
class LoadgenConfig:
    """Everything the Locust process needs."""

    t0: float  # epoch second at which the first level starts
    levels: tuple[LevelSpec, ...]
    tenants: tuple[TenantSpec, ...]
    mock_url: str
    api_urls: tuple[str, ...]
    api_token: str
    database_url: str
    redis_url: str
    pool_key: str
    out: str
    seed: int
    changes_per_arrival: float
    deletes_per_arrival: float
    push_share: float
    cursor_expiry_per_sync: float
    imap_port: int | None = None
    imap_ca_file: str | None = None
    imap_folder: str = "INBOX"
    lag_timeout_s: float = 900.0
    poll_s: float = 1.0
    drain_s: float = 60.0
    workers: int = 0
    master_port: int = 0
    notes: tuple[str, ...] = field(default=())

    def save(self, path: Path) -> None:
        """Write as JSON."""
        path.write_text(json.dumps(asdict(self)))

    @classmethod
    def load(cls, path: Path) -> LoadgenConfig:
        """Read what ``save`` wrote."""
        d: dict[str, Any] = json.loads(path.read_text())
        d["levels"] = tuple(LevelSpec(**x) for x in d["levels"])
        d["tenants"] = tuple(
            TenantSpec(t["index"], t["id"], tuple(MailboxSpec(**m) for m in t["mailboxes"]))
            for t in d["tenants"]
        )
        d["api_urls"] = tuple(d["api_urls"])
        d["notes"] = tuple(d["notes"])
        return cls(**d)

    @property
    def end_s(self) -> float:
        """Seconds from ``t0`` to the end of the last level."""
        last = self.levels[-1]
        return last.start_s + last.duration_s


def label_at(levels: tuple[LevelSpec, ...], t: float) -> str:
    """The level an instant (seconds from t0) belongs to: its name inside the measured
    window, ``settling <name>`` before it, ``warm-up``/``drain`` outside the levels."""
    if t < 0:
        return "warm-up"
    for lv in levels:
        if lv.start_s <= t < lv.start_s + lv.duration_s:
            return lv.name if t >= lv.start_s + lv.settle_s else f"settling {lv.name}"
    return "drain"


def level_at(levels: tuple[LevelSpec, ...], t: float) -> LevelSpec | None:
    """The level running at ``t`` seconds from t0."""
    for lv in levels:
        if lv.start_s <= t < lv.start_s + lv.duration_s:
            return lv
    return None
