"""Session fixtures: a database and a Redis key prefix of this run's own, removed at the end.

Tests talk to the real PostgreSQL and Redis on 127.0.0.1 (``MAILSYNC_TEST_PG`` /
``MAILSYNC_TEST_REDIS`` point elsewhere); every run creates ``mailsync_test_<id>`` and uses
keys under ``mailsync-test-<id>``, so concurrent runs never see each other's data.
"""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest
import redis.asyncio as aioredis

from daemon.store.db import create_pool, migrate

PG_ADMIN = os.environ.get("MAILSYNC_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("MAILSYNC_TEST_REDIS", "redis://127.0.0.1:6379/0")
_counter = itertools.count()


@pytest.fixture(scope="session")
def run_id() -> str:
    """Identifies this test run in database names and Redis keys."""
    return uuid.uuid4().hex[:10]


def _dsn_for(db: str) -> str:
    base, _, _ = PG_ADMIN.rpartition("/")
    return f"{base}/{db}"


@pytest.fixture(scope="session")
async def pg_dsn(run_id: str) -> AsyncIterator[str]:
    """A fresh, migrated database for this run."""
    name = f"mailsync_test_{run_id}"
    try:
        admin = await asyncpg.connect(PG_ADMIN)
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.exit(f"PostgreSQL is not reachable at {PG_ADMIN}: {exc}", returncode=3)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    dsn = _dsn_for(name)
    migrate(dsn)
    yield dsn
    admin = await asyncpg.connect(PG_ADMIN)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture(scope="session")
async def pg_pool(pg_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on this run's database."""
    pool = await create_pool(pg_dsn, 2, 20)
    yield pool
    await pool.close()


@pytest.fixture
async def db(pg_pool: asyncpg.Pool) -> asyncpg.Pool:
    """The run's database, emptied before the test."""
    await pg_pool.execute(
        "TRUNCATE tenants, mailboxes, messages, sync_runs RESTART IDENTITY CASCADE"
    )
    return pg_pool


@pytest.fixture(scope="session")
def redis_url() -> str:
    """Where the real Redis listens."""
    return REDIS_URL


@pytest.fixture(scope="session")
async def redis_session(run_id: str) -> AsyncIterator[aioredis.Redis]:
    """A client; at the end of the run every key under the run's prefix is deleted."""
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        await client.ping()
    except (OSError, aioredis.ConnectionError) as exc:
        pytest.exit(f"Redis is not reachable at {REDIS_URL}: {exc}", returncode=3)
    yield client
    async for key in client.scan_iter(match=f"mailsync-test-{run_id}*", count=1000):
        await client.delete(key)
    await client.aclose()


@pytest.fixture
def redis_prefix(run_id: str, redis_session: aioredis.Redis) -> Iterator[str]:
    """A key prefix of this test's own."""
    yield f"mailsync-test-{run_id}-{next(_counter)}"
