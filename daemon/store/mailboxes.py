"""Tenants and mailboxes: registration and the sync state machine (idle → queued → running).

Decisions come from ``daemon.policy``; this module only reads and writes rows. Every
transition is one statement guarded by the expected state, so several daemon processes on
several hosts can share one database.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from daemon.policy import Assignment, DueMailbox, Profile, SyncKind, Tier, plan_cycle
from daemon.store.records import (
    Claimed,
    Conflict,
    NotFound,
    Running,
    RunStart,
    epoch,
    normalise_address,
    public_mailbox,
    ts,
)

_CLAIM_SELECT = """
SELECT id, next_sync_at, last_success_at, cursor IS NOT NULL AS has_cursor
FROM mailboxes
WHERE state = 'idle' AND status = 'active' AND next_sync_at <= $1
ORDER BY next_sync_at, id
LIMIT $2
FOR UPDATE SKIP LOCKED
"""

_CLAIM_UPDATE = """
UPDATE mailboxes AS m
SET state = 'queued', run_seq = m.run_seq + 1, tier = a.tier, kind = a.kind,
    queued_at = $1, updated_at = $1
FROM unnest($2::bigint[], $3::text[], $4::text[]) AS a(id, tier, kind)
WHERE m.id = a.id
RETURNING m.id, m.run_seq, m.tier, m.kind
"""

# The run's fencing token is drawn by PostgreSQL (gen_random_uuid, version 4 from its strong
# random source): one parameter fewer to encode and no uuid4 in the worker per sync.
_START = """
UPDATE mailboxes AS m
SET state = 'running', run_token = gen_random_uuid(), started_at = $3, updated_at = $3
WHERE m.id = $1 AND m.run_seq = $2 AND m.state IN ('queued', 'running') AND m.status = 'active'
RETURNING m.id, m.tenant_id, m.provider, m.address, m.config, m.credentials, m.run_token,
          m.credentials_rev, m.cursor, m.kind, m.tier, m.failure_count, m.queued_at,
          COALESCE(m.sync_interval_s, (SELECT t.sync_interval_s FROM tenants t
                                       WHERE t.id = m.tenant_id)) AS interval_s
"""


class MailboxStore:
    """Rows of tenants and mailboxes and their state transitions."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    # --- registration ----------------------------------------------------------------------

    async def create_tenant(self, name: str, sync_interval_s: int | None = None) -> dict[str, Any]:
        """A new tenant; ``Conflict`` if the name is taken."""
        try:
            row = await self.pool.fetchrow(
                "INSERT INTO tenants (name, sync_interval_s) VALUES ($1, $2) RETURNING *",
                name,
                sync_interval_s,
            )
        except asyncpg.UniqueViolationError as exc:
            raise Conflict(f"tenant {name!r} already exists") from exc
        return dict(row)

    async def list_tenants(self) -> list[dict[str, Any]]:
        """All tenants with their mailbox counts."""
        rows = await self.pool.fetch(
            """SELECT t.*, count(m.id) AS mailboxes FROM tenants t
               LEFT JOIN mailboxes m ON m.tenant_id = t.id GROUP BY t.id ORDER BY t.id"""
        )
        return [dict(r) for r in rows]

    async def get_tenant(self, tenant_id: int) -> dict[str, Any]:
        """One tenant; ``NotFound`` if absent."""
        row = await self.pool.fetchrow("SELECT * FROM tenants WHERE id = $1", tenant_id)
        if row is None:
            raise NotFound(f"tenant {tenant_id} not found")
        return dict(row)

    async def delete_tenant(self, tenant_id: int) -> None:
        """Delete a tenant with its mailboxes and messages."""
        status = await self.pool.execute("DELETE FROM tenants WHERE id = $1", tenant_id)
        if status.endswith(" 0"):
            raise NotFound(f"tenant {tenant_id} not found")

    async def create_mailbox(
        self,
        tenant_id: int,
        provider: str,
        address: str,
        credentials_blob: bytes,
        config: dict[str, Any] | None = None,
        sync_interval_s: int | None = None,
        now: float | None = None,
    ) -> dict[str, Any]:
        """Register a mailbox, due at once; ``Conflict`` on a duplicate, ``NotFound`` tenant."""
        try:
            row = await self.pool.fetchrow(
                """INSERT INTO mailboxes (tenant_id, provider, address, credentials, config,
                                          sync_interval_s, next_sync_at)
                   VALUES ($1, $2, $3, $4, $5, $6, COALESCE($7, now()))
                   RETURNING *""",
                tenant_id,
                provider,
                normalise_address(address),
                credentials_blob,
                config or {},
                sync_interval_s,
                ts(now),
            )
        except asyncpg.UniqueViolationError as exc:
            raise Conflict(
                f"mailbox {provider}:{normalise_address(address)} already exists in this tenant "
                "(addresses are compared case-insensitively)"
            ) from exc
        except asyncpg.ForeignKeyViolationError as exc:
            raise NotFound(f"tenant {tenant_id} not found") from exc
        return public_mailbox(dict(row))

    async def create_mailboxes_bulk(
        self, rows: Sequence[tuple[int, str, str, bytes, dict[str, Any]]], now: float
    ) -> int:
        """Register many mailboxes at once (load tests); skips existing ones."""
        status = await self.pool.execute(
            """INSERT INTO mailboxes (tenant_id, provider, address, credentials, config,
                                      next_sync_at)
               SELECT * , $6::timestamptz FROM unnest($1::bigint[], $2::text[], $3::text[],
                                                    $4::bytea[], $5::jsonb[])
               ON CONFLICT (tenant_id, provider, lower(address)) DO NOTHING""",
            [r[0] for r in rows],
            [r[1] for r in rows],
            [normalise_address(r[2]) for r in rows],
            [r[3] for r in rows],
            [r[4] for r in rows],
            ts(now),
        )
        return int(status.rsplit(" ", 1)[-1])

    async def get_mailbox(self, mailbox_id: int) -> dict[str, Any]:
        """A mailbox's public fields and sync state; ``NotFound`` if absent."""
        row = await self.pool.fetchrow("SELECT * FROM mailboxes WHERE id = $1", mailbox_id)
        if row is None:
            raise NotFound(f"mailbox {mailbox_id} not found")
        return public_mailbox(dict(row))

    async def list_mailboxes(
        self, tenant_id: int | None = None, limit: int = 100, after_id: int = 0
    ) -> list[dict[str, Any]]:
        """Mailboxes by id, optionally of one tenant, paged by ``after_id``."""
        rows = await self.pool.fetch(
            """SELECT * FROM mailboxes WHERE ($1::bigint IS NULL OR tenant_id = $1) AND id > $2
               ORDER BY id LIMIT $3""",
            tenant_id,
            after_id,
            limit,
        )
        return [public_mailbox(dict(r)) for r in rows]

    async def delete_mailbox(self, mailbox_id: int) -> None:
        """Delete a mailbox and its messages (a queued job finds nothing and ends)."""
        status = await self.pool.execute("DELETE FROM mailboxes WHERE id = $1", mailbox_id)
        if status.endswith(" 0"):
            raise NotFound(f"mailbox {mailbox_id} not found")

    async def update_credentials(
        self, mailbox_id: int, blob: bytes, reactivate: bool, now: float
    ) -> None:
        """Store new secrets (a new credentials revision); ``reactivate`` clears
        ``needs_reauth``/``error`` and makes the mailbox due."""
        status = await self.pool.execute(
            """UPDATE mailboxes SET credentials = $2, updated_at = $3::timestamptz,
                   credentials_rev = credentials_rev + 1,
                   status = CASE WHEN $4::boolean THEN 'active' ELSE status END,
                   status_reason = CASE WHEN $4::boolean THEN NULL ELSE status_reason END,
                   failure_count = CASE WHEN $4::boolean THEN 0 ELSE failure_count END,
                   next_sync_at = CASE WHEN $4::boolean THEN $3::timestamptz ELSE next_sync_at END
               WHERE id = $1""",
            mailbox_id,
            blob,
            ts(now),
            reactivate,
        )
        if status.endswith(" 0"):
            raise NotFound(f"mailbox {mailbox_id} not found")

    # --- scheduling --------------------------------------------------------------------------

    async def claim_due(self, now: float, profile: Profile) -> list[Claimed]:
        """One scheduler cycle: claim due mailboxes, decide tier and kind, mark them queued."""
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(_CLAIM_SELECT, ts(now), profile.batch_size)
            due = [
                DueMailbox(
                    r["id"],
                    r["next_sync_at"].timestamp(),
                    epoch(r["last_success_at"]),
                    r["has_cursor"],
                )
                for r in rows
            ]
            plan = plan_cycle(due, now, profile)
            if not plan:
                return []
            updated = await conn.fetch(
                _CLAIM_UPDATE,
                ts(now),
                [a.mailbox_id for a in plan],
                [str(a.tier) for a in plan],
                [str(a.kind) for a in plan],
            )
        seq = {r["id"]: r["run_seq"] for r in updated}
        return [Claimed(a.mailbox_id, seq[a.mailbox_id], a.tier, a.kind) for a in plan]

    async def claim_now(
        self, mailbox_id: int, assignment: Assignment, now: float
    ) -> Claimed | None:
        """Queue one mailbox at once ("sync now"); ``None`` if it is already running.

        A mailbox waiting in a slower queue gets a new run number, so its old job finds a
        stale number and ends without syncing.
        """
        row = await self.pool.fetchrow(
            """UPDATE mailboxes SET state = 'queued', run_seq = run_seq + 1, tier = $2, kind = $3,
                   queued_at = $4, updated_at = $4
               WHERE id = $1 AND status = 'active'
                 AND (state = 'idle' OR (state = 'queued' AND tier <> 'high'))
               RETURNING run_seq""",
            mailbox_id,
            str(assignment.tier),
            str(assignment.kind),
            ts(now),
        )
        if row is not None:
            return Claimed(mailbox_id, row["run_seq"], assignment.tier, assignment.kind)
        status = await self.pool.execute(
            "UPDATE mailboxes SET resync_requested = true WHERE id = $1 AND state = 'running'",
            mailbox_id,
        )
        if status.endswith(" 0"):
            await self.get_mailbox(mailbox_id)  # raises NotFound for a missing mailbox
        return None

    async def due_snapshot(self, mailbox_id: int) -> DueMailbox:
        """The policy's view of one mailbox."""
        row = await self.pool.fetchrow(
            """SELECT id, next_sync_at, last_success_at, cursor IS NOT NULL AS has_cursor
               FROM mailboxes WHERE id = $1""",
            mailbox_id,
        )
        if row is None:
            raise NotFound(f"mailbox {mailbox_id} not found")
        return DueMailbox(
            row["id"],
            row["next_sync_at"].timestamp(),
            epoch(row["last_success_at"]),
            row["has_cursor"],
        )

    async def stale_queued(self, older_than: float, limit: int) -> list[Claimed]:
        """Mailboxes queued before ``older_than``: their job may have been lost with Redis."""
        rows = await self.pool.fetch(
            """SELECT id, run_seq, tier, kind FROM mailboxes
               WHERE state = 'queued' AND queued_at < $1 ORDER BY queued_at LIMIT $2""",
            ts(older_than),
            limit,
        )
        return [Claimed(r["id"], r["run_seq"], Tier(r["tier"]), SyncKind(r["kind"])) for r in rows]

    async def renumber_queued(self, c: Claimed) -> Claimed | None:
        """Give a queued mailbox a new run number (its old job id is used up)."""
        row = await self.pool.fetchrow(
            """UPDATE mailboxes SET run_seq = run_seq + 1
               WHERE id = $1 AND run_seq = $2 AND state = 'queued' RETURNING run_seq""",
            c.mailbox_id,
            c.run_seq,
        )
        return None if row is None else Claimed(c.mailbox_id, row["run_seq"], c.tier, c.kind)

    async def running_before(self, started_before: float, limit: int) -> list[Running]:
        """Mailboxes whose run started before the cut-off, oldest first."""
        rows = await self.pool.fetch(
            """SELECT id, run_seq, tier, kind, started_at FROM mailboxes
               WHERE state = 'running' AND started_at < $1 ORDER BY started_at LIMIT $2""",
            ts(started_before),
            limit,
        )
        return [
            Running(
                Claimed(r["id"], r["run_seq"], Tier(r["tier"]), SyncKind(r["kind"])),
                r["started_at"],
            )
            for r in rows
        ]

    async def release_runs(self, runs: list[Running], now: float) -> int:
        """Make these runs' mailboxes due now, unless a run (re)started since they were read."""
        status = await self.pool.execute(
            """UPDATE mailboxes AS m SET state = 'idle', run_token = NULL, next_sync_at = $4,
                   updated_at = $4
               FROM unnest($1::bigint[], $2::bigint[], $3::timestamptz[]) AS r(id, seq, started)
               WHERE m.id = r.id AND m.run_seq = r.seq AND m.started_at = r.started
                 AND m.state = 'running'""",
            [r.claimed.mailbox_id for r in runs],
            [r.claimed.run_seq for r in runs],
            [r.started_at for r in runs],
            ts(now),
        )
        return int(status.rsplit(" ", 1)[-1])

    async def release_lost_runs(self, started_before: float, now: float) -> int:
        """Make mailboxes whose run started before the cut-off due again; returns the count."""
        status = await self.pool.execute(
            """UPDATE mailboxes SET state = 'idle', run_token = NULL, next_sync_at = $2,
                   updated_at = $2
               WHERE state = 'running' AND started_at < $1""",
            ts(started_before),
            ts(now),
        )
        return int(status.rsplit(" ", 1)[-1])

    async def release_inactive(self, mailbox_id: int, run_seq: int) -> None:
        """A queued job whose mailbox was paused or parked meanwhile: back to idle."""
        await self.pool.execute(
            """UPDATE mailboxes SET state = 'idle'
               WHERE id = $1 AND run_seq = $2 AND state = 'queued' AND status <> 'active'""",
            mailbox_id,
            run_seq,
        )

    # --- runs ----------------------------------------------------------------------------------

    async def start_run(self, mailbox_id: int, run_seq: int, now: float) -> RunStart | None:
        """Mark the run started; ``None`` when the job is stale (newer run, deleted, parked)."""
        row = await self.pool.fetchrow(_START, mailbox_id, run_seq, ts(now))
        if row is None:
            return None
        return RunStart(
            mailbox_id=row["id"],
            tenant_id=row["tenant_id"],
            provider=row["provider"],
            address=row["address"],
            config=row["config"],
            credentials_blob=row["credentials"],
            credentials_rev=row["credentials_rev"],
            cursor=row["cursor"],
            kind=SyncKind(row["kind"]),
            tier=Tier(row["tier"]),
            failure_count=row["failure_count"],
            interval_s=row["interval_s"],
            run_token=row["run_token"],
            started_at=now,
            queued_at=epoch(row["queued_at"]),
        )

    async def save_credentials_now(self, mailbox_id: int, blob: bytes, rev: int) -> bool:
        """Persist rotated secrets at once, outside the sync's transaction, unless the user
        replaced the credentials meanwhile (revision ``rev`` is no longer current)."""
        status = await self.pool.execute(
            "UPDATE mailboxes SET credentials = $2 WHERE id = $1 AND credentials_rev = $3",
            mailbox_id,
            blob,
            rev,
        )
        return not status.endswith(" 0")
