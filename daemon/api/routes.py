"""The routes of the HTTP API and what they are built from (``ApiDeps``)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

import redis.asyncio as aioredis
from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from daemon.api.guards import BodyLimit, health, validation_failed
from daemon.api.models import (
    MAX_ID,
    BulkMailboxesIn,
    BulkTenantsIn,
    CredentialsIn,
    MailboxIn,
    TenantIn,
)
from daemon.crypto import CredentialCipher
from daemon.metrics import Metrics
from daemon.providers.base import Credentials
from daemon.providers.imap_hosts import HostPolicy, HostRefused
from daemon.queues import TierQueues
from daemon.ratelimit import QuotaLimiters
from daemon.scheduler import Scheduler
from daemon.status import snapshot, status_report
from daemon.store import tenants
from daemon.store.mailboxes import Conflict, MailboxStore, NotFound

# Module level: route signatures are resolved from module globals (postponed annotations).
_BEARER = HTTPBearer(auto_error=False)
TenantId = Annotated[int, Path(ge=1, le=MAX_ID, description="A tenant id.")]
MailboxId = Annotated[int, Path(ge=1, le=MAX_ID, description="A mailbox id.")]
# Distinct IMAP hosts of one request resolved at once.
_RESOLVING = 16


def _none_failed() -> Sequence[str]:
    return ()


@dataclass
class ApiDeps:
    """What the routes need, built by the daemon at start-up."""

    store: MailboxStore
    scheduler: Scheduler
    queues: TierQueues
    redis: aioredis.Redis
    cipher: CredentialCipher
    metrics: Metrics
    limiters: QuotaLimiters
    clock: Callable[[], float]
    token: str
    # Names of long-lived background tasks (scheduler, workers) that are not running;
    # /healthz answers 503 naming them.
    failed_tasks: Callable[[], Sequence[str]] = _none_failed
    # Where IMAP mailboxes may point (settings ``imap.allowed_networks``).
    imap_hosts: HostPolicy = field(default_factory=HostPolicy)


async def _check_imap_hosts(
    policy: HostPolicy, boxes: Sequence[tuple[tuple[str | int, ...], MailboxIn]]
) -> None:
    """422 naming ``config.host`` of every IMAP mailbox whose server the host policy refuses
    (or that cannot be resolved); ``boxes`` are (location in the body, mailbox)."""
    servers = {(m.config["host"], m.config["port"]) for _, m in boxes if m.provider == "imap"}
    if not servers:
        return
    limit = asyncio.Semaphore(_RESOLVING)

    async def verdict(host: str, port: int) -> HostRefused | None:
        async with limit:
            try:
                await policy.resolve(host, port)
            except HostRefused as exc:
                return exc
            return None

    keys = sorted(servers)
    found = await asyncio.gather(*(verdict(h, p) for h, p in keys))
    refused = {k: v for k, v in zip(keys, found, strict=True) if v is not None}
    errors = [
        {
            "type": f"imap_host_policy.{why.rule}",
            "loc": ("body", *where, "config", "host"),
            "msg": f"IMAP host policy: {why}",
        }
        for where, m in boxes
        if m.provider == "imap"
        and (why := refused.get((m.config["host"], m.config["port"]))) is not None
    ]
    if errors:
        raise RequestValidationError(errors)


def create_app(deps: ApiDeps) -> FastAPI:
    """The ASGI application."""
    if not deps.token:
        raise ValueError("api_token must be set to serve the API")
    app = FastAPI(
        title="mailsync",
        version="0.1.0",
        description="Multi-tenant email sync daemon: registration, sync control, "
        "status and metrics.",
    )
    app.add_middleware(BodyLimit)
    app.add_exception_handler(RequestValidationError, validation_failed)

    def auth(cred: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)]) -> None:
        if cred is None or not secrets.compare_digest(
            cred.credentials.encode(), deps.token.encode()
        ):
            raise HTTPException(
                401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"}
            )

    guarded = [Depends(auth)]

    @app.exception_handler(NotFound)
    async def _not_found(_: Request, exc: NotFound) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(Conflict)
    async def _conflict(_: Request, exc: Conflict) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=409)

    @app.get(
        "/healthz",
        tags=["ops"],
        responses={503: {"description": "A dependency or background task is down"}},
    )
    async def healthz() -> JSONResponse:
        """PostgreSQL, Redis and the daemon's background tasks; no token needed. 200
        ``{"status": "ok"}``, or 503 ``{"status": "unavailable", "failed": [...]}``."""
        code, body = await health(deps.store.pool, deps.redis, deps.failed_tasks)
        return JSONResponse(body, status_code=code)

    @app.post("/tenants", status_code=201, dependencies=guarded, tags=["tenants"])
    async def create_tenant(body: TenantIn) -> dict[str, Any]:
        """Create a tenant."""
        return await deps.store.create_tenant(body.name, body.sync_interval_s)

    @app.post("/tenants/bulk", status_code=201, dependencies=guarded, tags=["tenants"])
    async def create_tenants(body: BulkTenantsIn) -> list[dict[str, Any]]:
        """Create tenants with their mailboxes in one transaction (onboarding, migrations);
        a name that exists already fails the whole request with 409."""
        await _check_imap_hosts(
            deps.imap_hosts,
            [
                (("tenants", i, "mailboxes", j), m)
                for i, t in enumerate(body.tenants)
                for j, m in enumerate(t.mailboxes)
            ],
        )
        new = [
            tenants.NewTenant(
                t.name,
                t.sync_interval_s,
                [
                    tenants.NewMailbox(
                        m.provider,
                        m.address,
                        deps.cipher.encrypt(Credentials(m.credentials)),
                        m.config,
                        m.sync_interval_s,
                    )
                    for m in t.mailboxes
                ],
            )
            for t in body.tenants
        ]
        return await tenants.onboard(deps.store.pool, new, deps.clock())

    @app.get("/tenants", dependencies=guarded, tags=["tenants"])
    async def list_tenants() -> list[dict[str, Any]]:
        """All tenants with mailbox counts."""
        return await deps.store.list_tenants()

    @app.get("/tenants/{tenant_id}", dependencies=guarded, tags=["tenants"])
    async def get_tenant(tenant_id: TenantId) -> dict[str, Any]:
        """One tenant."""
        return await deps.store.get_tenant(tenant_id)

    @app.delete("/tenants/{tenant_id}", status_code=204, dependencies=guarded, tags=["tenants"])
    async def delete_tenant(tenant_id: TenantId) -> Response:
        """Delete a tenant, its mailboxes and messages."""
        await deps.store.delete_tenant(tenant_id)
        return Response(status_code=204)

    @app.post(
        "/tenants/{tenant_id}/mailboxes", status_code=201, dependencies=guarded, tags=["mailboxes"]
    )
    async def create_mailbox(tenant_id: TenantId, body: MailboxIn) -> dict[str, Any]:
        """Register a mailbox; it is due for a full sync at once. The address is stored
        lower-case; the same account twice in one tenant is a 409."""
        await _check_imap_hosts(deps.imap_hosts, [((), body)])
        blob = deps.cipher.encrypt(Credentials(body.credentials))
        return await deps.store.create_mailbox(
            tenant_id,
            body.provider,
            body.address,
            blob,
            body.config,
            body.sync_interval_s,
            deps.clock(),
        )

    @app.post(
        "/tenants/{tenant_id}/mailboxes/bulk",
        status_code=201,
        dependencies=guarded,
        tags=["mailboxes"],
    )
    async def create_mailboxes(tenant_id: TenantId, body: BulkMailboxesIn) -> dict[str, Any]:
        """Register up to 1,000 mailboxes in one transaction; addresses already registered
        under the tenant (in any case) are skipped (``skipped`` counts them)."""
        await _check_imap_hosts(
            deps.imap_hosts, [(("mailboxes", i), m) for i, m in enumerate(body.mailboxes)]
        )
        rows = [
            tenants.NewMailbox(
                m.provider,
                m.address,
                deps.cipher.encrypt(Credentials(m.credentials)),
                m.config,
                m.sync_interval_s,
            )
            for m in body.mailboxes
        ]
        created = await tenants.register_many(deps.store.pool, tenant_id, rows, deps.clock())
        return {"created": created, "skipped": len(rows) - len(created)}

    @app.post("/tenants/{tenant_id}/pause", dependencies=guarded, tags=["tenants"])
    async def pause_tenant(tenant_id: TenantId) -> dict[str, int]:
        """Stop syncing the tenant's active mailboxes (cursors and messages are kept)."""
        return {"paused": await tenants.pause(deps.store.pool, tenant_id, deps.clock())}

    @app.post("/tenants/{tenant_id}/resume", dependencies=guarded, tags=["tenants"])
    async def resume_tenant(tenant_id: TenantId) -> dict[str, int]:
        """Sync the tenant's paused mailboxes again, starting now."""
        return {"resumed": await tenants.resume(deps.store.pool, tenant_id, deps.clock())}

    @app.get("/mailboxes", dependencies=guarded, tags=["mailboxes"])
    async def list_mailboxes(
        tenant_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        after_id: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
    ) -> list[dict[str, Any]]:
        """Mailboxes by id, paged with ``after_id``."""
        return await deps.store.list_mailboxes(tenant_id, limit, after_id)

    @app.get("/mailboxes/{mailbox_id}", dependencies=guarded, tags=["mailboxes"])
    async def get_mailbox(mailbox_id: MailboxId) -> dict[str, Any]:
        """A mailbox's sync state."""
        return await deps.store.get_mailbox(mailbox_id)

    @app.get("/mailboxes/{mailbox_id}/runs", dependencies=guarded, tags=["mailboxes"])
    async def mailbox_runs(
        mailbox_id: MailboxId, limit: Annotated[int, Query(ge=1, le=500)] = 20
    ) -> list[dict[str, Any]]:
        """The mailbox's most recent sync runs."""
        await deps.store.get_mailbox(mailbox_id)
        rows = await deps.store.pool.fetch(
            "SELECT * FROM sync_runs WHERE mailbox_id = $1 ORDER BY id DESC LIMIT $2",
            mailbox_id,
            limit,
        )
        return [dict(r) for r in rows]

    @app.delete(
        "/mailboxes/{mailbox_id}", status_code=204, dependencies=guarded, tags=["mailboxes"]
    )
    async def delete_mailbox(mailbox_id: MailboxId) -> Response:
        """Delete a mailbox and its messages."""
        await deps.store.delete_mailbox(mailbox_id)
        return Response(status_code=204)

    @app.put("/mailboxes/{mailbox_id}/credentials", dependencies=guarded, tags=["mailboxes"])
    async def put_credentials(mailbox_id: MailboxId, body: CredentialsIn) -> dict[str, Any]:
        """Replace secrets (after the user reconnected)."""
        await deps.store.update_credentials(
            mailbox_id,
            deps.cipher.encrypt(Credentials(body.credentials)),
            body.reactivate,
            deps.clock(),
        )
        return await deps.store.get_mailbox(mailbox_id)

    @app.post(
        "/mailboxes/{mailbox_id}/sync", status_code=202, dependencies=guarded, tags=["mailboxes"]
    )
    async def sync_now(mailbox_id: MailboxId) -> dict[str, Any]:
        """Sync at high priority now (what a push notification triggers)."""
        mailbox = await deps.store.get_mailbox(mailbox_id)
        if mailbox["status"] != "active":
            raise HTTPException(
                409, f"mailbox is {mailbox['status']}: update its credentials to reactivate it"
            )
        claimed = await deps.scheduler.sync_now(mailbox_id)
        if claimed is None:
            return {"queued": False, "detail": "running now; will sync again when done"}
        return {
            "queued": True,
            "tier": str(claimed.tier),
            "kind": str(claimed.kind),
            "job_id": claimed.job_id,
        }

    @app.get("/email-sync/status", dependencies=guarded, tags=["ops"])
    async def status() -> dict[str, Any]:
        """Queues, throughput, durations, error rate, DB pool and Redis memory."""
        report = await status_report(deps.store.pool, deps.queues, deps.redis, deps.clock())
        report["quota"] = {
            "waits": deps.limiters.stats.waits,
            "wait_seconds": {k: round(v, 3) for k, v in deps.limiters.stats.wait_seconds.items()},
            "throttled": deps.limiters.stats.throttled,
        }
        return report

    @app.get("/metrics", dependencies=guarded, tags=["ops"])
    async def metrics() -> Response:
        """Prometheus text format."""
        snap = await snapshot(deps.store.pool, deps.queues, deps.redis, deps.clock())
        deps.metrics.sync_quota_stats(deps.limiters.stats.waits, deps.limiters.stats.throttled)
        return Response(
            deps.metrics.render(snap), media_type="text/plain; version=0.0.4; charset=utf-8"
        )

    return app
