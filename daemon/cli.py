"""The daemon's commands: run, migrate, config, tenants, mailboxes, keys.

``app`` is mounted at the top level of the ``mailsync`` command by ``mailsync.cli``, which also
mounts the simulator's and the load test's commands.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from daemon.errors import ConfigError, MailsyncError

app = typer.Typer(
    help="The sync daemon, its database, tenants, mailboxes and keys.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
daemon_app = typer.Typer(help="Run the sync daemon and manage its database.", no_args_is_help=True)
mailbox_app = typer.Typer(
    help="Register and inspect mailboxes directly in the database.", no_args_is_help=True
)
tenant_app = typer.Typer(help="Create and list tenants.", no_args_is_help=True)
keys_app = typer.Typer(
    help="Check and rotate the keys encrypting stored credentials (encryption_keys).",
    no_args_is_help=True,
)
app.add_typer(daemon_app, name="daemon")
app.add_typer(mailbox_app, name="mailbox")
app.add_typer(tenant_app, name="tenant")
app.add_typer(keys_app, name="keys")

ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        envvar="MAILSYNC_CONFIG",
        exists=True,
        dir_okay=False,
        help="TOML config file (see README: configuration reference).",
    ),
]
ProfileOpt = Annotated[
    str | None, typer.Option("--profile", "-p", help="Policy profile: original or plan-b.")
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override any setting: --set policy.batch_size=300 (repeatable)."),
]


def _parse_value(raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def overrides_from(profile: str | None, sets: list[str] | None) -> dict[str, Any]:
    """Nested overrides from ``--profile`` and ``--set a.b=c`` flags."""
    out: dict[str, Any] = {}
    if profile:
        out.setdefault("policy", {})["profile"] = profile
    for item in sets or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = _parse_value(value)
    return out


def _settings(
    config: Path | None, profile: str | None = None, sets: list[str] | None = None
) -> Any:
    from daemon.settings import load_settings

    return load_settings(config, overrides_from(profile, sets))


def _fail(exc: Exception) -> None:
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(2)


@daemon_app.command("run")
def daemon_run(config: ConfigOpt = None, profile: ProfileOpt = None, set_: SetOpt = None) -> None:
    """Run scheduler, workers and API until SIGTERM (graceful shutdown)."""
    from daemon import logs
    from daemon.app import run_daemon, run_loop

    try:
        settings = _settings(config, profile, set_)
        logs.configure(settings.log_level, settings.log_format)
        run_loop(run_daemon(settings))
    except MailsyncError as exc:
        _fail(exc)


@daemon_app.command("migrate")
def daemon_migrate(config: ConfigOpt = None) -> None:
    """Apply pending database migrations (never done implicitly at start-up)."""
    from daemon.store.db import migrate

    try:
        settings = _settings(config)
        applied = migrate(settings.database_url.get_secret_value())
    except MailsyncError as exc:
        _fail(exc)
        return
    typer.echo(f"applied {len(applied)} migration(s): {', '.join(applied) or 'none pending'}")


@daemon_app.command("config")
def daemon_config(
    config: ConfigOpt = None, profile: ProfileOpt = None, set_: SetOpt = None
) -> None:
    """Print the effective settings (secrets masked), the resolved profile and the quotas
    the daemon enforces (the provider's, under ``policy.quota_margin``)."""
    try:
        settings = _settings(config, profile, set_)
    except MailsyncError as exc:
        _fail(exc)
        return
    data = json.loads(settings.model_dump_json())
    data["effective_profile"] = json.loads(json.dumps(settings.profile, default=vars))
    data["enforced_quotas"] = {
        provider: [
            {"name": q.name, "limit": q.limit, "period_s": q.period_s, "burst": q.burst}
            for q in limits.quotas
        ]
        for provider, limits in settings.policy.build_limits().items()
    }
    typer.echo(json.dumps(data, indent=2, default=str))


@app.command("keygen")
def keygen() -> None:
    """Print a new encryption key (for ``encryption_keys``; rotation: docs/daemon.md)."""
    from daemon.crypto import new_key

    typer.echo(new_key())


async def _with_store(settings: Any, fn: Any) -> Any:
    from daemon.store.db import create_pool
    from daemon.store.mailboxes import MailboxStore

    pool = await create_pool(settings.database_url.get_secret_value(), 1, 2)
    try:
        return await fn(MailboxStore(pool))
    finally:
        await pool.close()


@tenant_app.command("add")
def tenant_add(
    name: str,
    config: ConfigOpt = None,
    sync_interval_s: Annotated[int | None, typer.Option()] = None,
) -> None:
    """Create a tenant."""
    settings = _settings(config)
    row = asyncio.run(_with_store(settings, lambda s: s.create_tenant(name, sync_interval_s)))
    typer.echo(json.dumps(row, default=str))


@tenant_app.command("list")
def tenant_list(config: ConfigOpt = None) -> None:
    """List tenants."""
    settings = _settings(config)
    for row in asyncio.run(_with_store(settings, lambda s: s.list_tenants())):
        typer.echo(json.dumps(row, default=str))


@mailbox_app.command("add")
def mailbox_add(
    tenant_id: Annotated[int, typer.Option("--tenant-id")],
    provider: Annotated[str, typer.Option()],
    address: Annotated[str, typer.Option()],
    refresh_token: Annotated[str | None, typer.Option(envvar="MAILSYNC_REFRESH_TOKEN")] = None,
    password: Annotated[str | None, typer.Option(envvar="MAILSYNC_IMAP_PASSWORD")] = None,
    imap_host: Annotated[str | None, typer.Option()] = None,
    imap_port: Annotated[int, typer.Option()] = 993,
    imap_tls: Annotated[str, typer.Option()] = "implicit",
    config: ConfigOpt = None,
) -> None:
    """Register a mailbox (secrets via options or MAILSYNC_REFRESH_TOKEN / _IMAP_PASSWORD)."""
    from pydantic import ValidationError

    from daemon.api import MailboxIn
    from daemon.crypto import CredentialCipher
    from daemon.providers.base import Credentials

    creds = {k: v for k, v in {"refresh_token": refresh_token, "password": password}.items() if v}
    cfg: dict[str, Any] = {}
    if provider == "imap":
        cfg = {
            "host": imap_host or "",
            "port": imap_port,
            "tls": imap_tls,
            "username": address,
            "auth": "password" if password else "xoauth2",
        }
    try:
        body = MailboxIn.model_validate(
            {"provider": provider, "address": address, "credentials": creds, "config": cfg}
        )
        settings = _settings(config)
        blob = CredentialCipher.from_secrets(settings.credential_keys()).encrypt(
            Credentials(body.credentials)
        )
    except (ValidationError, MailsyncError) as exc:
        _fail(exc)
        return
    row = asyncio.run(
        _with_store(
            settings,
            lambda s: s.create_mailbox(
                tenant_id, body.provider, body.address, blob, body.config, None, time.time()
            ),
        )
    )
    typer.echo(json.dumps(row, default=str))


@mailbox_app.command("list")
def mailbox_list(
    config: ConfigOpt = None, tenant_id: Annotated[int | None, typer.Option("--tenant-id")] = None
) -> None:
    """List mailboxes with their sync state."""
    settings = _settings(config)
    for row in asyncio.run(_with_store(settings, lambda s: s.list_mailboxes(tenant_id, 1000))):
        typer.echo(json.dumps(row, default=str))


def _keys_cipher(settings: Any) -> Any:
    from daemon.crypto import CredentialCipher

    return CredentialCipher.from_secrets(settings.credential_keys())


@keys_app.command("check")
def keys_check(config: ConfigOpt = None) -> None:
    """Count the stored credentials each configured key decrypts (reads only); exits 1 if
    some decrypt with none of them."""
    from daemon.keys import census

    try:
        settings = _settings(config)
        cipher = _keys_cipher(settings)
        found = asyncio.run(_with_store(settings, lambda s: census(s.pool, cipher)))
    except MailsyncError as exc:
        _fail(exc)
        return
    for i, n in enumerate(found.per_key):
        role = "encrypts and decrypts" if i == 0 else "decrypts only"
        typer.echo(f"encryption_keys[{i}] ({role}): {n} credential(s)")
    bad = found.undecryptable
    typer.echo(f"undecryptable: {len(bad)}" + (f" (mailbox ids {_ids(bad)})" if bad else ""))
    if sum(found.per_key[1:]):
        typer.echo("credentials under older keys: `mailsync keys rotate` re-encrypts them")
    if bad:
        raise typer.Exit(1)


@keys_app.command("rotate")
def keys_rotate(
    config: ConfigOpt = None,
    batch_size: Annotated[
        int, typer.Option(min=1, max=10_000, help="Rows re-encrypted per transaction.")
    ] = 500,
) -> None:
    """Re-encrypt every stored credential with the first of encryption_keys, in batches,
    while daemons run (idempotent: run it again after an interruption). Exits 1 if some
    credentials decrypt with no configured key or stayed locked."""
    from daemon.keys import Rotation, rotate, throttle

    def show(r: Rotation) -> None:
        typer.echo(
            f"{r.scanned}/{r.total} scanned, {r.rotated} re-encrypted, {r.current} current, "
            f"{len(r.undecryptable)} undecryptable",
            err=True,
        )

    try:
        settings = _settings(config)
        cipher = _keys_cipher(settings)
        done = asyncio.run(
            _with_store(settings, lambda s: rotate(s.pool, cipher, batch_size, throttle(1.0, show)))
        )
    except MailsyncError as exc:
        _fail(exc)
        return
    show(done)
    typer.echo(
        f"re-encrypted {done.rotated}, already under the first key {done.current}, "
        f"undecryptable {len(done.undecryptable)}, still locked {len(done.busy)}"
    )
    if done.undecryptable:
        typer.echo(
            f"not decryptable with any configured key: mailbox ids {_ids(done.undecryptable)} "
            "(add the key they were encrypted with, or re-enter their credentials)",
            err=True,
        )
    if done.busy:
        typer.echo(f"locked throughout: mailbox ids {_ids(done.busy)}; run again", err=True)
    if not done.complete:
        raise typer.Exit(1)
    typer.echo("every stored credential is under the first key: older keys may be removed")


def _ids(ids: list[int], shown: int = 20) -> str:
    more = f" and {len(ids) - shown} more" if len(ids) > shown else ""
    return ", ".join(str(i) for i in ids[:shown]) + more
