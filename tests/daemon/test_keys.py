"""Encryption keys against real PostgreSQL and Redis: the start-up check, syncing with
[new, old] keys, `keys rotate` (batches, concurrent credential saves, idempotence), the CLI,
and a credential no key decrypts at sync time."""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import time
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis

from daemon.app import Daemon
from daemon.crypto import CredentialCipher
from daemon.errors import ConfigError
from daemon.keys import Rotation, census, check_stored_credentials, rotate
from daemon.providers.base import Credentials
from daemon.store.mailboxes import MailboxStore
from tests.daemon.harness import (
    TEST_KEY,
    MockServer,
    daemon_settings,
    running,
    seed,
    synced_since,
    wait_until,
)
from tests.daemon.procs import ROOT, daemon_env

OLD = TEST_KEY
NEW = "pOt8H5uQCIrUyF7wqFYkX9P2DMNzjJ8A2LJ4FTBVIGM="
OTHER = "LeMKrFgMmoATYIb_C2FDfFvfyN6i2BqFgucXfZo1rNE="


async def _rows(db: asyncpg.Pool) -> list[dict[str, Any]]:
    return [dict(r) for r in await db.fetch("SELECT * FROM mailboxes ORDER BY id")]


async def _mailboxes(db: asyncpg.Pool, blobs: list[bytes]) -> list[int]:
    """One tenant's mailboxes with the given credential blobs, not due for a day."""
    store = MailboxStore(db)
    tenant = await store.create_tenant(f"keys-{time.monotonic_ns()}")
    ids = []
    for i, blob in enumerate(blobs):
        row = await store.create_mailbox(
            tenant["id"], "gmail", f"u{i}@example.com", blob, None, None, time.time() + 86400
        )
        ids.append(row["id"])
    return ids


def _cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``mailsync`` in a subprocess, with only the given MAILSYNC_* variables."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("MAILSYNC_")} | env
    return subprocess.run(
        [sys.executable, "-m", "mailsync", *args],
        cwd=ROOT,
        env=full,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_wrong_key_refuses_to_start_and_changes_nothing(
    db: asyncpg.Pool, pg_dsn: str, redis_url: str, redis_prefix: str, mock_server: MockServer
) -> None:
    await mock_server.reset()
    await seed(db, mock_server, gmail=2, graph=1, seed=3)
    before = await _rows(db)
    settings = daemon_settings(
        pg_dsn,
        redis_url,
        redis_prefix,
        mock_server.url,
        encryption_key=None,
        encryption_keys=[NEW],
    )
    with pytest.raises(ConfigError, match=r"3 of 3 sampled stored credentials cannot be") as e:
        daemon = Daemon(settings)
        try:
            await daemon.start()  # as run_daemon does: start, and shut down whatever happens
        finally:
            await daemon.shutdown()
    assert "missing from encryption_keys" in str(e.value) and NEW not in str(e.value)
    assert await _rows(db) == before
    assert await db.fetchval("SELECT count(*) FROM sync_runs") == 0
    client = aioredis.Redis.from_url(redis_url)
    try:
        assert [k async for k in client.scan_iter(match=f"{redis_prefix}*")] == []
    finally:
        await client.aclose()


async def test_daemon_process_exits_non_zero_with_a_wrong_key(
    db: asyncpg.Pool, pg_dsn: str, redis_url: str, redis_prefix: str
) -> None:
    await _mailboxes(db, [CredentialCipher(OLD).encrypt(Credentials({"password": "pw"}))])
    env = daemon_env(pg_dsn, redis_url, redis_prefix, "http://127.0.0.1:1", "wrong-key")
    env.pop("MAILSYNC_ENCRYPTION_KEY")
    env["MAILSYNC_ENCRYPTION_KEYS"] = f"{NEW},{OTHER}"
    before = await _rows(db)
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "mailsync", "daemon", "run"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert "1 of 1 sampled stored credentials cannot be decrypted" in done.stderr
    assert "2 configured encryption key(s)" in done.stderr
    assert NEW not in done.stderr + done.stdout and OTHER not in done.stderr + done.stdout
    assert await _rows(db) == before


async def test_sample_catches_the_newest_and_passes_an_empty_table(
    db: asyncpg.Pool, pg_dsn: str
) -> None:
    cipher = CredentialCipher([NEW, OLD])
    assert await check_stored_credentials(pg_dsn, cipher, random.Random(1)) == 0
    good = [cipher.encrypt(Credentials({"password": f"p{i}"})) for i in range(60)]
    ids = await _mailboxes(db, [*good, CredentialCipher(OTHER).encrypt(Credentials({}))])
    with pytest.raises(ConfigError, match=rf"^1 of 1\d sampled .* \(mailbox ids {ids[-1]}\)"):
        await check_stored_credentials(pg_dsn, cipher, random.Random(1))
    await db.execute("DELETE FROM mailboxes WHERE id = $1", ids[-1])
    assert 12 <= await check_stored_credentials(pg_dsn, cipher, random.Random(1)) <= 20


async def test_new_and_old_keys_start_and_sync(
    db: asyncpg.Pool, pg_dsn: str, redis_url: str, redis_prefix: str, mock_server: MockServer
) -> None:
    await mock_server.reset()
    creds, start, _ = await seed(db, mock_server, gmail=3, graph=2, seed=5)  # under OLD
    settings = daemon_settings(
        pg_dsn,
        redis_url,
        redis_prefix,
        mock_server.url,
        encryption_key=None,
        encryption_keys=[NEW, OLD],
    )
    async with running(settings):
        await wait_until(lambda: synced_since(db, start, len(creds)), 60, "every mailbox synced")
    assert await db.fetchval("SELECT count(*) FROM sync_runs WHERE error_kind IS NOT NULL") == 0


async def test_rotate_reencrypts_every_row_in_batches_and_is_idempotent(db: asyncpg.Pool) -> None:
    old, new = CredentialCipher(OLD), CredentialCipher(NEW)
    secrets = [Credentials({"refresh_token": f"rt-{i}"}) for i in range(27)]
    ids = await _mailboxes(
        db, [(new if i % 7 == 0 else old).encrypt(c) for i, c in enumerate(secrets)]
    )
    before = {r["id"]: (r["credentials_rev"], r["updated_at"]) for r in await _rows(db)}
    both = CredentialCipher([NEW, OLD])
    seen: list[int] = []
    done = await rotate(db, both, batch=5, progress=lambda r: seen.append(r.scanned))
    assert (done.total, done.scanned, done.rotated, done.current) == (27, 27, 23, 4)
    assert done.complete and seen == [5, 10, 15, 20, 25, 27]
    rows = await _rows(db)
    assert [new.decrypt(r["credentials"]) for r in rows] == secrets
    # A re-encryption is no change of the user's credentials: revision and timestamp stay.
    assert {r["id"]: (r["credentials_rev"], r["updated_at"]) for r in rows} == before
    again = await rotate(db, both, batch=5)
    assert (again.rotated, again.current) == (0, 27)
    assert (await census(db, CredentialCipher(NEW), batch=4)).per_key == [27]
    assert ids == [r["id"] for r in rows]


async def test_rotate_does_not_lose_a_concurrent_credentials_save(db: asyncpg.Pool) -> None:
    old, both = CredentialCipher(OLD), CredentialCipher([NEW, OLD])
    ids = await _mailboxes(
        db, [old.encrypt(Credentials({"refresh_token": f"rt-{i}"})) for i in range(12)]
    )
    busy = ids[6]
    fresh = Credentials({"refresh_token": "rotated-by-the-provider"})
    passed = asyncio.Event()

    def progress(r: Rotation) -> None:
        if r.scanned == 11:
            passed.set()

    # A worker saving a provider-rotated refresh token (store.save_credentials_now's
    # statement), under the old key as a daemon not yet restarted does, still uncommitted.
    conn = await db.acquire()
    try:
        tx = conn.transaction()
        await tx.start()
        await conn.execute(
            "UPDATE mailboxes SET credentials = $2 WHERE id = $1 AND credentials_rev = $3",
            busy,
            old.encrypt(fresh),
            0,
        )
        task = asyncio.create_task(rotate(db, both, batch=4, progress=progress, retry_pause_s=0.1))
        await asyncio.wait_for(passed.wait(), 30)
        await tx.commit()
    finally:
        await db.release(conn)
    done = await asyncio.wait_for(task, 30)
    assert done.complete and done.rotated == 12
    by_id = {r["id"]: r for r in await _rows(db)}
    assert CredentialCipher(NEW).decrypt(by_id[busy]["credentials"]) == fresh
    # The revision is unchanged, so the next rotated token a worker saves is still taken.
    newer = Credentials({"refresh_token": "rotated-again"})
    assert await MailboxStore(db).save_credentials_now(busy, both.encrypt(newer), 0)
    assert (
        CredentialCipher(NEW).decrypt(
            await db.fetchval("SELECT credentials FROM mailboxes WHERE id = $1", busy)
        )
        == newer
    )


async def test_keys_check_and_rotate_commands(db: asyncpg.Pool, pg_dsn: str) -> None:
    old = CredentialCipher(OLD)
    ids = await _mailboxes(db, [old.encrypt(Credentials({"password": f"p{i}"})) for i in range(5)])
    ids += await _mailboxes(db, [CredentialCipher(OTHER).encrypt(Credentials({"password": "x"}))])
    env = {"MAILSYNC_DATABASE_URL": pg_dsn, "MAILSYNC_ENCRYPTION_KEYS": f"{NEW},{OLD}"}
    check = await asyncio.to_thread(_cli, "keys", "check", **env)
    assert check.returncode == 1, check.stderr
    assert "encryption_keys[0] (encrypts and decrypts): 0 credential(s)" in check.stdout
    assert "encryption_keys[1] (decrypts only): 5 credential(s)" in check.stdout
    assert f"undecryptable: 1 (mailbox ids {ids[-1]})" in check.stdout
    rot = await asyncio.to_thread(_cli, "keys", "rotate", "--batch-size", "2", **env)
    assert rot.returncode == 1 and "re-encrypted 5" in rot.stdout
    assert f"mailbox ids {ids[-1]}" in rot.stderr
    await db.execute("DELETE FROM mailboxes WHERE id = $1", ids[-1])
    rot = await asyncio.to_thread(_cli, "keys", "rotate", **env)
    assert rot.returncode == 0 and "re-encrypted 0, already under the first key 5" in rot.stdout
    check = await asyncio.to_thread(
        _cli, "keys", "check", **(env | {"MAILSYNC_ENCRYPTION_KEYS": NEW})
    )
    assert check.returncode == 0 and "(encrypts and decrypts): 5 credential(s)" in check.stdout
    out = check.stdout + check.stderr + rot.stdout + rot.stderr
    assert NEW not in out and OLD not in out


async def test_undecryptable_at_sync_time_is_not_a_provider_failure(
    db: asyncpg.Pool, pg_dsn: str, redis_url: str, redis_prefix: str, mock_server: MockServer
) -> None:
    await mock_server.reset()
    creds, start, ids = await seed(db, mock_server, gmail=2, graph=0, seed=9)
    settings = daemon_settings(pg_dsn, redis_url, redis_prefix, mock_server.url)
    store = MailboxStore(db)
    async with running(settings):
        # Written after the start-up check, as a daemon with another key config would.
        row = await store.create_mailbox(
            (await store.list_tenants())[0]["id"],
            "gmail",
            creds[0]["address"] + ".x",
            CredentialCipher(OTHER).encrypt(Credentials({"refresh_token": "r"})),
            None,
            None,
            time.time() + 86400,
        )
        bad = row["id"]
        await db.execute(
            "UPDATE mailboxes SET failure_count = 2, next_sync_at = now() WHERE id = $1", bad
        )

        async def ran() -> bool:
            n = await db.fetchval("SELECT count(*) FROM sync_runs WHERE mailbox_id = $1", bad)
            return bool(n)

        await wait_until(ran, 60, "a run of the undecryptable mailbox")
        await wait_until(lambda: synced_since(db, start, len(ids)), 60, "the others synced")
    m = await db.fetchrow("SELECT * FROM mailboxes WHERE id = $1", bad)
    assert (m["failure_count"], m["status"], m["state"]) == (2, "active", "idle")
    assert "cannot be decrypted with the configured encryption_keys" in m["status_reason"]
    # Due again at its next regular sync, not after a failure's backoff.
    assert m["next_sync_at"].timestamp() > time.time() + 60
    run = await db.fetchrow("SELECT error_kind, error FROM sync_runs WHERE mailbox_id = $1", bad)
    assert run["error_kind"] == "undecryptable" and "encryption_keys" in run["error"]
