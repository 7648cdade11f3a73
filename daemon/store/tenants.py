"""Tenant-wide operations: registering many mailboxes at once, pausing and resuming a tenant.

A paused mailbox keeps its cursor and messages but is never claimed (the scheduler only
claims ``active`` mailboxes); a job already queued for it ends without syncing, a running
sync finishes normally. Resuming makes every paused mailbox of the tenant due at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from daemon.store.records import Conflict, NotFound, normalise_address, ts


@dataclass(frozen=True, slots=True)
class NewMailbox:
    """One mailbox of a bulk registration, its credentials already encrypted."""

    provider: str
    address: str
    credentials_blob: bytes
    config: dict[str, Any]
    sync_interval_s: int | None = None


_BULK = """
INSERT INTO mailboxes (tenant_id, provider, address, credentials, config, sync_interval_s,
                       next_sync_at)
SELECT $1, p, a, c, cfg, i, $7::timestamptz
FROM unnest($2::text[], $3::text[], $4::bytea[], $5::jsonb[], $6::integer[]) AS u(p, a, c, cfg, i)
ON CONFLICT (tenant_id, provider, lower(address)) DO NOTHING
RETURNING id, provider, address
"""


@dataclass(frozen=True, slots=True)
class NewTenant:
    """A tenant of a bulk onboarding, with its mailboxes."""

    name: str
    sync_interval_s: int | None
    mailboxes: Sequence[NewMailbox]


_TENANTS = """
INSERT INTO tenants (name, sync_interval_s)
SELECT n, i FROM unnest($1::text[], $2::integer[]) AS u(n, i)
RETURNING id, name
"""

_BULK_MANY = """
INSERT INTO mailboxes (tenant_id, provider, address, credentials, config, sync_interval_s,
                       next_sync_at)
SELECT t, p, a, c, cfg, i, $7::timestamptz
FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bytea[], $5::jsonb[], $6::integer[])
     AS u(t, p, a, c, cfg, i)
RETURNING id, tenant_id, address
"""


async def onboard(
    pool: asyncpg.Pool, tenants: Sequence[NewTenant], now: float
) -> list[dict[str, Any]]:
    """Create tenants with their mailboxes in one transaction, every mailbox due at ``now``.

    Returns ``{id, name, mailboxes: [{id, address}]}`` per tenant, in the given order;
    ``Conflict`` (and nothing created) when a tenant name exists or repeats.
    """
    names = [t.name for t in tenants]
    if len(set(names)) != len(names):
        raise Conflict("a tenant name appears twice in the request")
    async with pool.acquire() as conn, conn.transaction():
        try:
            rows = await conn.fetch(_TENANTS, names, [t.sync_interval_s for t in tenants])
        except asyncpg.UniqueViolationError as exc:
            raise Conflict("a tenant of that name already exists") from exc
        ids = {r["name"]: int(r["id"]) for r in rows}
        boxes = [(ids[t.name], m) for t in tenants for m in t.mailboxes]
        created = await _insert_boxes(conn, boxes, now)
    by_tenant: dict[int, list[dict[str, Any]]] = {}
    for r in created:
        by_tenant.setdefault(int(r["tenant_id"]), []).append(
            {"id": int(r["id"]), "address": r["address"]}
        )
    return [{"id": ids[n], "name": n, "mailboxes": by_tenant.get(ids[n], [])} for n in names]


async def _insert_boxes(
    conn: asyncpg.Connection, boxes: Sequence[tuple[int, NewMailbox]], now: float
) -> list[asyncpg.Record]:
    try:
        rows: list[asyncpg.Record] = await conn.fetch(
            _BULK_MANY,
            [tid for tid, _ in boxes],
            [m.provider for _, m in boxes],
            [normalise_address(m.address) for _, m in boxes],
            [m.credentials_blob for _, m in boxes],
            [m.config for _, m in boxes],
            [m.sync_interval_s for _, m in boxes],
            ts(now),
        )
    except asyncpg.UniqueViolationError as exc:
        raise Conflict("a mailbox appears twice under one tenant") from exc
    return rows


async def _require_tenant(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: int) -> None:
    if await conn.fetchval("SELECT 1 FROM tenants WHERE id = $1", tenant_id) is None:
        raise NotFound(f"tenant {tenant_id} not found")


async def register_many(
    pool: asyncpg.Pool, tenant_id: int, mailboxes: Sequence[NewMailbox], now: float
) -> list[dict[str, Any]]:
    """Register mailboxes of one tenant in one statement, all due at ``now``.

    Returns ``{id, provider, address}`` of the ones created; an address already registered
    under the tenant (in any case) is skipped, not updated (its secrets and state stay as
    they are).
    """
    async with pool.acquire() as conn, conn.transaction():
        await _require_tenant(conn, tenant_id)
        rows = await conn.fetch(
            _BULK,
            tenant_id,
            [m.provider for m in mailboxes],
            [normalise_address(m.address) for m in mailboxes],
            [m.credentials_blob for m in mailboxes],
            [m.config for m in mailboxes],
            [m.sync_interval_s for m in mailboxes],
            ts(now),
        )
    return [dict(r) for r in rows]


async def pause(pool: asyncpg.Pool, tenant_id: int, now: float) -> int:
    """Stop syncing every active mailbox of a tenant; returns how many were paused."""
    async with pool.acquire() as conn, conn.transaction():
        await _require_tenant(conn, tenant_id)
        status = await conn.execute(
            """UPDATE mailboxes SET status = 'paused', updated_at = $2
               WHERE tenant_id = $1 AND status = 'active'""",
            tenant_id,
            ts(now),
        )
    return int(status.rsplit(" ", 1)[-1])


async def resume(pool: asyncpg.Pool, tenant_id: int, now: float) -> int:
    """Make every paused mailbox of a tenant active and due at ``now``; returns the count."""
    async with pool.acquire() as conn, conn.transaction():
        await _require_tenant(conn, tenant_id)
        status = await conn.execute(
            """UPDATE mailboxes SET status = 'active', next_sync_at = $2, updated_at = $2
               WHERE tenant_id = $1 AND status = 'paused'""",
            tenant_id,
            ts(now),
        )
    return int(status.rsplit(" ", 1)[-1])
