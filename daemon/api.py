"""The HTTP API (OpenAPI at /docs and /openapi.json): tenants, mailboxes, sync now, status,
metrics. Every route but /healthz wants ``Authorization: Bearer <api_token>``."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal, cast

import redis.asyncio as aioredis
from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, model_validator

from daemon.crypto import CredentialCipher
from daemon.metrics import Metrics
from daemon.providers.base import Credentials
from daemon.queues import TierQueues
from daemon.ratelimit import QuotaLimiters
from daemon.scheduler import Scheduler
from daemon.settings import check_graph_folders
from daemon.status import snapshot, status_report
from daemon.store import tenants
from daemon.store.mailboxes import Conflict, MailboxStore, NotFound

_STRICT = ConfigDict(extra="forbid")
# Module level: route signatures are resolved from module globals (postponed annotations).
_BEARER = HTTPBearer(auto_error=False)


class TenantIn(BaseModel):
    """A tenant to create."""

    model_config = _STRICT
    name: str = Field(min_length=1, max_length=200)
    sync_interval_s: int | None = Field(default=None, gt=0, le=86400)


class ImapConfig(BaseModel):
    """Server settings of an IMAP mailbox."""

    model_config = _STRICT
    host: str = Field(min_length=1)
    port: int = Field(default=993, ge=1, le=65535)
    tls: Literal["implicit", "none"] = "implicit"
    username: str = Field(min_length=1)
    auth: Literal["password", "xoauth2"] = "password"
    folders: list[str] | None = None


class MailboxIn(BaseModel):
    """A mailbox to register; secrets go in ``credentials`` and are encrypted at rest."""

    model_config = _STRICT
    provider: Literal["gmail", "graph", "imap"]
    address: str = Field(min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")
    credentials: dict[str, str]
    config: dict[str, Any] = {}
    sync_interval_s: int | None = Field(default=None, gt=0, le=86400)

    @model_validator(mode="after")
    def _provider_fields(self) -> MailboxIn:
        creds = self.credentials
        if self.provider in ("gmail", "graph"):
            if not creds.get("refresh_token"):
                raise ValueError("credentials.refresh_token is required for gmail and graph")
            folders = self.config.get("folders")
            if self.provider == "graph" and folders is not None:
                check_graph_folders(folders, "config.folders")
            elif folders is not None and (
                not isinstance(folders, list) or not all(isinstance(f, str) for f in folders)
            ):
                raise ValueError("config.folders must be a list of folder names")
        else:
            cfg = ImapConfig.model_validate(self.config)
            if cfg.auth == "password" and not creds.get("password"):
                raise ValueError("credentials.password is required for imap password auth")
            if cfg.auth == "xoauth2" and not creds.get("refresh_token"):
                raise ValueError("credentials.refresh_token is required for imap xoauth2")
        return self


class BulkMailboxesIn(BaseModel):
    """Many mailboxes of one tenant at once (onboarding, load tests)."""

    model_config = _STRICT
    mailboxes: list[MailboxIn] = Field(min_length=1, max_length=1000)


class TenantWithMailboxesIn(TenantIn):
    """A tenant and its mailboxes, for onboarding many at once."""

    mailboxes: list[MailboxIn] = Field(default_factory=list, max_length=1000)


class BulkTenantsIn(BaseModel):
    """Up to 1,000 tenants with up to 10,000 mailboxes in all."""

    model_config = _STRICT
    tenants: list[TenantWithMailboxesIn] = Field(min_length=1, max_length=1000)

    @model_validator(mode="after")
    def _bounded(self) -> BulkTenantsIn:
        if sum(len(t.mailboxes) for t in self.tenants) > 10_000:
            raise ValueError("at most 10,000 mailboxes in one request")
        return self


class CredentialsIn(BaseModel):
    """New secrets for a mailbox; by default reactivates one in ``needs_reauth``."""

    model_config = _STRICT
    credentials: dict[str, str] = Field(min_length=1)
    reactivate: bool = True


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

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, str]:
        """Liveness and dependencies; no token needed."""
        await deps.store.pool.fetchval("SELECT 1")
        await cast(Awaitable[bool], deps.redis.ping())
        return {"status": "ok"}

    @app.post("/tenants", status_code=201, dependencies=guarded, tags=["tenants"])
    async def create_tenant(body: TenantIn) -> dict[str, Any]:
        """Create a tenant."""
        return await deps.store.create_tenant(body.name, body.sync_interval_s)

    @app.post("/tenants/bulk", status_code=201, dependencies=guarded, tags=["tenants"])
    async def create_tenants(body: BulkTenantsIn) -> list[dict[str, Any]]:
        """Create tenants with their mailboxes in one transaction (onboarding, migrations);
        a name that exists already fails the whole request with 409."""
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
    async def get_tenant(tenant_id: int) -> dict[str, Any]:
        """One tenant."""
        return await deps.store.get_tenant(tenant_id)

    @app.delete("/tenants/{tenant_id}", status_code=204, dependencies=guarded, tags=["tenants"])
    async def delete_tenant(tenant_id: int) -> Response:
        """Delete a tenant, its mailboxes and messages."""
        await deps.store.delete_tenant(tenant_id)
        return Response(status_code=204)

    @app.post(
        "/tenants/{tenant_id}/mailboxes", status_code=201, dependencies=guarded, tags=["mailboxes"]
    )
    async def create_mailbox(tenant_id: int, body: MailboxIn) -> dict[str, Any]:
        """Register a mailbox; it is due for a full sync at once."""
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
    async def create_mailboxes(tenant_id: int, body: BulkMailboxesIn) -> dict[str, Any]:
        """Register up to 1,000 mailboxes in one transaction; addresses already registered
        under the tenant are skipped (``skipped`` counts them)."""
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
    async def pause_tenant(tenant_id: int) -> dict[str, int]:
        """Stop syncing the tenant's active mailboxes (cursors and messages are kept)."""
        return {"paused": await tenants.pause(deps.store.pool, tenant_id, deps.clock())}

    @app.post("/tenants/{tenant_id}/resume", dependencies=guarded, tags=["tenants"])
    async def resume_tenant(tenant_id: int) -> dict[str, int]:
        """Sync the tenant's paused mailboxes again, starting now."""
        return {"resumed": await tenants.resume(deps.store.pool, tenant_id, deps.clock())}

    @app.get("/mailboxes", dependencies=guarded, tags=["mailboxes"])
    async def list_mailboxes(
        tenant_id: int | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        after_id: Annotated[int, Query(ge=0)] = 0,
    ) -> list[dict[str, Any]]:
        """Mailboxes by id, paged with ``after_id``."""
        return await deps.store.list_mailboxes(tenant_id, limit, after_id)

    @app.get("/mailboxes/{mailbox_id}", dependencies=guarded, tags=["mailboxes"])
    async def get_mailbox(mailbox_id: int) -> dict[str, Any]:
        """A mailbox's sync state."""
        return await deps.store.get_mailbox(mailbox_id)

    @app.get("/mailboxes/{mailbox_id}/runs", dependencies=guarded, tags=["mailboxes"])
    async def mailbox_runs(
        mailbox_id: int, limit: Annotated[int, Query(ge=1, le=500)] = 20
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
    async def delete_mailbox(mailbox_id: int) -> Response:
        """Delete a mailbox and its messages."""
        await deps.store.delete_mailbox(mailbox_id)
        return Response(status_code=204)

    @app.put("/mailboxes/{mailbox_id}/credentials", dependencies=guarded, tags=["mailboxes"])
    async def put_credentials(mailbox_id: int, body: CredentialsIn) -> dict[str, Any]:
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
    async def sync_now(mailbox_id: int) -> dict[str, Any]:
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
