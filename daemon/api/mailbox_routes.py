"""Routes under ``/mailboxes``: sync state, runs, credentials, delete and sync now."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Response

from daemon.api.deps import ApiDeps
from daemon.api.models import MAX_ID, CredentialsIn
from daemon.providers.base import Credentials

# Module level: route signatures are resolved from module globals (postponed annotations).
MailboxId = Annotated[int, Path(ge=1, le=MAX_ID, description="A mailbox id.")]


def mailbox_routes(deps: ApiDeps) -> APIRouter:
    """List and read mailboxes and their runs, replace credentials, delete, sync now."""
    router = APIRouter()

    @router.get("/mailboxes", tags=["mailboxes"])
    async def list_mailboxes(
        tenant_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        after_id: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
    ) -> list[dict[str, Any]]:
        """Mailboxes by id, paged with ``after_id``."""
        return await deps.store.list_mailboxes(tenant_id, limit, after_id)

    @router.get("/mailboxes/{mailbox_id}", tags=["mailboxes"])
    async def get_mailbox(mailbox_id: MailboxId) -> dict[str, Any]:
        """A mailbox's sync state."""
        return await deps.store.get_mailbox(mailbox_id)

    @router.get("/mailboxes/{mailbox_id}/runs", tags=["mailboxes"])
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

    @router.delete("/mailboxes/{mailbox_id}", status_code=204, tags=["mailboxes"])
    async def delete_mailbox(mailbox_id: MailboxId) -> Response:
        """Delete a mailbox and its messages."""
        await deps.store.delete_mailbox(mailbox_id)
        return Response(status_code=204)

    @router.put("/mailboxes/{mailbox_id}/credentials", tags=["mailboxes"])
    async def put_credentials(mailbox_id: MailboxId, body: CredentialsIn) -> dict[str, Any]:
        """Replace secrets (after the user reconnected)."""
        await deps.store.update_credentials(
            mailbox_id,
            deps.cipher.encrypt(Credentials(body.credentials)),
            body.reactivate,
            deps.clock(),
        )
        return await deps.store.get_mailbox(mailbox_id)

    @router.post("/mailboxes/{mailbox_id}/sync", status_code=202, tags=["mailboxes"])
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

    return router
