"""Applying a provider's ``SyncResult`` to the messages table inside the caller's transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from daemon.policy import SyncKind
from daemon.providers.base import ALL_FOLDERS, MessageRecord, SyncResult

# Flags travel as one string per row (unnest cannot take a jagged 2-D array).
_SEP = "\x1f"

_UPSERT = f"""
INSERT INTO messages AS m (mailbox_id, provider_id, folder, thread_id, internet_message_id,
                           subject, sender, received_at, size, flags, parse_error)
SELECT $1, u.pid, u.folder, u.thread, u.imid, u.subject, u.sender, u.received, u.size,
       string_to_array(u.flags, E'\\x{ord(_SEP):02x}'), u.perr
FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
            $8::timestamptz[], $9::int[], $10::text[], $11::text[])
     AS u(pid, folder, thread, imid, subject, sender, received, size, flags, perr)
ON CONFLICT (mailbox_id, provider_id) DO UPDATE SET
    folder = EXCLUDED.folder, thread_id = EXCLUDED.thread_id,
    internet_message_id = EXCLUDED.internet_message_id, subject = EXCLUDED.subject,
    sender = EXCLUDED.sender, received_at = EXCLUDED.received_at, size = EXCLUDED.size,
    flags = EXCLUDED.flags, parse_error = EXCLUDED.parse_error, updated_at = now()
WHERE (m.folder, m.thread_id, m.internet_message_id, m.subject, m.sender, m.received_at,
       m.size, m.flags, m.parse_error)
      IS DISTINCT FROM
      (EXCLUDED.folder, EXCLUDED.thread_id, EXCLUDED.internet_message_id, EXCLUDED.subject,
       EXCLUDED.sender, EXCLUDED.received_at, EXCLUDED.size, EXCLUDED.flags,
       EXCLUDED.parse_error)
RETURNING (xmax = 0) AS inserted
"""

_FLAGS = f"""
UPDATE messages AS m SET flags = string_to_array(u.flags, E'\\x{ord(_SEP):02x}'),
                         updated_at = now()
FROM unnest($2::text[], $3::text[]) AS u(pid, flags)
WHERE m.mailbox_id = $1 AND m.provider_id = u.pid
  AND m.flags IS DISTINCT FROM string_to_array(u.flags, E'\\x{ord(_SEP):02x}')
"""

_DELETE = "DELETE FROM messages WHERE mailbox_id = $1 AND provider_id = ANY($2::text[])"

# Scoped by folder: a removal from folder A leaves a row already filed under folder B.
_REMOVE = """
DELETE FROM messages AS m
USING unnest($2::text[], $3::text[]) AS r(pid, folder)
WHERE m.mailbox_id = $1 AND m.provider_id = r.pid AND m.folder = r.folder
"""

_DELETE_UNSEEN = """
DELETE FROM messages
WHERE mailbox_id = $1 AND ($2 OR folder = ANY($3::text[]))
  AND NOT (provider_id = ANY($4::text[]))
"""

# The same for a full sync committed in chunks: seen by any of its chunks.
_DELETE_UNSEEN_CHUNKED = """
DELETE FROM messages AS m
WHERE m.mailbox_id = $1 AND ($2 OR m.folder = ANY($3::text[]))
  AND NOT EXISTS (SELECT 1 FROM full_sync_seen s
                  WHERE s.mailbox_id = m.mailbox_id AND s.provider_id = m.provider_id)
"""

_SEEN = """
INSERT INTO full_sync_seen (mailbox_id, provider_id)
SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING
"""

_FORGET_SEEN = "DELETE FROM full_sync_seen WHERE mailbox_id = $1"


@dataclass(frozen=True, slots=True)
class ApplyCounts:
    """What one sync changed in the store."""

    added: int
    changed: int
    deleted: int


def _ts(t: float | None) -> datetime | None:
    return None if t is None else datetime.fromtimestamp(t, UTC)


def _flags(flags: tuple[str, ...]) -> str:
    return _SEP.join(f.replace(_SEP, "") for f in flags)


def _deduplicated(records: list[MessageRecord]) -> list[MessageRecord]:
    # A delta round may repeat an item; the last version wins, and ON CONFLICT must not
    # see the same key twice in one statement.
    seen: dict[str, MessageRecord] = {}
    for r in records:
        seen[r.provider_id] = r
    return list(seen.values())


def _rowcount(status: str) -> int:
    # asyncpg returns the command tag, e.g. "DELETE 3" or "UPDATE 2".
    return int(status.rsplit(" ", 1)[-1])


def writes_messages(result: SyncResult) -> bool:
    """Whether ``apply_result`` sends any statement for ``result``: a commit without one
    needs no transaction of its own (the worker's commit of an incremental sync that found
    nothing new is then one statement)."""
    return bool(
        result.upserts
        or result.flag_updates
        or result.deletes
        or result.removals
        or result.full_scopes
        or result.partial
        or result.resumed
        or result.kind is SyncKind.FULL
    )


async def apply_result(
    conn: asyncpg.Connection, mailbox_id: int, result: SyncResult
) -> ApplyCounts:
    """Upsert, update flags, delete and remove as the result says; call inside a
    transaction."""
    upserts = _deduplicated(result.upserts)
    added = changed = deleted = 0
    if upserts:
        rows = await conn.fetch(
            _UPSERT,
            mailbox_id,
            [r.provider_id for r in upserts],
            [r.folder for r in upserts],
            [r.thread_id for r in upserts],
            [r.internet_message_id for r in upserts],
            [_clean(r.subject) for r in upserts],
            [_clean(r.sender) for r in upserts],
            [_ts(r.received_at) for r in upserts],
            [_clamp_size(r.size) for r in upserts],
            [_flags(r.flags) for r in upserts],
            [r.parse_error for r in upserts],
        )
        added = sum(1 for row in rows if row["inserted"])
        changed = len(rows) - added
    if result.flag_updates:
        last = {pid: flags for pid, flags in result.flag_updates}
        status = await conn.execute(
            _FLAGS, mailbox_id, list(last), [_flags(f) for f in last.values()]
        )
        changed += _rowcount(status)
    if result.deletes:
        status = await conn.execute(_DELETE, mailbox_id, list(set(result.deletes)))
        deleted += _rowcount(status)
    if result.removals:
        # After the upserts: a message this sync also found in another folder is filed there
        # by now, and its removal from the old folder matches no row.
        gone = list(dict.fromkeys(result.removals))
        status = await conn.execute(
            _REMOVE, mailbox_id, [pid for pid, _ in gone], [folder for _, folder in gone]
        )
        deleted += _rowcount(status)
    deleted += await _remove_unseen(conn, mailbox_id, result, upserts)
    return ApplyCounts(added, changed, deleted)


async def _remove_unseen(
    conn: asyncpg.Connection, mailbox_id: int, result: SyncResult, upserts: list[MessageRecord]
) -> int:
    """What a full listing did not find goes; a chunked one remembers finds until its end."""
    chunked = result.partial or result.resumed
    if result.kind is SyncKind.FULL and not result.resumed:
        # A new full sync: finds of one given up earlier (fallen back, reset) do not count.
        await conn.execute(_FORGET_SEEN, mailbox_id)
    if chunked:
        await conn.execute(_SEEN, mailbox_id, [r.provider_id for r in upserts])
    if not result.full_scopes:
        return 0
    everything = ALL_FOLDERS in result.full_scopes
    scopes = [s for s in result.full_scopes if s != ALL_FOLDERS]
    if chunked:
        status = await conn.execute(_DELETE_UNSEEN_CHUNKED, mailbox_id, everything, scopes)
        await conn.execute(_FORGET_SEEN, mailbox_id)
    else:
        seen = [r.provider_id for r in upserts if everything or r.folder in scopes]
        status = await conn.execute(_DELETE_UNSEEN, mailbox_id, everything, scopes, seen)
    return _rowcount(status)


def _clean(text: str | None) -> str | None:
    # PostgreSQL text cannot hold NUL; providers' garbage must not abort the transaction.
    return None if text is None else text.replace("\x00", "")


def _clamp_size(size: int | None) -> int | None:
    if size is None:
        return None
    return max(0, min(size, 2**31 - 1))
