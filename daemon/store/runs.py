"""A run's end, inside the worker's commit: the mailbox's transition out of ``running`` and
its ``sync_runs`` row.

Each transition is guarded by the run's token, so a run that another one took over (a lost
job re-queued by the repair) changes nothing; the caller learns it from the result.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from daemon.policy import SyncKind
from daemon.store.records import Claimed, RunStart, ts

_SUCCESS = """
UPDATE mailboxes
SET state = 'idle', cursor = $3, last_sync_at = $4, last_success_at = $4,
    next_sync_at = CASE WHEN resync_requested THEN $4::timestamptz ELSE $5::timestamptz END,
    resync_requested = false, failure_count = 0, status_reason = NULL,
    message_count = GREATEST(0, message_count + $6), run_token = NULL, updated_at = $4
WHERE id = $1 AND run_token = $2
"""

# One chunk of a full sync committed: queued again at once under a new run number (the
# worker adds the job, delayed until the quota has refilled; the repair re-adds it if this
# process dies first). Not a success: last_success_at and the tier stay.
_PARTIAL = """
UPDATE mailboxes
SET state = 'queued', run_seq = run_seq + 1, kind = 'full', queued_at = $4, cursor = $3,
    last_sync_at = $4, next_sync_at = $5, failure_count = 0, status_reason = NULL,
    message_count = GREATEST(0, message_count + $6), run_token = NULL, updated_at = $4
WHERE id = $1 AND run_token = $2
RETURNING run_seq
"""

_FAILURE = """
UPDATE mailboxes
SET state = 'idle', last_sync_at = $3, failure_count = $4,
    next_sync_at = COALESCE($5, next_sync_at), status = $6, status_reason = $7,
    resync_requested = false, run_token = NULL, updated_at = $3
WHERE id = $1 AND run_token = $2
"""

_RUN = """
INSERT INTO sync_runs (mailbox_id, run_seq, kind, tier, worker, queued_at, started_at,
                       finished_at, api_calls, added, changed, deleted, skipped,
                       fell_back_to_full, error_kind, error, partial)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
"""

# A success and its sync_runs row in one statement: one round trip, atomic on its own, so a
# run that changed no message commits without a transaction (``finish_success_recorded``).
# Nothing is written when the run token no longer matches (another run took over).
_SUCCESS_RECORDED = f"""
WITH done AS ({_SUCCESS.strip()}
              RETURNING id)
INSERT INTO sync_runs (mailbox_id, run_seq, kind, tier, worker, queued_at, started_at,
                       finished_at, api_calls, added, changed, deleted, skipped,
                       fell_back_to_full, error_kind, error, partial)
SELECT done.id, $7::bigint, $8::text, $9::text, $10::text, $11::timestamptz,
       $12::timestamptz, $4, $13::integer, $14::integer, $15::integer, $16::integer,
       $17::integer, $18::boolean, NULL, NULL, false
FROM done
RETURNING true
"""


async def record_run(
    conn: asyncpg.Connection,
    run: RunStart,
    run_seq: int,
    worker: str,
    finished_at: float,
    kind: SyncKind,
    api_calls: int,
    counts: tuple[int, int, int, int],
    fell_back: bool,
    error_kind: str | None = None,
    error: str | None = None,
    partial: bool = False,
) -> None:
    """Append one row to ``sync_runs``."""
    added, changed, deleted, skipped = counts
    await conn.execute(
        _RUN,
        run.mailbox_id,
        run_seq,
        str(kind),
        str(run.tier),
        worker,
        ts(run.queued_at),
        ts(run.started_at),
        ts(finished_at),
        api_calls,
        added,
        changed,
        deleted,
        skipped,
        fell_back,
        error_kind,
        error,
        partial,
    )


async def finish_success(
    conn: asyncpg.Connection,
    run: RunStart,
    cursor: dict[str, Any],
    finished_at: float,
    next_due: float,
    message_delta: int,
) -> bool:
    """Store the new cursor and make the mailbox idle; ``False`` if another run took over."""
    status = await conn.execute(
        _SUCCESS,
        run.mailbox_id,
        run.run_token,
        cursor,
        ts(finished_at),
        ts(next_due),
        message_delta,
    )
    return not status.endswith(" 0")


async def finish_success_recorded(
    conn: asyncpg.Connection,
    run: RunStart,
    cursor: dict[str, Any],
    finished_at: float,
    next_due: float,
    message_delta: int,
    run_seq: int,
    worker: str,
    kind: SyncKind,
    api_calls: int,
    counts: tuple[int, int, int, int],
    fell_back: bool,
) -> bool:
    """``finish_success`` and ``record_run`` in one statement; ``False`` (nothing written) if
    another run took over."""
    added, changed, deleted, skipped = counts
    done = await conn.fetchval(
        _SUCCESS_RECORDED,
        run.mailbox_id,
        run.run_token,
        cursor,
        ts(finished_at),
        ts(next_due),
        message_delta,
        run_seq,
        str(kind),
        str(run.tier),
        worker,
        ts(run.queued_at),
        ts(run.started_at),
        api_calls,
        added,
        changed,
        deleted,
        skipped,
        fell_back,
    )
    return done is not None


async def finish_partial(
    conn: asyncpg.Connection,
    run: RunStart,
    cursor: dict[str, Any],
    finished_at: float,
    resume_at: float,
    message_delta: int,
) -> Claimed | None:
    """Store a chunked full sync's resume cursor and queue the mailbox again: the job to add
    (due at ``resume_at``), or ``None`` if another run took over."""
    run_seq = await conn.fetchval(
        _PARTIAL,
        run.mailbox_id,
        run.run_token,
        cursor,
        ts(finished_at),
        ts(resume_at),
        message_delta,
    )
    if run_seq is None:
        return None
    return Claimed(run.mailbox_id, run_seq, run.tier, SyncKind.FULL)


async def finish_failure(
    conn: asyncpg.Connection,
    run: RunStart,
    finished_at: float,
    failures: int,
    retry_at: float | None,
    status: str,
    reason: str | None,
) -> bool:
    """Record a failed run's outcome; ``False`` if another run took over."""
    tag = await conn.execute(
        _FAILURE,
        run.mailbox_id,
        run.run_token,
        ts(finished_at),
        failures,
        ts(retry_at),
        status,
        reason,
    )
    return not tag.endswith(" 0")
