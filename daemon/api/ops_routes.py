"""Routes for operators: the health check (no token), status and Prometheus metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from daemon.api.deps import ApiDeps
from daemon.api.guards import health
from daemon.status import snapshot, status_report


def health_routes(deps: ApiDeps) -> APIRouter:
    """``/healthz``, served without a token."""
    router = APIRouter()

    @router.get(
        "/healthz",
        tags=["ops"],
        responses={503: {"description": "A dependency or background task is down"}},
    )
    async def healthz() -> JSONResponse:
        """PostgreSQL, Redis and the daemon's background tasks; no token needed. 200
        ``{"status": "ok"}``, or 503 ``{"status": "unavailable", "failed": [...]}``."""
        code, body = await health(deps.store.pool, deps.redis, deps.failed_tasks)
        return JSONResponse(body, status_code=code)

    return router


def ops_routes(deps: ApiDeps) -> APIRouter:
    """``/email-sync/status`` and ``/metrics``."""
    router = APIRouter()

    @router.get("/email-sync/status", tags=["ops"])
    async def status() -> dict[str, Any]:
        """Queues, throughput, durations, error rate, DB pool and Redis memory."""
        report = await status_report(deps.store.pool, deps.queues, deps.redis, deps.clock())
        report["quota"] = {
            "waits": deps.limiters.stats.waits,
            "wait_seconds": {k: round(v, 3) for k, v in deps.limiters.stats.wait_seconds.items()},
            "throttled": deps.limiters.stats.throttled,
        }
        return report

    @router.get("/metrics", tags=["ops"])
    async def metrics() -> Response:
        """Prometheus text format."""
        snap = await snapshot(deps.store.pool, deps.queues, deps.redis, deps.clock())
        deps.metrics.sync_quota_stats(deps.limiters.stats.waits, deps.limiters.stats.throttled)
        return Response(
            deps.metrics.render(snap), media_type="text/plain; version=0.0.4; charset=utf-8"
        )

    return router
