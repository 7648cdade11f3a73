"""Start-up refusals come before anything runs, as one-line errors."""

from __future__ import annotations

import socket

import pytest
import redis.asyncio as aioredis

from daemon.app import Daemon
from daemon.errors import ConfigError
from daemon.settings import redact_url
from tests.daemon.harness import daemon_settings, running


def test_passwords_in_urls_are_masked_in_the_user_part_and_the_query() -> None:
    assert redact_url("postgresql://u:pw@h:5432/db?password=s3cret&sslmode=require") == (
        "postgresql://u:***@h:5432/db?password=***&sslmode=require"
    )
    assert redact_url("postgresql://h/db?host=/run/pg&application_name=x") == (
        "postgresql://h/db?host=/run/pg&application_name=x"
    )
    assert redact_url("redis://:pw@127.0.0.1:6379/0") == "redis://:***@127.0.0.1:6379/0"


async def test_busy_api_port_is_refused_before_any_worker_starts(
    pg_dsn: str, redis_url: str, redis_prefix: str, redis_session: aioredis.Redis
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = daemon_settings(
            pg_dsn, redis_url, redis_prefix, "http://127.0.0.1:9", api_port=port
        )
        with pytest.raises(ConfigError, match=f"cannot listen on 127.0.0.1:{port}"):
            async with running(settings):
                pass
    # Nothing was started: no queue or worker key of this prefix in Redis.
    assert await redis_session.keys(f"{redis_prefix}:*") == []


async def test_missing_api_token_is_refused_before_connecting() -> None:
    settings = daemon_settings(
        "postgresql://nobody@127.0.0.1:1/none",
        "redis://127.0.0.1:1/0",
        "p",
        "http://x",
        api_token=None,
    )
    daemon = Daemon(settings)
    with pytest.raises(ConfigError, match="api_token is required"):
        await daemon.start()
    await daemon.shutdown()
    assert daemon.pool is None and daemon.workers is None
