"""Microsoft Graph JSON batching: ``POST /v1.0/$batch`` with up to 20 requests.

Shapes follow learn.microsoft.com/graph/json-batching: the body is ``{"requests": [{"id",
"method", "url" (relative to the version root), "headers"?}]}``; the answer is 200 with
``{"responses": [{"id", "status", "headers", "body"}]}`` in no promised order (the mock
shuffles it, seeded), whatever the requests did. A batch that cannot be read, holds more
than ``MAX_REQUESTS`` requests or repeats an id is refused whole with 400.

Every inner request runs the same path as the request on its own (the Graph routes, with
the batch's access token): it is counted, charged to the quotas and may be throttled (an
inner 429 with its own ``Retry-After``) or draw an injected fault, on its own. The batch is
the one HTTP request: its latency, drawn once with ``batch_inner_ms`` per inner request,
covers them all.
"""

from __future__ import annotations

import itertools
import json
import random
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Match, Route

from loadtest.mock_providers import graph, synth
from loadtest.mock_providers.replies import graph_error, graph_unauthenticated
from loadtest.mock_providers.service import MockService

MAX_REQUESTS = 20
_VERSION = "/v1.0"
# Headers of the batch that do not carry over to its requests.
_BATCH_ONLY = frozenset((b"content-type", b"content-length", b"transfer-encoding"))


class BatchRefused(ValueError):
    """The batch as a whole is malformed (Graph answers 400)."""


def parse_requests(payload: bytes) -> list[dict[str, Any]]:
    """The requests of a batch body; ``BatchRefused`` saying what is wrong."""
    try:
        body = json.loads(payload)
    except ValueError as exc:
        raise BatchRefused("Invalid batch payload format: the body is not JSON.") from exc
    requests = body.get("requests") if isinstance(body, dict) else None
    if not isinstance(requests, list) or not requests:
        raise BatchRefused("Invalid batch payload format: 'requests' must be a non-empty array.")
    if len(requests) > MAX_REQUESTS:
        raise BatchRefused(
            f"The batch holds {len(requests)} requests; the limit is {MAX_REQUESTS}."
        )
    seen: set[str] = set()
    for n, req in enumerate(requests, start=1):
        if not isinstance(req, dict):
            raise BatchRefused(f"Request {n} of the batch is not an object.")
        rid, method, url = req.get("id"), req.get("method"), req.get("url")
        if not isinstance(rid, str) or not rid:
            raise BatchRefused(f"Request {n} of the batch has no 'id'.")
        if rid.lower() in seen:
            raise BatchRefused(f"The batch repeats the request id '{rid}'.")
        seen.add(rid.lower())
        if not isinstance(method, str) or not isinstance(url, str) or not url:
            raise BatchRefused(f"Request '{rid}' needs a 'method' and a 'url'.")
        headers = req.get("headers", {})
        if not isinstance(headers, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
        ):
            raise BatchRefused(f"The 'headers' of request '{rid}' are not strings.")
        if "dependsOn" in req:
            raise BatchRefused("dependsOn is not served by this mock.")
    return requests


def _inner_scope(outer: Request, req: dict[str, Any]) -> dict[str, Any]:
    """The ASGI scope of one inner request: its URL under the version root, the batch's
    headers (its token) overlaid with its own."""
    url = urlsplit(_VERSION + "/" + str(req["url"]).lstrip("/"))
    own = {k.lower().encode(): v.encode() for k, v in req.get("headers", {}).items()}
    headers = [(k, v) for k, v in outer.scope["headers"] if k not in _BATCH_ONLY and k not in own]
    return {
        **outer.scope,
        "method": str(req["method"]).upper(),
        "path": url.path,
        "raw_path": url.path.encode(),
        "query_string": url.query.encode(),
        "headers": headers + list(own.items()),
        graph.INNER: True,
    }


def _answer(rid: str, resp: Response) -> dict[str, Any]:
    """A response as one entry of ``responses``; a body that is not JSON comes as text."""
    raw = bytes(resp.body)
    try:
        body: Any = json.loads(raw) if raw else None
    except ValueError:
        body = raw.decode("utf-8", errors="replace")
    headers = {k: v for k, v in resp.headers.items() if k.lower() not in ("content-length", "date")}
    return {"id": rid, "status": resp.status_code, "headers": headers, "body": body}


async def _run(routes: list[Route], scope: dict[str, Any]) -> Response:
    for route in routes:
        match, child = route.matches(scope)
        if match is Match.FULL:
            answer: Response = await route.endpoint(Request({**scope, **child}))
            return answer
        if match is Match.PARTIAL:
            return graph_error(405, "Request_BadRequest", "Specified HTTP method is not allowed.")
    return graph_error(400, "BadRequest", f"Resource not found for the segment '{scope['path']}'.")


def routes(svc: MockService) -> list[Route]:
    """The batch endpoint, answering through the Graph routes of ``svc``."""
    inner_routes = graph.routes(svc)
    counter = itertools.count(1)

    async def batch(request: Request) -> Response:
        svc.stats.requests["graph.$batch"] += 1
        if svc.authenticate(request) is None:
            svc.stats.unauthorized["graph.$batch"] += 1
            return graph_unauthenticated()
        try:
            requests = parse_requests(await request.body())
        except BatchRefused as exc:
            return graph_error(400, "BadRequest", str(exc))
        await svc.delay(svc.draw("graph", None, inner=len(requests)))
        answers = []
        for req in requests:
            answers.append(_answer(req["id"], await _run(inner_routes, _inner_scope(request, req))))
        # Graph promises no order: callers must match answers by id.
        random.Random(synth.stable_seed(svc.config.seed, f"batch{next(counter)}")).shuffle(answers)
        return JSONResponse({"responses": answers})

    return [Route(f"{_VERSION}/$batch", batch, methods=["POST"])]


__all__ = ["MAX_REQUESTS", "BatchRefused", "parse_requests", "routes"]
