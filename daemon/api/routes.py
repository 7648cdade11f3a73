"""The ASGI application: middleware, error handlers and the bearer token around the routes
of ``tenant_routes``, ``mailbox_routes`` and ``ops_routes``."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from daemon.api.deps import ApiDeps
from daemon.api.guards import BodyLimit, validation_failed
from daemon.api.mailbox_routes import mailbox_routes
from daemon.api.ops_routes import health_routes, ops_routes
from daemon.api.tenant_routes import tenant_routes
from daemon.store.records import Conflict, NotFound

# Module level: route signatures are resolved from module globals (postponed annotations).
_BEARER = HTTPBearer(auto_error=False)


async def _not_found(_: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=404)


async def _conflict(_: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=409)


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
    app.add_exception_handler(NotFound, _not_found)
    app.add_exception_handler(Conflict, _conflict)

    def auth(cred: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)]) -> None:
        if cred is None or not secrets.compare_digest(
            cred.credentials.encode(), deps.token.encode()
        ):
            raise HTTPException(
                401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"}
            )

    guarded = [Depends(auth)]
    # In this order, the order of the OpenAPI document.
    app.include_router(health_routes(deps))
    app.include_router(tenant_routes(deps), dependencies=guarded)
    app.include_router(mailbox_routes(deps), dependencies=guarded)
    app.include_router(ops_routes(deps), dependencies=guarded)
    return app
