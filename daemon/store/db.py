"""PostgreSQL access: the asyncpg pool and schema migrations."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import asyncpg

from daemon.errors import ConfigError

MIGRATIONS = Path(__file__).with_name("migrations")


async def _init_connection(conn: asyncpg.Connection) -> None:
    for typ in ("jsonb", "json"):
        await conn.set_type_codec(typ, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Hand a released connection back as it is. asyncpg's default reset costs a round trip
    per release (advisory unlock, CLOSE ALL, UNLISTEN, RESET ALL) for session state the
    daemon never sets: it takes no session-level locks, cursors, listeners or settings
    (the trim's lock is transaction-scoped). An open transaction is still rolled back by
    the pool before this is called."""


async def create_pool(dsn: str, min_size: int, max_size: int) -> asyncpg.Pool:
    """A pool whose connections decode JSON columns to Python objects."""
    try:
        pool: asyncpg.Pool = await asyncpg.create_pool(
            dsn,
            min_size=min(min_size, max_size),
            max_size=max_size,
            init=_init_connection,
            reset=_keep_session,
            # Idle connections are recycled, so a PostgreSQL restart heals by itself.
            max_inactive_connection_lifetime=60.0,
            command_timeout=60.0,
        )
    except (OSError, asyncpg.PostgresError) as exc:
        raise ConfigError(f"cannot connect to PostgreSQL: {exc}") from exc
    return pool


def _yoyo_url(dsn: str) -> str:
    if dsn.startswith("postgresql://"):
        return "postgresql+psycopg://" + dsn.removeprefix("postgresql://")
    if dsn.startswith("postgres://"):
        return "postgresql+psycopg://" + dsn.removeprefix("postgres://")
    raise ConfigError("database_url must start with postgresql://")


def migrate(dsn: str) -> list[str]:
    """Apply pending migrations in order under yoyo's lock; return the ids applied."""
    from yoyo import get_backend, read_migrations

    backend: Any = get_backend(_yoyo_url(dsn))
    try:
        migrations = read_migrations(str(MIGRATIONS))
        with backend.lock():
            pending = backend.to_apply(migrations)
            backend.apply_migrations(pending)
    finally:
        backend.connection.close()  # yoyo keeps its connection open otherwise
    return [m.id for m in pending]


def pending_migrations(dsn: str) -> list[str]:
    """Ids of migrations not yet applied (the daemon refuses to start while any are)."""
    from yoyo import get_backend, read_migrations

    backend: Any = get_backend(_yoyo_url(dsn))
    try:
        return [m.id for m in backend.to_apply(read_migrations(str(MIGRATIONS)))]
    finally:
        backend.connection.close()
