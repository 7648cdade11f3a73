"""Real processes for the multi-process tests: daemons, the mock, and private Redis and
PostgreSQL servers that a test may restart without disturbing anything else."""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from tests.daemon.harness import TEST_KEY, free_port

ROOT = Path(__file__).resolve().parents[2]


def _wait(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (OSError, httpx.HTTPError, subprocess.SubprocessError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"timed out waiting for {what}")


class MockProcess:
    """The mock providers in a process of their own."""

    def __init__(self, seed: int = 1) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "loadtest.mock_providers.cli",
                "run",
                "--port",
                str(self.port),
                "--seed",
                str(seed),
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait(lambda: httpx.get(f"{self.url}/_mock/stats").status_code == 200, 30, "the mock")

    def stop(self) -> None:
        """Terminate."""
        self.proc.terminate()
        self.proc.wait(10)


class PrivateRedis:
    """A throwaway redis-server without persistence, like production's."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.dir = tempfile.mkdtemp(prefix="mailsync-redis-")
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        """Start (again) on the same port."""
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self.dir,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait(
            lambda: (
                subprocess.run(
                    ["redis-cli", "-p", str(self.port), "ping"], capture_output=True, text=True
                ).stdout.strip()
                == "PONG"
            ),
            20,
            "redis-server",
        )

    def stop(self) -> None:
        """Stop; every key is gone."""
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None

    def cleanup(self) -> None:
        """Stop and remove the data folder."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class PrivatePostgres:
    """A throwaway PostgreSQL cluster, run as the ``postgres`` user."""

    def __init__(self) -> None:
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
        if not bins:
            raise RuntimeError("PostgreSQL server binaries not found under /usr/lib/postgresql")
        self.bin = bins[-1]
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="mailsync-pg-")
        os.chmod(self.dir, 0o777)
        self.data = os.path.join(self.dir, "data")
        self._as_postgres(
            [f"{self.bin}/initdb", "-D", self.data, "-A", "trust", "-U", "postgres", "--no-sync"]
        )
        self.dsn = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self.start()

    def _as_postgres(self, cmd: list[str]) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run(prefix + cmd, check=True, capture_output=True)

    def _ctl(self, *args: str) -> None:
        self._as_postgres(
            [
                f"{self.bin}/pg_ctl",
                "-D",
                self.data,
                "-w",
                "-t",
                "30",
                "-l",
                os.path.join(self.dir, "log"),
                *args,
            ]
        )

    def start(self) -> None:
        """Start the server."""
        self._ctl(
            "-o",
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c max_connections=200",
            "start",
        )

    def restart(self) -> None:
        """Fast restart: every connection is cut."""
        self._ctl(
            "-m",
            "fast",
            "-o",
            f"-p {self.port} -k {self.dir} "
            "-c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
            "restart",
        )

    def stop(self) -> None:
        """Stop immediately and remove the cluster."""
        try:
            self._ctl("-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


def daemon_env(
    database_url: str, redis_url: str, prefix: str, mock_url: str, name: str, **extra: str
) -> dict[str, str]:
    """Environment of a daemon subprocess pointed at the mock."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILSYNC_")}
    env.update(
        {
            "MAILSYNC_DATABASE_URL": database_url,
            "MAILSYNC_REDIS_URL": redis_url,
            "MAILSYNC_REDIS_PREFIX": prefix,
            "MAILSYNC_ENCRYPTION_KEY": TEST_KEY,
            "MAILSYNC_API_ENABLED": "false",
            "MAILSYNC_PROCESS_NAME": name,
            "MAILSYNC_LOG_LEVEL": "warning",
            "MAILSYNC_GMAIL__BASE_URL": mock_url,
            "MAILSYNC_GMAIL__TOKEN_URL": f"{mock_url}/token",
            "MAILSYNC_GMAIL__CLIENT_ID": "mock-gmail-client",
            "MAILSYNC_GMAIL__CLIENT_SECRET": "mock-gmail-secret",
            "MAILSYNC_GRAPH__BASE_URL": f"{mock_url}/v1.0",
            "MAILSYNC_GRAPH__TOKEN_URL": f"{mock_url}/common/oauth2/v2.0/token",
            "MAILSYNC_GRAPH__CLIENT_ID": "mock-graph-client",
            "MAILSYNC_GRAPH__CLIENT_SECRET": "mock-graph-secret",
            "MAILSYNC_POLICY__SCHEDULER_INTERVAL_S": "0.5",
            "MAILSYNC_POLICY__QUOTA_SCALE": "10",
        }
    )
    env.update(extra)
    return env


class DaemonProcess:
    """``mailsync daemon run`` in a subprocess."""

    def __init__(self, env: dict[str, str]) -> None:
        # The log outlives this method: cleanup() closes and removes it.
        self.log = tempfile.NamedTemporaryFile(  # noqa: SIM115
            prefix="mailsync-daemon-", suffix=".log", delete=False
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mailsync", "daemon", "run"],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=self.log,
        )

    def kill9(self) -> None:
        """SIGKILL: no shutdown code runs."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM and wait for the graceful shutdown; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return int(self.proc.returncode)

    def output(self) -> str:
        """Everything the process logged."""
        return Path(self.log.name).read_text(errors="replace")

    def cleanup(self) -> None:
        """Stop and delete the log."""
        self.stop()
        self.log.close()
        os.unlink(self.log.name)
