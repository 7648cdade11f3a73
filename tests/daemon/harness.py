"""Helpers for daemon tests: the mock providers served on a real port, daemon settings,
and an in-process daemon with the real scheduler, queues, workers and API."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
import uvicorn

from daemon.app import Daemon
from daemon.crypto import CredentialCipher
from daemon.providers.base import Credentials
from daemon.settings import Settings, _deep_merge, load_settings
from daemon.store.mailboxes import MailboxStore
from daemon.store.records import ts
from loadtest.mock_providers.app import create_app
from loadtest.mock_providers.config import MockConfig
from loadtest.mock_providers.server import uvicorn_config

# A fixed test key: credentials in the test database are throwaway.
TEST_KEY = "Vq2hpq0Y0lYH2wBkYyQqvE0x2u6yXBq7f2bX1E1gYxI="
API_TOKEN = "test-api-token"


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _QuietServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Any:
        yield


class MockServer:
    """The mock providers on a real loopback port, with a control client."""

    def __init__(self, url: str, client: httpx.AsyncClient) -> None:
        self.url = url
        self.client = client

    async def call(self, method: str, path: str, body: Any = None, status: int = 200) -> Any:
        """A control request; asserts the status."""
        r = await self.client.request(method, path, json=body)
        assert r.status_code == status, f"{method} {path}: {r.status_code} {r.text[:500]}"
        return r.json()

    async def reset(self, config: dict[str, Any] | None = None) -> None:
        """Empty the mock and apply a config patch."""
        await self.call("POST", "/_mock/reset")
        await self.call("PUT", "/_mock/config", config or {})

    async def populate(
        self, gmail: int, graph: int, seed: int, median: float = 20, max_size: int = 200
    ) -> list[dict[str, Any]]:
        """Seeded mailboxes; returns their credentials."""
        body = {
            "gmail": gmail,
            "graph": graph,
            "seed": seed,
            "size": {"dist": "lognormal", "median": median, "sigma": 0.8, "max": max_size},
        }
        out: list[dict[str, Any]] = await self.call("POST", "/_mock/populate", body)
        return out

    async def messages(self, address: str) -> list[dict[str, Any]]:
        """Every current message of a mailbox."""
        doc = await self.call("GET", f"/_mock/mailboxes/{address}/messages")
        out: list[dict[str, Any]] = doc["messages"]
        return out

    async def stats(self) -> dict[str, Any]:
        """Traffic counters."""
        out: dict[str, Any] = await self.call("GET", "/_mock/stats")
        return out


@pytest.fixture(scope="session")
async def mock_server() -> AsyncIterator[MockServer]:
    """One mock for the session; tests reset it."""
    port = free_port()
    app = create_app(MockConfig(seed=7))
    server = _QuietServer(uvicorn_config(app, "127.0.0.1", port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    url = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        yield MockServer(url, client)
    server.should_exit = True
    await task


def daemon_settings(
    pg_dsn: str, redis_url: str, redis_prefix: str, mock_url: str, **extra: Any
) -> Settings:
    """Settings of a test daemon pointed at the mock, fast cycles, quiet logs."""
    base: dict[str, Any] = {
        "database_url": pg_dsn,
        "redis_url": redis_url,
        "redis_prefix": redis_prefix,
        "encryption_key": TEST_KEY,
        "api_token": API_TOKEN,
        "api_port": free_port(),
        "log_level": "warning",
        "seed": 1,
        "gmail": {
            "base_url": mock_url,
            "token_url": f"{mock_url}/token",
            "client_id": "mock-gmail-client",
            "client_secret": "mock-gmail-secret",
        },
        "graph": {
            "base_url": f"{mock_url}/v1.0",
            "token_url": f"{mock_url}/common/oauth2/v2.0/token",
            "client_id": "mock-graph-client",
            "client_secret": "mock-graph-secret",
        },
        "policy": {"scheduler_interval_s": 0.3},
        # The test Dovecot listens on loopback, which the IMAP host policy refuses by default.
        "imap": {"allowed_networks": ["127.0.0.0/8", "::1/128"]},
        "requeue_after_s": 5,
        "lock_duration_s": 4,
        "stalled_interval_s": 2,
        "shutdown_timeout_s": 5,
    }
    return load_settings(None, _deep_merge(base, extra), environ={})


@contextlib.asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[Daemon]:
    """A daemon started in this event loop, shut down at the end."""
    d = Daemon(settings)
    try:
        await d.start()
        yield d
    finally:
        await d.shutdown()


async def register(
    store: MailboxStore,
    tenant_id: int,
    creds: list[dict[str, Any]],
    now: float,
    cipher: CredentialCipher | None = None,
    configs: list[dict[str, Any]] | None = None,
) -> list[int]:
    """Mailboxes for the mock's credentials (with ``configs``, one per mailbox), due now;
    returns their ids."""
    cipher = cipher or CredentialCipher(TEST_KEY)
    rows = [
        (
            tenant_id,
            c["provider"],
            c["address"],
            cipher.encrypt(Credentials({"refresh_token": c["refresh_token"]})),
            configs[i] if configs else {},
        )
        for i, c in enumerate(creds)
    ]
    await store.create_mailboxes_bulk(rows, now)
    ids = await store.pool.fetch(
        "SELECT id FROM mailboxes WHERE tenant_id = $1 ORDER BY id", tenant_id
    )
    return [r["id"] for r in ids]


async def wait_until(check: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    """Poll ``check`` until true; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


async def seed(
    db: Any, mock: MockServer, tenant: str = "t", **populate: Any
) -> tuple[list[dict[str, Any]], float, list[int]]:
    """Mailboxes made by the mock and registered, due now: (credentials, when, ids)."""
    creds = await mock.populate(**populate)
    store = MailboxStore(db)
    row = await store.create_tenant(tenant)
    start = time.time()
    ids = await register(store, row["id"], creds, start)
    return creds, start, ids


async def synced_since(db: Any, since: float, n: int) -> bool:
    """Whether ``n`` mailboxes finished a successful sync after ``since`` and are idle."""
    got = await db.fetchval(
        "SELECT count(*) FROM mailboxes WHERE last_success_at > $1 AND state = 'idle'", ts(since)
    )
    return bool(got == n)


async def assert_store_matches_mock(
    db: Any, messages: Callable[[str], Awaitable[list[dict[str, Any]]]]
) -> int:
    """Every active mailbox holds exactly the provider's messages (Graph: of every folder, as
    the daemon syncs by default), once each; returns the number of stored messages."""
    total = 0
    rows = await db.fetch(
        "SELECT id, address, provider, message_count FROM mailboxes WHERE status = 'active'"
    )
    for r in rows:
        msgs = await messages(r["address"])
        stored = [
            x["provider_id"]
            for x in await db.fetch(
                "SELECT provider_id FROM messages WHERE mailbox_id = $1", r["id"]
            )
        ]
        assert len(stored) == r["message_count"], r["address"]
        assert set(stored) == {m["id"] for m in msgs}, r["address"]
        total += len(stored)
    return total


__all__ = [
    "API_TOKEN",
    "TEST_KEY",
    "MockServer",
    "assert_store_matches_mock",
    "daemon_settings",
    "register",
    "running",
    "seed",
    "synced_since",
    "ts",
    "wait_until",
]
