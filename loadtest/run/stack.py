"""Everything a run starts, in order, and stops again: its database and Redis prefix, the
mock providers, Dovecot behind the delay proxy, N daemon processes; registration of every
tenant and mailbox; the warm-up (a first full sync of every mailbox)."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
from tqdm import tqdm

from daemon.crypto import new_key
from loadtest.dovecot.messages import generate_mailbox
from loadtest.dovecot.server import DovecotServer, scratch_dir
from loadtest.run import services, settings
from loadtest.run.plan import LoadPlan, MailboxPlan
from loadtest.run.roster import ImapEndpoint, Roster, mock_mailboxes_body, tenants_body
from loadtest.run.services import Child, ServiceError, free_port, python, wait_for

# Arrival dates of provisioned IMAP mail: one year up to a fixed instant (repeatable data).
_END_OF_DATA = 1_790_000_000.0


@dataclass(frozen=True)
class StackOptions:
    """Where the run's services live and how it is torn down."""

    admin_dsn: str = "postgresql://postgres@127.0.0.1:5432/postgres"
    redis_url: str = "redis://127.0.0.1:6379/0"
    keep: bool = False
    warmup_quota_scale: float = 100.0
    warmup_timeout_s: float = 3600.0


class Stack:
    """The services of one run."""

    def __init__(
        self, plan: LoadPlan, options: StackOptions, out: Path, log: Callable[[str], None]
    ):
        self.plan = plan
        self.opts = options
        self.out = out
        self.logs = out / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.say = log
        self.id = services.run_id()
        self.db_name = f"mailsync_loadtest_{self.id}"
        self.prefix = f"mailsync-loadtest-{self.id}"
        self.database_url = ""
        self.key = new_key()
        self.token = f"lt-{random.Random(plan.seed).getrandbits(96):024x}"
        self.mock: Child | None = None
        self.mock_url = ""
        self.dovecot: DovecotServer | None = None
        self.imap_dir: Path | None = None
        self.proxy: Child | None = None
        self.proxy_port = 0
        self.daemons: list[Child] = []
        self.api_ports: list[int] = []
        self.roster = Roster()
        self._db_created = False

    # --- infrastructure ------------------------------------------------------------------

    def start_infrastructure(self) -> None:
        """PostgreSQL and Redis up, the run's database created and migrated."""
        services.ensure_postgres(self.opts.admin_dsn)
        services.ensure_redis(self.opts.redis_url)
        self.database_url = services.create_database(self.opts.admin_dsn, self.db_name)
        self._db_created = True

    def db(self) -> psycopg.Connection[Any]:
        """A new connection to the run's database (autocommit)."""
        return psycopg.connect(self.database_url, autocommit=True)

    def start_mock(self) -> None:
        """The mock providers, configured for the warm-up."""
        port = free_port()
        self.mock_url = f"http://127.0.0.1:{port}"
        self.mock = Child(
            "mock providers",
            python(
                "-m",
                "loadtest.mock_providers.cli",
                "run",
                "--port",
                str(port),
                "--seed",
                str(self.plan.seed),
                "--log-level",
                "warning",
            ),
            self.logs / "mock.log",
        )
        wait_for(
            lambda: httpx.get(f"{self.mock_url}/_mock/stats").status_code == 200,
            30,
            "the mock providers",
            self.mock,
        )
        self.mock_config(settings.mock_config(self.plan.scenario, self.plan.seed))
        self.mock_config(settings.warmup_mock_config(self.opts.warmup_quota_scale))

    def mock_config(self, patch: dict[str, Any]) -> None:
        """PUT a config patch to the mock."""
        r = httpx.put(f"{self.mock_url}/_mock/config", json=patch, timeout=30)
        if r.status_code != 200:
            raise ServiceError(f"mock config refused: {r.text[:300]}")

    def imap_mailboxes(self) -> list[MailboxPlan]:
        """The plan's IMAP mailboxes."""
        return [m for m in self.plan.mailboxes if m.provider == "imap"]

    def start_imap(self) -> None:
        """Dovecot with every IMAP user and its mail, behind the delay proxy (TLS)."""
        users = self.imap_mailboxes()
        if not users:
            return
        s = self.plan.scenario
        self.imap_dir = scratch_dir(prefix="mailsync-loadtest-imap-")
        conns = len(users) * (s.daemon.processes + 1)
        server = DovecotServer(
            self.imap_dir,
            max_userip_connections=s.daemon.imap.max_connections_per_account * s.daemon.processes
            + 5,
            process_limit=max(1024, conns + 64),
            client_limit=max(1000, conns + 64),
            auth_verbose=False,
            tls=True,
        )
        server.prepare()
        folders = settings.imap_folders(s)
        made = server.add_users((m.username, m.password) for m in users)
        for user, m in tqdm(
            list(zip(made, users, strict=True)), desc="IMAP mailboxes", unit="user", leave=False
        ):
            rng = random.Random(f"{self.plan.seed}:{m.index}")
            per = -(-m.size // len(folders))
            left = m.size
            for folder in folders:
                n = min(per, left)
                left -= n
                server.write_messages(
                    user,
                    folder,
                    generate_mailbox(rng, n, start=_END_OF_DATA - 365 * 86400, end=_END_OF_DATA),
                )
        server.start()
        self.dovecot = server
        self.proxy_port = free_port()
        self.proxy = Child(
            "IMAP delay proxy",
            python(
                "-m",
                "loadtest.dovecot.cli",
                "delay-proxy",
                "--target",
                f"127.0.0.1:{server.port}",
                "--listen-port",
                str(self.proxy_port),
                "--up",
                "0ms",
                "--down",
                settings.proxy_delay(s),
                "--seed",
                str(self.plan.seed),
            ),
            self.logs / "delay-proxy.log",
        )
        wait_for(
            lambda: services.port_open(self.proxy_port), 20, "the IMAP delay proxy", self.proxy
        )

    # --- daemons ---------------------------------------------------------------------------

    def _daemon_env(self, i: int, policy: dict[str, str]) -> dict[str, str]:
        env = settings.daemon_env(
            os.environ,
            database_url=self.database_url,
            redis_url=self.opts.redis_url,
            prefix=self.prefix,
            key=self.key,
            token=self.token,
            mock_url=self.mock_url,
            api_port=self.api_ports[i],
            name=f"daemon-{i}",
            ca_file=str(self.dovecot.cert_path) if self.dovecot is not None else None,
        )
        env.update(policy)
        return env

    def start_daemons(self, policy: dict[str, str], phase: str) -> None:
        """N daemon processes with the given policy variables, each with its API."""
        n = self.plan.scenario.daemon.processes
        self.api_ports = [free_port() for _ in range(n)]
        self.daemons = [
            Child(
                f"daemon {i}",
                python("-m", "mailsync", "daemon", "run"),
                self.logs / f"daemon-{i}-{phase}.log",
                self._daemon_env(i, policy),
            )
            for i in range(n)
        ]
        for i, d in enumerate(self.daemons):
            url = f"http://127.0.0.1:{self.api_ports[i]}/healthz"
            wait_for(lambda url=url: httpx.get(url).status_code == 200, 60, d.name, d)  # type: ignore[misc]

    def restart_daemon(self, i: int) -> None:
        """Start daemon ``i`` again after it was killed (as a supervisor would)."""
        d = self.daemons[i]
        d.start()
        url = f"http://127.0.0.1:{self.api_ports[i]}/healthz"
        wait_for(lambda: httpx.get(url).status_code == 200, 60, d.name, d)

    def stop_daemons(self) -> list[int | None]:
        """SIGTERM every daemon and wait for its graceful shutdown."""
        codes = [d.stop(60) for d in self.daemons]
        return codes

    def api(self, i: int = 0) -> httpx.Client:
        """A client of daemon ``i``'s API."""
        return httpx.Client(
            base_url=f"http://127.0.0.1:{self.api_ports[i]}",
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=60,
        )

    # --- registration and warm-up ------------------------------------------------------------

    def register(self, provider: str | None = None) -> None:
        """Create the mock's mailboxes and register the tenants (of one provider, or all)
        and their mailboxes with the daemon."""
        creds: dict[str, str] = {}
        chosen = {t.index for t in self.plan.tenants if provider is None or t.provider == provider}
        http_boxes = [m for m in self.plan.mailboxes if m.provider != "imap" and m.tenant in chosen]
        for i in range(0, len(http_boxes), 5000):
            body = mock_mailboxes_body(http_boxes[i : i + 5000])
            r = httpx.post(f"{self.mock_url}/_mock/mailboxes/bulk", json=body, timeout=300)
            if r.status_code != 201:
                raise ServiceError(f"creating mock mailboxes failed: {r.text[:300]}")
            creds.update({c["address"]: c["refresh_token"] for c in r.json()})
        by_index = {m.index: m for m in self.plan.mailboxes}
        tenants = [t for t in self.plan.tenants if t.index in chosen]
        imap = ImapEndpoint(self.proxy_port, settings.imap_folders(self.plan.scenario))
        batch = 200
        with (
            self.api() as api,
            tqdm(total=len(tenants), desc="registering tenants", unit="tenant", leave=False) as bar,
        ):
            for i in range(0, len(tenants), batch):
                chunk = tenants[i : i + batch]
                r = api.post("/tenants/bulk", json=tenants_body(chunk, by_index, creds, imap))
                if r.status_code != 201:
                    raise ServiceError(f"registering tenants failed: {r.text[:300]}")
                self.roster.record(chunk, r.json(), by_index)
                bar.update(len(chunk))

    def warm_up(self) -> float:
        """Wait until every registered mailbox has synced once; returns the seconds it took."""
        n = len(self.roster.mailbox_ids)
        start = time.monotonic()
        with (
            self.db() as db,
            tqdm(total=n, desc="warm-up: first full syncs", unit="mailbox", leave=False) as bar,
        ):
            done = 0
            while done < n:
                self.check_alive()
                row = db.execute(
                    "SELECT count(*) FILTER (WHERE last_success_at IS NOT NULL),"
                    " count(*) FILTER (WHERE status <> 'active') FROM mailboxes"
                ).fetchone()
                assert row is not None
                synced, parked = int(row[0]), int(row[1])
                if parked:
                    reasons = db.execute(
                        "SELECT status, status_reason FROM mailboxes WHERE status <> 'active'"
                        " LIMIT 3"
                    ).fetchall()
                    raise ServiceError(f"{parked} mailboxes failed their first sync: {reasons}")
                bar.update(synced - done)
                done = synced
                if time.monotonic() - start > self.opts.warmup_timeout_s:
                    raise ServiceError(f"warm-up: only {done:,} of {n:,} mailboxes synced")
                time.sleep(0.5)
        return time.monotonic() - start

    def set_tenants(self, action: str) -> None:
        """Pause or resume every tenant."""

        def one(tid: int) -> None:
            with self.api() as api:
                r = api.post(f"/tenants/{tid}/{action}")
                if r.status_code != 200:
                    raise ServiceError(f"{action} tenant {tid}: {r.text[:200]}")

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(one, self.roster.tenant_ids.values()))

    def check_alive(self) -> None:
        """``ServiceError`` naming the first child that died unexpectedly."""
        for child in [*self.daemons, self.mock, self.proxy]:
            if child is not None and (why := child.died()):
                raise ServiceError(why)

    # --- teardown ----------------------------------------------------------------------------

    def children(self) -> Iterator[Child]:
        """Every child process started so far."""
        yield from self.daemons
        for c in (self.proxy, self.mock):
            if c is not None:
                yield c

    def close(self) -> None:
        """Stop everything (daemons first), drop the database and keys unless kept."""
        errors: list[str] = []
        for child in self.children():
            try:
                child.stop(60)
            except Exception as e:
                errors.append(f"{child.name}: {e}")
        if self.dovecot is not None:
            with contextlib.suppress(Exception):
                self.dovecot.stop()
        if self.imap_dir is not None and not self.opts.keep:
            shutil.rmtree(self.imap_dir, ignore_errors=True)
        if not self.opts.keep:
            if self._db_created:
                try:
                    services.drop_database(self.opts.admin_dsn, self.db_name)
                except psycopg.Error as e:
                    errors.append(f"dropping {self.db_name}: {e}")
            with contextlib.suppress(Exception):
                services.drop_redis_prefix(self.opts.redis_url, self.prefix)
        if errors:
            self.say("teardown problems: " + "; ".join(errors))
