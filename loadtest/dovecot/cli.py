"""``mailsync imap ...``: provision and run Dovecot, and put latency in front of it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Annotated

import typer

from loadtest.dovecot.delay_proxy import Delay, DelayProxy, run_proxy
from loadtest.dovecot.provision import ProvisionSpec, open_provisioned, provision
from loadtest.dovecot.server import DovecotError, DovecotServer

app = typer.Typer(help="Dovecot for IMAP tests and load tests.", no_args_is_help=True)


def _fail(msg: str) -> None:
    typer.echo(f"error: {msg}", err=True)
    raise typer.Exit(2)


def _serve_foreground(server: DovecotServer) -> None:
    server.start()
    typer.echo(f"dovecot listening on {server.host}:{server.port} (Ctrl-C stops)")
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    try:
        done.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


@app.command("provision")
def provision_command(
    users: Annotated[int, typer.Option(min=1, help="Number of users")],
    messages_median: Annotated[int, typer.Option(min=1, help="Median messages per user")],
    dir: Annotated[Path, typer.Option(help="New directory for config, users and mail")],
    seed: Annotated[int, typer.Option()] = 0,
    messages_sigma: Annotated[float, typer.Option(min=0.0, help="Lognormal sigma")] = 1.0,
    max_messages: Annotated[int, typer.Option(min=1)] = 20_000,
    port: Annotated[int, typer.Option(min=1024, max=65535)] = 10143,
    max_userip_connections: Annotated[int, typer.Option(min=1)] = 100,
    serve: Annotated[
        bool, typer.Option(help="Start Dovecot afterwards, in the foreground")
    ] = False,
) -> None:
    """Create N users with generated mailboxes (writes users.csv into the directory)."""
    spec = ProvisionSpec(
        users, messages_median, seed, messages_sigma, max_messages, port, max_userip_connections
    )
    base = dir.resolve()
    if os.geteuid() == 0 and base.exists() is False:
        base.mkdir(parents=True)
        base.chmod(0o755)
    try:
        server, made = provision(base, spec, progress=sys.stderr.isatty())
    except (DovecotError, FileExistsError, ValueError) as e:
        _fail(str(e))
        return
    total = sum(u.messages for u in made)
    typer.echo(f"provisioned {len(made)} users, {total} messages in {base}")
    if serve:
        _serve_foreground(server)


@app.command("serve")
def serve_command(
    dir: Annotated[Path, typer.Option(help="A provisioned directory")],
) -> None:
    """Run Dovecot on a provisioned directory in the foreground."""
    try:
        server = open_provisioned(dir.resolve())
        _serve_foreground(server)
    except (DovecotError, FileNotFoundError) as e:
        _fail(str(e))


@app.command("delay-proxy")
def delay_proxy_command(
    target: Annotated[str, typer.Option(help="host:port of the IMAP server")] = "127.0.0.1:10143",
    listen_port: Annotated[int, typer.Option(min=0, max=65535)] = 10144,
    delay: Annotated[str, typer.Option(help="Each way: 50ms, uniform:10ms:80ms, ...")] = "25ms",
    up: Annotated[
        str | None, typer.Option(help="Client-to-server delay (default: --delay)")
    ] = None,
    down: Annotated[str | None, typer.Option(help="Server-to-client delay")] = None,
    seed: Annotated[int, typer.Option()] = 0,
) -> None:
    """Forward 127.0.0.1:LISTEN_PORT to TARGET adding latency to every chunk."""
    host, _, port_s = target.rpartition(":")
    try:
        proxy = DelayProxy(
            host or "127.0.0.1",
            int(port_s),
            up=Delay.parse(up or delay),
            down=Delay.parse(down or delay),
            seed=seed,
            listen_port=listen_port,
        )
    except ValueError as e:
        _fail(str(e))
        return
    typer.echo(f"delaying 127.0.0.1:{listen_port} -> {target} (Ctrl-C stops)")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_proxy(proxy))


if __name__ == "__main__":
    app()
