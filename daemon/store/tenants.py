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

from daemon.store.mailboxes import NotFound, ts


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
ON CONFLICT (tenant_id, provider, address) DO NOTHING
RETURNING id, provider, address
"""


async def _require_tenant(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: int) -> None:
    if await conn.fetchval("SELECT 1 FROM tenants WHERE id = $1", tenant_id) is None:
        raise NotFound(f"tenant {tenant_id} not found")


async def register_many(
    pool: asyncpg.Pool, tenant_id: int, mailboxes: Sequence[NewMailbox], now: float
) -> list[dict[str, Any]]:
    """Register mailboxes of one tenant in one statement, all due at ``now``.

    Returns ``{id, provider, address}`` of the ones created; an address already registered
    under the tenant is skipped, not updated (its secrets and state stay as they are).
    """
    async with pool.acquire() as conn, conn.transaction():
        await _require_tenant(conn, tenant_id)
        rows = await conn.fetch(
            _BULK,
            tenant_id,
            [m.provider for m in mailboxes],
            [m.address for m in mailboxes],
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
