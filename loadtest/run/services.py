"""Processes and infrastructure of a run: child processes that cannot outlive the run,
PostgreSQL and Redis checked (and started when they are local Debian services), a database
and a Redis key prefix of the run's own."""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path

import psutil

from daemon.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
_PR_SET_PDEATHSIG = 1


class ServiceError(RuntimeError):
    """A service did not start, or died during the run; the message names it and why."""


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts connections on the port."""
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    # SIGTERM when the process that started us dies (killed run): no orphans.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class Child:
    """A child process in a session of its own (Ctrl-C reaches the run, which stops its
    children in order), logging to a file, terminated if the run dies."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        log_path: Path,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.env = dict(env) if env is not None else None
        self.proc: subprocess.Popen[bytes] | None = None
        self.expected_exit = False
        self.start()

    def start(self) -> None:
        """(Re)start the process."""
        log = self.log_path.open("ab")
        try:
            self.proc = subprocess.Popen(
                self.argv,
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        finally:
            log.close()
        self.expected_exit = False

    @property
    def pid(self) -> int:
        """The current process id."""
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        """Still running."""
        return self.proc is not None and self.proc.poll() is None

    def psutil(self) -> psutil.Process | None:
        """A psutil handle, or None once the process is gone."""
        try:
            return psutil.Process(self.pid) if self.alive() else None
        except psutil.NoSuchProcess:
            return None

    def log_tail(self, lines: int = 15) -> str:
        """The last lines the process wrote."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def died(self) -> str | None:
        """Why the process is gone when nobody stopped it; None while it runs."""
        if self.proc is None or self.expected_exit:
            return None
        code = self.proc.poll()
        if code is None:
            return None
        return f"{self.name} exited with code {code}; its log ({self.log_path}) ends:\n" + (
            self.log_tail()
        )

    def kill(self) -> None:
        """SIGKILL, no shutdown code (chaos)."""
        if self.alive():
            assert self.proc is not None
            self.expected_exit = True
            self.proc.kill()
            self.proc.wait(10)

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM and wait; SIGKILL the whole session if it hangs. Returns the exit code."""
        proc = self.proc
        if proc is None:
            return None
        self.expected_exit = True
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        return proc.returncode


def python(*args: str) -> list[str]:
    """A command line running this interpreter."""
    return [sys.executable, *args]


def wait_for(
    check: Callable[[], bool], timeout: float, what: str, child: Child | None = None
) -> None:
    """Poll ``check`` until true; ``ServiceError`` naming ``what`` (and the child's log)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child is not None and (why := child.died()):
            raise ServiceError(f"{what} did not start: {why}")
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(0.1)
    tail = f"; its log ends:\n{child.log_tail()}" if child is not None else ""
    raise ServiceError(f"{what} not ready within {timeout:.0f} s{tail}")


# --- PostgreSQL and Redis ------------------------------------------------------------------


def _pg_ok(admin_dsn: str) -> bool:
    import psycopg

    try:
        with psycopg.connect(admin_dsn, connect_timeout=3) as c:
            c.execute("SELECT 1")
        return True
    except psycopg.Error:
        return False


def _redis_ok(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_timeout=3).ping())
    except (redis.RedisError, OSError):
        return False


def _local(url_host: str) -> bool:
    return url_host in ("127.0.0.1", "localhost", "::1", "")


def ensure_postgres(admin_dsn: str) -> None:
    """PostgreSQL answers; a local Debian cluster that is down is started."""
    if _pg_ok(admin_dsn):
        return
    from urllib.parse import urlsplit

    clusters = Path("/etc/postgresql")
    if (
        _local(urlsplit(admin_dsn).hostname or "")
        and clusters.is_dir()
        and shutil.which("pg_ctlcluster")
    ):
        version = sorted(p.name for p in clusters.iterdir())[0]
        subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"],
            capture_output=True,
            check=False,
        )
        for _ in range(30):
            if _pg_ok(admin_dsn):
                return
            time.sleep(1)
    raise ServiceError(f"PostgreSQL is not reachable at {_redact(admin_dsn)}")


def ensure_redis(url: str) -> None:
    """Redis answers; a local one that is down is started (no persistence, like CI's)."""
    if _redis_ok(url):
        return
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if _local(parts.hostname or "") and shutil.which("redis-server"):
        subprocess.run(
            [
                "redis-server",
                "--daemonize",
                "yes",
                "--bind",
                "127.0.0.1",
                "--port",
                str(parts.port or 6379),
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            capture_output=True,
            check=False,
        )
        for _ in range(30):
            if _redis_ok(url):
                return
            time.sleep(0.5)
    raise ServiceError(f"Redis is not reachable at {_redact(url)}")


def _redact(url: str) -> str:
    from daemon.settings import redact_url

    return redact_url(url)


def run_id() -> str:
    """A short id naming the run's database and Redis prefix."""
    return uuid.uuid4().hex[:8]


def create_database(admin_dsn: str, name: str) -> str:
    """Create and migrate the run's database; returns its DSN."""
    import psycopg

    from daemon.store.db import migrate

    if not name.replace("_", "").isalnum():
        raise ConfigError(f"database name {name!r}: letters, digits and _ only")
    with psycopg.connect(admin_dsn, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    dsn = admin_dsn.rsplit("/", 1)[0] + "/" + name
    migrate(dsn)
    return dsn


def drop_database(admin_dsn: str, name: str) -> None:
    """Drop the run's database (connections are cut)."""
    import psycopg

    with psycopg.connect(admin_dsn, autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def drop_redis_prefix(url: str, prefix: str) -> int:
    """Delete every key under the run's prefix; returns how many."""
    import redis

    r = redis.Redis.from_url(url)
    keys = list(r.scan_iter(match=f"{prefix}*", count=1000))
    for i in range(0, len(keys), 1000):
        r.delete(*keys[i : i + 1000])
    return len(keys)


def postgres_processes() -> list[psutil.Process]:
    """The PostgreSQL server's processes on this machine (for CPU sampling)."""
    return [
        p for p in psutil.process_iter(["name"]) if (p.info["name"] or "").startswith("postgres")
    ]


def redis_processes() -> list[psutil.Process]:
    """The Redis server's processes on this machine."""
    return [p for p in psutil.process_iter(["name"]) if (p.info["name"] or "") == "redis-server"]
