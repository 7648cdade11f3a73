"""What a run registers: the bodies sent to the mock and to the daemon's API, and the ids
that come back (``Roster``). No I/O: ``stack.Stack.register`` sends them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from loadtest.run.plan import MailboxPlan, TenantPlan


@dataclass(frozen=True)
class ImapEndpoint:
    """Where the daemon reaches the run's Dovecot (through the delay proxy), and the folders
    it syncs there."""

    port: int
    folders: list[str]


@dataclass
class Roster:
    """Database ids of what was registered: tenant index -> id, mailbox index -> id."""

    tenant_ids: dict[int, int] = field(default_factory=dict)
    mailbox_ids: dict[int, int] = field(default_factory=dict)

    def record(
        self,
        chunk: Sequence[TenantPlan],
        made: Sequence[Mapping[str, Any]],
        by_index: Mapping[int, MailboxPlan],
    ) -> None:
        """The ids the API gave the tenants of ``chunk`` and their mailboxes (``made``: its
        answer to ``tenants_body``, in the same order)."""
        for t, row in zip(chunk, made, strict=True):
            self.tenant_ids[t.index] = int(row["id"])
            ids = {m["address"]: int(m["id"]) for m in row["mailboxes"]}
            for j in t.mailboxes:
                self.mailbox_ids[j] = ids[by_index[j].address]

    def to_json(self) -> dict[str, Any]:
        """Plain data."""
        return {
            "tenant_ids": {str(k): v for k, v in self.tenant_ids.items()},
            "mailbox_ids": {str(k): v for k, v in self.mailbox_ids.items()},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Roster:
        """The inverse of ``to_json``."""
        return cls(
            {int(k): int(v) for k, v in data["tenant_ids"].items()},
            {int(k): int(v) for k, v in data["mailbox_ids"].items()},
        )


def mock_mailboxes_body(boxes: Sequence[MailboxPlan]) -> dict[str, Any]:
    """The mock's bulk request creating the HTTP providers' mailboxes of ``boxes``."""
    return {
        "mailboxes": [
            {"provider": m.provider, "address": m.address, "messages": m.size, "seed": m.index}
            for m in boxes
        ]
    }


def mailbox_body(m: MailboxPlan, creds: Mapping[str, str], imap: ImapEndpoint) -> dict[str, Any]:
    """One mailbox as the daemon's API takes it: the mock's refresh token for Gmail and
    Graph (``creds`` by address), a password on the run's Dovecot for IMAP."""
    if m.provider != "imap":
        return {
            "provider": m.provider,
            "address": m.address,
            "credentials": {"refresh_token": creds[m.address]},
        }
    return {
        "provider": "imap",
        "address": m.address,
        "credentials": {"password": m.password},
        "config": {
            "host": "127.0.0.1",
            "port": imap.port,
            "tls": "implicit",
            "username": m.username,
            "auth": "password",
            "folders": imap.folders,
        },
    }


def tenants_body(
    chunk: Sequence[TenantPlan],
    by_index: Mapping[int, MailboxPlan],
    creds: Mapping[str, str],
    imap: ImapEndpoint,
) -> dict[str, Any]:
    """The API's bulk request registering the tenants of ``chunk`` with their mailboxes."""
    return {
        "tenants": [
            {
                "name": t.name,
                "sync_interval_s": t.interval_s,
                "mailboxes": [mailbox_body(by_index[j], creds, imap) for j in t.mailboxes],
            }
            for t in chunk
        ]
    }
