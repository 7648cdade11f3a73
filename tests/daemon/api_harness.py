"""The API as an ASGI app over a started daemon (real PostgreSQL and Redis, no workers or
scheduler loop), so a test can swap its dependencies (an unreachable Redis, a host policy)."""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
from fastapi import FastAPI

from daemon.api import ApiDeps, create_app
from daemon.app import Daemon
from daemon.crypto import CredentialCipher
from daemon.providers.imap_hosts import LOOPBACK, HostPolicy
from daemon.store.mailboxes import MailboxStore
from tests.daemon.harness import API_TOKEN, TEST_KEY, daemon_settings, running

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


@contextlib.asynccontextmanager
async def api_daemon(
    pg_dsn: str, redis_url: str, redis_prefix: str, **extra: Any
) -> AsyncIterator[Daemon]:
    """A daemon that serves nothing and syncs nothing: its pool, Redis and queues."""
    settings = daemon_settings(
        pg_dsn,
        redis_url,
        redis_prefix,
        "http://127.0.0.1:9",
        api_enabled=False,
        workers_enabled=False,
        scheduler_enabled=False,
        **extra,
    )
    async with running(settings) as d:
        yield d


def deps_of(d: Daemon, **changes: Any) -> ApiDeps:
    """The API's dependencies as the daemon builds them (loopback IMAP servers allowed),
    with ``changes`` applied."""
    assert d.pool is not None and d.redis is not None and d.queues is not None
    assert d.scheduler is not None and d.limiters is not None
    deps = ApiDeps(
        MailboxStore(d.pool),
        d.scheduler,
        d.queues,
        d.redis,
        CredentialCipher(TEST_KEY),
        d.metrics,
        d.limiters,
        time.time,
        API_TOKEN,
        imap_hosts=HostPolicy(LOOPBACK),
    )
    return dataclasses.replace(deps, **changes)


def client(app: FastAPI) -> httpx.AsyncClient:
    """An HTTP client of the app in this process (a 500 raises instead of answering)."""
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://api", headers=AUTH, timeout=30
    )


def api(d: Daemon, **changes: Any) -> httpx.AsyncClient:
    """A client of the API built over ``d``."""
    return client(create_app(deps_of(d, **changes)))
