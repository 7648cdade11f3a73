"""/healthz: 200 when PostgreSQL, Redis and the background tasks are fine, otherwise 503
naming what is down, within the check's short timeout; never a 500."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis

from daemon.api.guards import HEALTH_TIMEOUT_S
from daemon.app import Daemon
from daemon.store.mailboxes import MailboxStore
from tests.daemon.api_harness import api, api_daemon
from tests.daemon.harness import free_port


@pytest.fixture
async def daemon(pg_dsn: str, redis_url: str, redis_prefix: str) -> AsyncIterator[Daemon]:
    async with api_daemon(pg_dsn, redis_url, redis_prefix) as d:
        yield d


@pytest.fixture
async def dead_pool() -> AsyncIterator[asyncpg.Pool]:
    """A pool of a PostgreSQL that is not there (nothing listens on the port)."""
    pool = await asyncpg.create_pool(
        f"postgresql://postgres@127.0.0.1:{free_port()}/nothing", min_size=0, max_size=1
    )
    yield pool
    await pool.close()


@pytest.fixture
async def dead_redis() -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(f"redis://127.0.0.1:{free_port()}/0")
    yield client
    await client.aclose()


@pytest.fixture
async def silent_server() -> AsyncIterator[int]:
    """A port that accepts connections and never answers (a hung dependency)."""
    held: list[asyncio.StreamWriter] = []

    async def accept(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    for w in held:
        w.close()
    server.close()


async def _health(client: httpx.AsyncClient) -> tuple[int, dict[str, object], float]:
    t0 = time.monotonic()
    r = await client.get("/healthz")
    return r.status_code, r.json(), time.monotonic() - t0


async def test_healthy(daemon: Daemon) -> None:
    async with api(daemon) as client:
        code, body, _ = await _health(client)
    assert (code, body) == (200, {"status": "ok"})


async def test_postgresql_down(daemon: Daemon, dead_pool: asyncpg.Pool) -> None:
    async with api(daemon, store=MailboxStore(dead_pool)) as client:
        code, body, took = await _health(client)
    assert (code, body) == (503, {"status": "unavailable", "failed": ["postgresql"]})
    assert took < HEALTH_TIMEOUT_S + 1


async def test_redis_down(daemon: Daemon, dead_redis: aioredis.Redis) -> None:
    async with api(daemon, redis=dead_redis) as client:
        code, body, took = await _health(client)
    assert (code, body) == (503, {"status": "unavailable", "failed": ["redis"]})
    assert took < HEALTH_TIMEOUT_S + 1


async def test_both_down(
    daemon: Daemon, dead_pool: asyncpg.Pool, dead_redis: aioredis.Redis
) -> None:
    async with api(daemon, store=MailboxStore(dead_pool), redis=dead_redis) as client:
        code, body, _ = await _health(client)
    assert (code, body) == (503, {"status": "unavailable", "failed": ["postgresql", "redis"]})


async def test_hung_dependencies_time_out(daemon: Daemon, silent_server: int) -> None:
    pool = await asyncpg.create_pool(
        f"postgresql://postgres@127.0.0.1:{silent_server}/x", min_size=0, max_size=1
    )
    hung_redis = aioredis.Redis.from_url(f"redis://127.0.0.1:{silent_server}/0")
    try:
        async with api(daemon, store=MailboxStore(pool), redis=hung_redis) as client:
            code, body, took = await _health(client)
    finally:
        await hung_redis.aclose()
        pool.terminate()
    assert (code, body) == (503, {"status": "unavailable", "failed": ["postgresql", "redis"]})
    assert HEALTH_TIMEOUT_S - 0.1 < took < HEALTH_TIMEOUT_S + 1


async def test_failed_background_tasks_are_named(daemon: Daemon) -> None:
    def failed() -> Sequence[str]:
        return ["scheduler", "workers.high"]

    async with api(daemon, failed_tasks=failed) as client:
        code, body, _ = await _health(client)
    assert (code, body) == (
        503,
        {"status": "unavailable", "failed": ["scheduler", "workers.high"]},
    )

    def broken() -> Sequence[str]:
        raise RuntimeError("report failed")

    async with api(daemon, failed_tasks=broken) as client:
        code, body, _ = await _health(client)
    assert (code, body) == (503, {"status": "unavailable", "failed": ["failed_tasks"]})


async def test_health_needs_no_token_but_the_rest_does(daemon: Daemon) -> None:
    async with api(daemon) as client:
        client.headers.pop("Authorization")
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get("/tenants")).status_code == 401
