"""The one composition root of the ``mailsync`` command.

Each part keeps its own Typer app: the daemon's (``daemon``, ``tenant``, ``mailbox``,
``keys``, ``keygen``), the simulator's (``report``, ``simulate`` and ``sweep``, mounted at the
top level) and the load test's (``mock-providers``, ``imap``, ``loadtest``). Locust, the
``loadtest`` extra, is imported only by the Locust process itself, so the load-test commands
mount without it.
"""

from __future__ import annotations

import sys

import typer

from daemon import cli as daemon_cli
from daemon import logs
from daemon.errors import ConfigError
from loadtest.dovecot import cli as imap_cli
from loadtest.mock_providers import cli as mock_providers_cli
from loadtest.run import cli as loadtest_cli
from simulator import cli as simulator_cli

app = typer.Typer(
    help="Multi-tenant email sync daemon and capacity simulator.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
# Unnamed: the daemon's groups and commands sit at the top level.
app.add_typer(daemon_cli.app)
# One by one, without the simulator app's own callback: `mailsync report` is top level.
for _name, _command in (
    ("report", simulator_cli.report),
    ("simulate", simulator_cli.simulate),
    ("sweep", simulator_cli.sweep),
):
    app.command(_name)(_command)
app.add_typer(mock_providers_cli.app, name="mock-providers")
app.add_typer(imap_cli.app, name="imap")
app.add_typer(loadtest_cli.app, name="loadtest")


def main() -> None:
    """Console-script entry point."""
    # Human-readable by default; `daemon run` switches to the configured format.
    logs.configure("info", "console")
    try:
        app()
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
