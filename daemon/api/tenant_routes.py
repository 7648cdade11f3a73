"""Routes under ``/tenants``: tenants, registering mailboxes into them, pause and resume."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Response

from daemon.api.deps import ApiDeps
from daemon.api.host_check import check_imap_hosts
from daemon.api.models import MAX_ID, BulkMailboxesIn, BulkTenantsIn, MailboxIn, TenantIn
from daemon.providers.base import Credentials
from daemon.store import tenants

# Module level: route signatures are resolved from module globals (postponed annotations).
TenantId = Annotated[int, Path(ge=1, le=MAX_ID, description="A tenant id.")]


def _new_mailbox(deps: ApiDeps, m: MailboxIn) -> tenants.NewMailbox:
    """A mailbox of a registration body as stored: its credentials encrypted."""
    return tenants.NewMailbox(
        m.provider,
        m.address,
        deps.cipher.encrypt(Credentials(m.credentials)),
        m.config,
        m.sync_interval_s,
    )


def tenant_routes(deps: ApiDeps) -> APIRouter:
    """Create, list, read and delete tenants; register their mailboxes; pause and resume."""
    router = APIRouter()

    @router.post("/tenants", status_code=201, tags=["tenants"])
    async def create_tenant(body: TenantIn) -> dict[str, Any]:
        """Create a tenant."""
        return await deps.store.create_tenant(body.name, body.sync_interval_s)

    @router.post("/tenants/bulk", status_code=201, tags=["tenants"])
    async def create_tenants(body: BulkTenantsIn) -> list[dict[str, Any]]:
        """Create tenants with their mailboxes in one transaction (onboarding, migrations);
        a name that exists already fails the whole request with 409."""
        await check_imap_hosts(
            deps.imap_hosts,
            [
                (("tenants", i, "mailboxes", j), m)
                for i, t in enumerate(body.tenants)
                for j, m in enumerate(t.mailboxes)
            ],
        )
        new = [
            tenants.NewTenant(
                t.name, t.sync_interval_s, [_new_mailbox(deps, m) for m in t.mailboxes]
            )
            for t in body.tenants
        ]
        return await tenants.onboard(deps.store.pool, new, deps.clock())

    @router.get("/tenants", tags=["tenants"])
    async def list_tenants() -> list[dict[str, Any]]:
        """All tenants with mailbox counts."""
        return await deps.store.list_tenants()

    @router.get("/tenants/{tenant_id}", tags=["tenants"])
    async def get_tenant(tenant_id: TenantId) -> dict[str, Any]:
        """One tenant."""
        return await deps.store.get_tenant(tenant_id)

    @router.delete("/tenants/{tenant_id}", status_code=204, tags=["tenants"])
    async def delete_tenant(tenant_id: TenantId) -> Response:
        """Delete a tenant, its mailboxes and messages."""
        await deps.store.delete_tenant(tenant_id)
        return Response(status_code=204)

    @router.post("/tenants/{tenant_id}/mailboxes", status_code=201, tags=["mailboxes"])
    async def create_mailbox(tenant_id: TenantId, body: MailboxIn) -> dict[str, Any]:
        """Register a mailbox; it is due for a full sync at once. The address is stored
        lower-case; the same account twice in one tenant is a 409."""
        await check_imap_hosts(deps.imap_hosts, [((), body)])
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

    @router.post("/tenants/{tenant_id}/mailboxes/bulk", status_code=201, tags=["mailboxes"])
    async def create_mailboxes(tenant_id: TenantId, body: BulkMailboxesIn) -> dict[str, Any]:
        """Register up to 1,000 mailboxes in one transaction; addresses already registered
        under the tenant (in any case) are skipped (``skipped`` counts them)."""
        await check_imap_hosts(
            deps.imap_hosts, [(("mailboxes", i), m) for i, m in enumerate(body.mailboxes)]
        )
        rows = [_new_mailbox(deps, m) for m in body.mailboxes]
        created = await tenants.register_many(deps.store.pool, tenant_id, rows, deps.clock())
        return {"created": created, "skipped": len(rows) - len(created)}

    @router.post("/tenants/{tenant_id}/pause", tags=["tenants"])
    async def pause_tenant(tenant_id: TenantId) -> dict[str, int]:
        """Stop syncing the tenant's active mailboxes (cursors and messages are kept)."""
        return {"paused": await tenants.pause(deps.store.pool, tenant_id, deps.clock())}

    @router.post("/tenants/{tenant_id}/resume", tags=["tenants"])
    async def resume_tenant(tenant_id: TenantId) -> dict[str, int]:
        """Sync the tenant's paused mailboxes again, starting now."""
        return {"resumed": await tenants.resume(deps.store.pool, tenant_id, deps.clock())}

    return router
