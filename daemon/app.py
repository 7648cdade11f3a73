"""The daemon process: builds every component from the settings and runs them until SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import asyncpg
import redis.asyncio as aioredis
import uvicorn
import uvloop

from daemon.api import ApiDeps, create_app
from daemon.crypto import CredentialCipher
from daemon.errors import ConfigError
from daemon.keys import check_stored_credentials
from daemon.logs import get_logger
from daemon.metrics import Metrics
from daemon.oauth import OAuthClient, TokenCache
from daemon.policy import Profile, fetch_shape_for
from daemon.providers.base import Provider, RequestObserver, ignore_request
from daemon.providers.gmail import GmailProvider
from daemon.providers.graph import GraphProvider
from daemon.providers.httpclient import HttpClient
from daemon.providers.imap import build_imap_provider
from daemon.providers.imap_hosts import HostPolicy
from daemon.queues import TierQueues, TierWorkers
from daemon.ratelimit import QuotaLimiters
from daemon.scheduler import Scheduler
from daemon.settings import Settings, redact_url
from daemon.store.db import create_pool, pending_migrations
from daemon.store.mailboxes import MailboxStore
from daemon.supervise import Supervisor
from daemon.worker import SyncRunner

log = get_logger("daemon")
T = TypeVar("T")


def http_client(
    max_connections: int, timeout_s: float, verify: ssl.SSLContext | bool = True
) -> HttpClient:
    """The HTTP client one provider shares across all its mailboxes and tenants: no cookies,
    the Authorization header set per request (``providers/httpclient.py``). ``verify`` is
    httpx's (True: its CA bundle); tests pass a context trusting their own CA.
    """
    return HttpClient(
        max_connections, timeout_s, verify=verify, headers={"User-Agent": "mailsync/0.1"}
    )


def build_providers(
    settings: Settings,
    rng: random.Random,
    clock: Callable[[], float],
    observe: RequestObserver = ignore_request,
) -> tuple[dict[str, Provider], dict[str, OAuthClient], list[HttpClient]]:
    """One provider per kind, each over one shared HTTP client; and the OAuth clients.

    ``observe`` is told every provider request's round trip (the metrics histogram).
    """
    clients: list[HttpClient] = []
    providers: dict[str, Provider] = {}
    oauth: dict[str, OAuthClient] = {}
    shape = fetch_shape_for(settings.policy.build_limits())
    for name, cfg, cls in (
        ("gmail", settings.gmail, GmailProvider),
        ("graph", settings.graph, GraphProvider),
    ):
        http = http_client(cfg.max_connections, cfg.timeout_s)
        clients.append(http)
        providers[name] = cls(
            cfg, http, random.Random(rng.random()), clock, shape=shape, observe=observe
        )
        oauth[name] = OAuthClient(name, http, cfg, clock, observe)
    providers["imap"] = build_imap_provider(settings.imap, observe)
    return providers, oauth, clients


def bind_api_socket(host: str, port: int) -> socket.socket:
    """The API's listening socket, bound before anything starts, so a busy port is a
    one-line refusal instead of uvicorn's ``SystemExit`` after the workers have started."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"api_host/api_port: cannot listen on {host}:{port}: {exc.strerror or exc}"
        ) from exc
    return sock


class _EmbeddedServer(uvicorn.Server):
    """uvicorn inside the daemon's loop; the daemon, not uvicorn, owns SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class Daemon:
    """A running daemon process's components."""

    settings: Settings
    clock: Callable[[], float] = time.time
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    pool: asyncpg.Pool | None = None
    redis: aioredis.Redis | None = None
    queues: TierQueues | None = None
    workers: TierWorkers | None = None
    scheduler: Scheduler | None = None
    runner: SyncRunner | None = None
    limiters: QuotaLimiters | None = None
    metrics: Metrics = field(default_factory=Metrics)
    api_server: uvicorn.Server | None = None
    _clients: list[HttpClient] = field(default_factory=list)
    _providers: dict[str, Provider] = field(default_factory=dict)
    _tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    _api_socket: socket.socket | None = None

    def __post_init__(self) -> None:
        self.supervisor = Supervisor(
            self.stop, self.clock, unhealthy_after_s=self.settings.task_unhealthy_after_s
        )

    async def start(self) -> None:
        """Connect, build and start scheduler, workers and API.

        Everything that can be refused (settings, the API's port, migrations) is checked
        before the first job is taken, so a refusal leaves nothing half started.
        """
        profile = self.settings.profile
        cipher = await self._check_refusals()
        store = await self._build(profile, cipher)
        self._start_scheduler_loops(profile)
        if self._api_socket is not None:
            await self._serve_api(self._api_socket, store, cipher)
        self._log_started(profile)

    async def _check_refusals(self) -> CredentialCipher:
        """The API token and port, pending migrations and the encryption keys: the checks that
        refuse to start, run before anything is connected. Returns the credentials' cipher."""
        s = self.settings
        dsn = s.database_url.get_secret_value()
        if s.api_enabled and s.api_token is None:
            raise ConfigError("api_token is required to serve the API (or set api_enabled = false)")
        self._api_socket = bind_api_socket(s.api_host, s.api_port) if s.api_enabled else None
        pending = await asyncio.to_thread(pending_migrations, dsn)
        if pending:
            raise ConfigError(
                f"database has {len(pending)} pending migrations: "
                "run `mailsync daemon migrate` first"
            )
        cipher = CredentialCipher.from_secrets(s.credential_keys())
        # Before anything is started: with a wrong key every sync would fail (docs/daemon.md,
        # "Encryption keys and rotation").
        await check_stored_credentials(dsn, cipher, random.Random(s.seed))
        return cipher

    async def _build(self, profile: Profile, cipher: CredentialCipher) -> MailboxStore:
        """Connect to PostgreSQL and Redis and build queues, limiters, providers, the sync
        runner, the scheduler and (when enabled) the workers. Returns the mailbox store."""
        s = self.settings
        dsn = s.database_url.get_secret_value()
        redis_url = s.redis_url.get_secret_value()
        rng = random.Random(s.seed)
        self.pool = await create_pool(dsn, s.db_pool_min, s.pool_max())
        self.redis = aioredis.Redis.from_url(redis_url)
        await cast(Awaitable[bool], self.redis.ping())
        store = MailboxStore(self.pool)
        self.queues = TierQueues(
            redis_url,
            s.redis_prefix,
            s.keep_completed_jobs,
            s.keep_failed_jobs,
            s.infra_attempts,
            s.infra_backoff_s,
        )
        self.limiters = QuotaLimiters(redis_url, s.redis_prefix, s.policy.build_limits())
        self._providers, oauth, self._clients = build_providers(
            s, rng, self.clock, self.metrics.observe_request
        )
        self.runner = SyncRunner(
            store,
            self._providers,
            self.limiters,
            oauth,
            TokenCache(),
            cipher,
            profile,
            self.clock,
            rng,
            s.process_name,
            self.metrics,
            self.queues.enqueue,
        )
        self.scheduler = Scheduler(
            store,
            self.queues,
            self.redis,
            profile,
            self.clock,
            self.metrics,
            s.requeue_after_s,
            s.max_run_s,
            s.sync_runs_retention_days,
        )
        if s.workers_enabled:
            self.workers = TierWorkers(
                redis_url,
                s.redis_prefix,
                profile,
                self.runner.process,
                s.lock_duration_s,
                s.stalled_interval_s,
                s.process_name,
            )
        return store

    def _start_scheduler_loops(self, profile: Profile) -> None:
        s = self.settings
        if self.scheduler is None or not s.scheduler_enabled:
            return
        interval = profile.scheduler_interval_s
        self.supervisor.start("scheduler", self.scheduler.cycle, interval)
        self.supervisor.start("repair", self.scheduler.repair, interval)
        self.supervisor.start("trim", self.scheduler.trim, s.trim_interval_s)

    async def _serve_api(
        self, api_socket: socket.socket, store: MailboxStore, cipher: CredentialCipher
    ) -> None:
        """Serve the HTTP API on the socket bound in ``_check_refusals``; returns once it
        listens."""
        s = self.settings
        assert self.scheduler is not None and self.queues is not None
        assert self.redis is not None and self.limiters is not None
        token = s.api_token.get_secret_value() if s.api_token else ""
        app = create_app(
            ApiDeps(
                store,
                self.scheduler,
                self.queues,
                self.redis,
                cipher,
                self.metrics,
                self.limiters,
                self.clock,
                token,
                imap_hosts=HostPolicy(tuple(s.imap.allowed_networks)),
                failed_tasks=self.unhealthy,
            )
        )
        config = uvicorn.Config(
            app,
            host=s.api_host,
            port=s.api_port,
            log_level="warning",
            access_log=False,
            lifespan="off",
        )
        self.api_server = _EmbeddedServer(config)
        serving = asyncio.create_task(self.api_server.serve(sockets=[api_socket]))
        self._tasks.append(serving)
        while not self.api_server.started:
            if serving.done():
                raise ConfigError(f"API could not listen on {s.api_host}:{s.api_port}")
            await asyncio.sleep(0.01)

    def _log_started(self, profile: Profile) -> None:
        s = self.settings
        log.info(
            "daemon started",
            profile=profile.name,
            process=s.process_name,
            concurrency=[
                profile.concurrency.high,
                profile.concurrency.normal,
                profile.concurrency.low,
            ],
            batch_size=profile.batch_size,
            database=redact_url(s.database_url.get_secret_value()),
            redis=redact_url(s.redis_url.get_secret_value()),
            quota_preset=s.policy.quota_preset,
            api=f"{s.api_host}:{s.api_port}" if s.api_enabled else None,
        )

    def unhealthy(self) -> list[str]:
        """Background loops of this process that are not doing their work (for /healthz)."""
        out = self.supervisor.unhealthy()
        if self.workers is not None and not self.stop.is_set():
            out += self.workers.stopped()
        return out

    async def shutdown(self) -> None:
        """Stop claiming, let running jobs finish (or hand them back), close connections."""
        self.stop.set()
        finished = True
        await self.supervisor.join(10)
        if self.workers is not None:
            finished = await self.workers.close(self.settings.shutdown_timeout_s)
        if self.api_server is not None:
            self.api_server.should_exit = True
        elif self._api_socket is not None:
            self._api_socket.close()  # bound, but start-up was refused before serving
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, timeout=10)
        if self.queues is not None:
            await self.queues.close()
        for client in self._clients:
            await client.aclose()
        for provider in self._providers.values():
            await provider.aclose()
        if self.limiters is not None:
            await self.limiters.aclose()
        if self.redis is not None:
            await self.redis.aclose()
        if self.pool is not None:
            await self.pool.close()
        log.info("daemon stopped", all_jobs_finished=finished)


def run_loop(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` on the event loop the daemon uses: uvloop, whose callbacks and socket
    writes run in C (a third less CPU per sync than asyncio's loop, docs/daemon.md "Where
    the CPU goes")."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


async def run_daemon(settings: Settings) -> None:
    """Run until SIGTERM or SIGINT, then shut down gracefully."""
    daemon = Daemon(settings)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, daemon.stop.set)
    try:
        await daemon.start()
        await daemon.stop.wait()
    finally:
        await daemon.shutdown()
