"""Command line: ``mailsync mock-providers run`` (mounted by ``mailsync.cli``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from daemon.errors import ConfigError
from loadtest.mock_providers.config import (
    MockConfig,
    PopulateSpec,
    describe_errors,
    errors_text,
    load_config_file,
    merge_config,
)

app = typer.Typer(
    help="Mock Gmail API, Microsoft Graph mail and their OAuth endpoints for tests and load tests.",
    no_args_is_help=True,
)


def parse_populate(text: str) -> dict[str, int]:
    """``gmail=100,graph=50`` as a mapping; raises ``ValueError`` naming the bad item."""
    out: dict[str, int] = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = item.partition("=")
        if not sep or name.strip() not in ("gmail", "graph"):
            raise ValueError(f"{item!r}: expected gmail=N or graph=N")
        try:
            count = int(value)
        except ValueError:
            raise ValueError(f"{item!r}: {value!r} is not a whole number") from None
        if count < 0:
            raise ValueError(f"{item!r}: the count must be >= 0")
        out[name.strip()] = count
    return out


@app.command()
def run(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8025,
    seed: Annotated[int | None, typer.Option(help="Seed of every random choice.")] = None,
    config: Annotated[
        Path | None, typer.Option(help="Settings file (.toml or .yaml).", exists=True)
    ] = None,
    populate: Annotated[
        str | None, typer.Option(help="Mailboxes to create at start, e.g. gmail=100,graph=100.")
    ] = None,
    latency_ms: Annotated[
        float | None, typer.Option(help="Constant latency added to every provider call.")
    ] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Serve the mock providers until interrupted."""
    from loadtest.mock_providers.server import run as serve

    try:
        cfg, spec = load_config_file(config) if config else (MockConfig(), None)
        patch: dict[str, object] = {}
        if seed is not None:
            patch["seed"] = seed
        if latency_ms is not None:
            patch["latency"] = {"dist": "constant", "mean_ms": latency_ms}
        cfg = merge_config(cfg, patch)
    except ConfigError as exc:
        raise typer.BadParameter(str(exc), param_hint="--config/--seed/--latency-ms") from exc
    if populate:
        try:
            counts = parse_populate(populate)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--populate") from exc
        base = spec.model_dump() if spec else {"seed": cfg.seed}
        try:
            spec = PopulateSpec.model_validate({**base, **counts})
        except ValidationError as exc:
            text = errors_text(describe_errors(exc, "populate"))
            raise typer.BadParameter(text, param_hint="--populate") from exc
    serve(host=host, port=port, config=cfg, populate=spec, log_level=log_level)


@app.command()
def register(
    gmail: Annotated[int, typer.Option(min=0, help="Gmail mailboxes to create.")] = 0,
    graph: Annotated[int, typer.Option(min=0, help="Graph mailboxes to create.")] = 0,
    mock: Annotated[str, typer.Option(help="The running mock.")] = "http://127.0.0.1:8025",
    api: Annotated[str, typer.Option(help="The running daemon's API.")] = "http://127.0.0.1:8080",
    token: Annotated[
        str, typer.Option(envvar="MAILSYNC_API_TOKEN", help="The daemon's API token.")
    ] = "",
    tenant: Annotated[str, typer.Option(help="Tenant name (created if absent).")] = "mock",
    seed: Annotated[int, typer.Option(help="Seed of the generated mailboxes.")] = 1,
    sync_interval_s: Annotated[int | None, typer.Option(min=1)] = None,
) -> None:
    """Create mailboxes in a running mock and register them with a running daemon."""
    from loadtest.mock_providers.register import register_mock_mailboxes

    try:
        done = register_mock_mailboxes(
            mock, api, token, tenant, gmail, graph, seed, sync_interval_s=sync_interval_s
        )
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(
        f"tenant {done.tenant_id}: registered {done.created}, already present {done.skipped}"
    )


@app.command()
def check_config(path: Path) -> None:
    """Validate a settings file and print the effective config."""
    import json

    try:
        cfg, spec = load_config_file(path)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    out = {**cfg.model_dump(), "populate": spec.model_dump() if spec else None}
    typer.echo(json.dumps(out, indent=2))


if __name__ == "__main__":
    app()
