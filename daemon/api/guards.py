"""What keeps every answer of the API a 4xx or a 2xx: the request body limit, validation
errors that name fields and rules without echoing values, and the health check."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast

import asyncpg
import redis.asyncio as aioredis
from fastapi.exceptions import RequestValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Bodies of ordinary requests, and of the bulk registrations (up to 10,000 mailboxes).
MAX_BODY_BYTES = 64 * 1024
MAX_BULK_BODY_BYTES = 32 * 1024 * 1024
# Each dependency of /healthz must answer within this.
HEALTH_TIMEOUT_S = 2.0


def body_limit(path: str) -> int:
    """The largest body a request to ``path`` may carry."""
    return MAX_BULK_BODY_BYTES if path.endswith("/bulk") else MAX_BODY_BYTES


class BodyLimit:
    """ASGI middleware: a body over ``body_limit`` is answered 413 before any route sees it
    (whether announced by Content-Length or streamed in chunks)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = body_limit(scope["path"])
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                await self._too_large(scope, receive, send, limit)
                return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                # The client left: let the app see the disconnect.
                await self.app(scope, _replay([message], receive), send)
                return
            body = message.get("body", b"")
            size += len(body)
            if size > limit:
                await self._too_large(scope, receive, send, limit)
                return
            chunks.append(body)
            if not message.get("more_body", False):
                break
        whole: Message = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        await self.app(scope, _replay([whole], receive), send)

    @staticmethod
    async def _too_large(scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        answer = JSONResponse(
            {"detail": f"request body larger than {limit} bytes"}, status_code=413
        )
        await answer(scope, receive, send)


def _replay(messages: list[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay


def _printable(value: object, limit: int) -> str:
    # Lone surrogates cannot be encoded in a JSON answer; long text is cut.
    text = str(value).encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def public_errors(errors: Sequence[Any]) -> list[dict[str, Any]]:
    """Validation errors as ``{type, loc, msg}``: where and which rule, never the input (a
    secret, a 10 MB string or a NaN that JSON cannot carry)."""
    out = []
    for err in errors:
        loc = [p if isinstance(p, int) else _printable(p, 100) for p in err.get("loc", ())]
        out.append(
            {
                "type": _printable(err.get("type", "invalid"), 100),
                "loc": loc,
                "msg": _printable(err.get("msg", "invalid"), 1000),
            }
        )
    return out


async def validation_failed(_: Request, exc: Exception) -> JSONResponse:
    """The 422 of a request that fails validation."""
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    return JSONResponse({"detail": public_errors(errors)}, status_code=422)


async def _within(check: Awaitable[Any]) -> None:
    await asyncio.wait_for(check, HEALTH_TIMEOUT_S)


async def health(
    pool: asyncpg.Pool, redis: aioredis.Redis, failed_tasks: Callable[[], Sequence[str]]
) -> tuple[int, dict[str, Any]]:
    """(status code, body) of /healthz: 200 ``{"status": "ok"}``, or 503 naming what is down:
    ``postgresql``, ``redis`` (no answer within ``HEALTH_TIMEOUT_S``) and any background task
    the daemon reports as not running."""
    checks = await asyncio.gather(
        _within(pool.fetchval("SELECT 1")),
        _within(cast(Awaitable[bool], redis.ping())),
        return_exceptions=True,
    )
    failed = [
        name
        for name, result in zip(("postgresql", "redis"), checks, strict=True)
        if isinstance(result, BaseException)
    ]
    try:
        failed.extend(failed_tasks())
    except Exception:  # a broken report is itself a failure, not a 500
        failed.append("failed_tasks")
    if failed:
        return 503, {"status": "unavailable", "failed": failed}
    return 200, {"status": "ok"}
