"""The ``mailsync`` command composed in ``mailsync.cli``: every part's commands are mounted,
and a configuration error exits with status 2."""

from __future__ import annotations

import subprocess
import sys

import typer
from typer.testing import CliRunner

from mailsync.cli import app

runner = CliRunner()


def test_every_part_is_mounted() -> None:
    group = typer.main.get_command(app)
    assert isinstance(group, typer.core.TyperGroup)
    assert sorted(group.commands) == [
        "daemon",
        "imap",
        "keygen",
        "keys",
        "loadtest",
        "mailbox",
        "mock-providers",
        "report",
        "simulate",
        "sweep",
        "tenant",
    ]
    for args, word in (
        (["report", "--help"], "reports/<name>/index.html"),
        (["loadtest", "--help"], "run"),
        (["imap", "--help"], "provision"),
        (["mock-providers", "--help"], "run"),
        (["daemon", "--help"], "migrate"),
    ):
        out = runner.invoke(app, args)
        assert out.exit_code == 0, (args, out.output)
        assert word in out.output


def test_config_error_exits_2() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mailsync", "daemon", "config", "--set", "no-equals-sign"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "error: --set expects key=value, got 'no-equals-sign'" in done.stderr


def test_the_command_imports_no_part_of_the_simulation() -> None:
    """The daemon runs as ``mailsync daemon run``: mounting the simulator's and the load
    test's commands must not load numpy, pandas, matplotlib or SimPy into its process (they
    took it from 35 MB to 140 MB at import)."""
    code = (
        "import sys, mailsync.cli; "
        "print(' '.join(m for m in ('numpy', 'pandas', 'matplotlib', 'scipy', 'simpy', 'locust') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == []
