"""The keys of the credentials at rest, checked against what is stored, and rotated.

- ``check_stored_credentials``: the daemon's start-up check. A sample of stored credentials
  (the newest, the oldest and some spread over the ids) must decrypt with the configured
  keys, or the daemon refuses to start: with a wrong key every sync would fail and, counted
  as provider failures, park the whole fleet in ``error``.
- ``defer_undecryptable``: what a worker does with one mailbox whose credentials no key
  decrypts: nothing to the mailbox but a note and its next regular sync time. No failure is
  counted: the key configuration is the operator's to fix, not the mailbox's.
- ``census`` and ``rotate``: ``mailsync keys check`` and ``mailsync keys rotate``.

Rotation rewrites only ``mailboxes.credentials``, under the rows' locks, and never
``credentials_rev``: the revision counts the user's changes of the secrets (the token cache
and the worker's save of a provider-rotated refresh token go by it), and a re-encryption
changes no secret. A worker saving a rotated refresh token meanwhile either commits before
the rotation locks the row (the rotation then re-encrypts the new blob) or waits for the
rotation's short transaction and writes its blob over the rotated one (newer secrets, under
the first key of its daemon): nothing is lost either way.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import asyncpg

from daemon.crypto import CredentialCipher, UndecryptableCredentials
from daemon.errors import ConfigError
from daemon.logs import get_logger
from daemon.policy import next_due
from daemon.store.mailboxes import MailboxStore
from daemon.store.records import RunStart
from daemon.store.runs import finish_failure, record_run

log = get_logger("keys")

# The start-up sample: newest rows (the latest writes, most likely under the newest key),
# oldest rows (the likeliest to be under a key removed too early) and rows spread at random
# over the id range. Each part is one index lookup.
SAMPLE_NEWEST = 8
SAMPLE_OLDEST = 4
SAMPLE_SPREAD = 8
# Rows re-encrypted per transaction by ``rotate``.
ROTATE_BATCH = 500
# Passes over rows that were locked (a sync committing) when their batch came.
_BUSY_RETRIES = 10
# ``sync_runs.error_kind`` of a run that found its credentials undecryptable.
UNDECRYPTABLE = "undecryptable"
UNDECRYPTABLE_REASON = (
    "credentials cannot be decrypted with the configured encryption_keys; "
    "not counted as a failure (see `mailsync keys check`)"
)

_SAMPLE = """
(SELECT id, credentials FROM mailboxes ORDER BY id DESC LIMIT $1)
UNION
(SELECT id, credentials FROM mailboxes ORDER BY id LIMIT $2)
UNION
(SELECT m.id, m.credentials
 FROM unnest($3::bigint[]) AS p(x)
 CROSS JOIN LATERAL (SELECT id, credentials FROM mailboxes
                     WHERE id >= p.x ORDER BY id LIMIT 1) AS m)
"""


async def sample_credentials(
    conn: asyncpg.Connection | asyncpg.Pool, rng: random.Random
) -> list[tuple[int, bytes]]:
    """Up to ``SAMPLE_NEWEST + SAMPLE_OLDEST + SAMPLE_SPREAD`` stored (id, blob) pairs."""
    lo, hi = await conn.fetchrow("SELECT min(id), max(id) FROM mailboxes")
    if lo is None:
        return []
    points = [rng.randint(lo, hi) for _ in range(SAMPLE_SPREAD)]
    rows = await conn.fetch(_SAMPLE, SAMPLE_NEWEST, SAMPLE_OLDEST, points)
    return sorted((r["id"], bytes(r["credentials"])) for r in rows)


async def check_stored_credentials(dsn: str, cipher: CredentialCipher, rng: random.Random) -> int:
    """Decrypt a sample of the stored credentials; ``ConfigError`` naming how many failed and
    what to do if any did. Returns the sample's size. Reads only."""
    try:
        conn = await asyncpg.connect(dsn)
        try:
            sample = await sample_credentials(conn, rng)
        finally:
            await conn.close()
    except (OSError, asyncpg.PostgresError) as exc:
        raise ConfigError(f"cannot connect to PostgreSQL: {exc}") from exc
    bad = [mailbox_id for mailbox_id, blob in sample if cipher.key_index(blob) is None]
    if bad:
        shown = ", ".join(str(i) for i in bad[:10]) + (" ..." if len(bad) > 10 else "")
        raise ConfigError(
            f"{len(bad)} of {len(sample)} sampled stored credentials cannot be decrypted with "
            f"the {cipher.key_count} configured encryption key(s) (mailbox ids {shown}): the "
            "key is wrong, or the key they were encrypted with is missing from "
            "encryption_keys (keep old keys after the new one until `mailsync keys rotate` "
            "has run). Nothing was changed; `mailsync keys check` counts the credentials each "
            "key decrypts"
        )
    return len(sample)


async def defer_undecryptable(
    store: MailboxStore, start: RunStart, run_seq: int, worker: str, now: float, interval_s: float
) -> None:
    """End a run whose credentials no configured key decrypts without counting a failure:
    the mailbox stays ``active`` with its failure count, notes the reason, is due again at
    its next regular sync, and the run is logged in ``sync_runs``."""
    async with store.pool.acquire() as conn, conn.transaction():
        ok = await finish_failure(
            conn,
            start,
            now,
            start.failure_count,
            next_due(start.started_at, interval_s),
            "active",
            UNDECRYPTABLE_REASON,
        )
        if ok:
            await record_run(
                conn,
                start,
                run_seq,
                worker,
                now,
                start.kind,
                0,
                (0, 0, 0, 0),
                False,
                UNDECRYPTABLE,
                UNDECRYPTABLE_REASON,
            )
    log.error(
        "credentials cannot be decrypted with the configured encryption_keys; "
        "sync skipped, not counted as a failure",
        mailbox_id=start.mailbox_id,
        provider=start.provider,
    )


@dataclass
class Census:
    """How many stored credentials each configured key decrypts (the first that does)."""

    per_key: list[int]
    undecryptable: list[int] = field(default_factory=list)  # mailbox ids

    @property
    def total(self) -> int:
        """Credentials looked at."""
        return sum(self.per_key) + len(self.undecryptable)


async def census(pool: asyncpg.Pool, cipher: CredentialCipher, batch: int = ROTATE_BATCH) -> Census:
    """Every stored credential, by the key that decrypts it. Reads only."""
    out = Census([0] * cipher.key_count)
    last = 0
    while True:
        rows = await pool.fetch(
            "SELECT id, credentials FROM mailboxes WHERE id > $1 ORDER BY id LIMIT $2",
            last,
            batch,
        )
        if not rows:
            return out
        last = rows[-1]["id"]
        for r in rows:
            index = cipher.key_index(bytes(r["credentials"]))
            if index is None:
                out.undecryptable.append(r["id"])
            else:
                out.per_key[index] += 1


@dataclass
class Rotation:
    """Progress and result of ``rotate``."""

    total: int  # rows when the rotation began
    scanned: int = 0
    rotated: int = 0
    current: int = 0  # under the first key already
    undecryptable: list[int] = field(default_factory=list)  # mailbox ids
    busy: list[int] = field(default_factory=list)  # still locked after every retry

    @property
    def complete(self) -> bool:
        """Whether every stored credential is now under the first key."""
        return not self.undecryptable and not self.busy


_LOCK = """
SELECT id, credentials FROM mailboxes WHERE id = ANY($1::bigint[]) ORDER BY id
FOR UPDATE SKIP LOCKED
"""

# Compare-and-set on the blob read under the lock (belt and braces: the lock already keeps
# it); ``credentials_rev`` and ``updated_at`` are left alone (see the module's docstring).
_REWRITE = """
UPDATE mailboxes AS m SET credentials = u.new
FROM unnest($1::bigint[], $2::bytea[], $3::bytea[]) AS u(id, old, new)
WHERE m.id = u.id AND m.credentials = u.old
"""


async def _rotate_ids(
    pool: asyncpg.Pool, cipher: CredentialCipher, ids: Sequence[int], out: Rotation
) -> list[int]:
    """Re-encrypt the rows of ``ids`` under the first key in one transaction; the ids
    skipped because another transaction holds their row (or they are gone)."""
    async with pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(_LOCK, list(ids))
        changed: tuple[list[int], list[bytes], list[bytes]] = ([], [], [])
        for r in rows:
            blob = bytes(r["credentials"])
            try:
                new = cipher.reencrypt(blob)
            except UndecryptableCredentials:
                out.undecryptable.append(r["id"])
                continue
            if new is None:
                out.current += 1
                continue
            changed[0].append(r["id"])
            changed[1].append(blob)
            changed[2].append(new)
        if changed[0]:
            await conn.execute(_REWRITE, *changed)
        out.rotated += len(changed[0])
    seen = {r["id"] for r in rows}
    return [i for i in ids if i not in seen]


async def rotate(
    pool: asyncpg.Pool,
    cipher: CredentialCipher,
    batch: int = ROTATE_BATCH,
    progress: Callable[[Rotation], None] | None = None,
    retry_pause_s: float = 0.2,
) -> Rotation:
    """Re-encrypt every stored credential under the first configured key, ``batch`` rows per
    transaction, while daemons run. Idempotent and resumable: rows under the first key are
    left as they are, so a second run (or one after an interruption) rewrites only the rest.
    Rows no key decrypts are left untouched and listed."""
    out = Rotation(total=await pool.fetchval("SELECT count(*) FROM mailboxes"))
    skipped: list[int] = []
    last = 0
    while True:
        ids = [
            r["id"]
            for r in await pool.fetch(
                "SELECT id FROM mailboxes WHERE id > $1 ORDER BY id LIMIT $2", last, batch
            )
        ]
        if not ids:
            break
        last = ids[-1]
        missed = await _rotate_ids(pool, cipher, ids, out)
        skipped.extend(missed)
        out.scanned += len(ids) - len(missed)
        if progress is not None:
            progress(out)
    for attempt in range(_BUSY_RETRIES):
        # Rows locked by a sync's commit (milliseconds) when their batch came, or deleted.
        skipped = await _existing(pool, skipped)
        if not skipped:
            break
        await asyncio.sleep(retry_pause_s * (attempt + 1))
        still: list[int] = []
        for i in range(0, len(skipped), batch):
            part = skipped[i : i + batch]
            missed = await _rotate_ids(pool, cipher, part, out)
            out.scanned += len(part) - len(missed)
            still.extend(missed)
        skipped = still
        if progress is not None:
            progress(out)
    skipped = await _existing(pool, skipped)
    out.busy = sorted(skipped)
    return out


async def _existing(pool: asyncpg.Pool, ids: list[int]) -> list[int]:
    if not ids:
        return []
    rows = await pool.fetch("SELECT id FROM mailboxes WHERE id = ANY($1::bigint[])", ids)
    return sorted(r["id"] for r in rows)


def throttle(every_s: float, fn: Callable[[Rotation], None]) -> Callable[[Rotation], None]:
    """``fn`` called at most once per ``every_s`` seconds (progress lines)."""
    last = [float("-inf")]

    def call(r: Rotation) -> None:
        now = time.monotonic()
        if now - last[0] >= every_s:
            last[0] = now
            fn(r)

    return call
