"""Microsoft Graph JSON batching (``POST /$batch``) encoding and decoding, as pure functions.

A batch carries up to ``MAX_REQUESTS`` requests, each with an ``id``; the answer's
``responses`` come in any order, each with that ``id``, its own ``status``, ``headers`` and
``body``. The batch itself answers 200 whatever its requests did: a request throttled on
its own is a 429 with its ``Retry-After`` among the inner headers
(learn.microsoft.com/graph/json-batching).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from daemon.errors import BadResponse
from daemon.providers.httpclient import HttpResponse

# Graph refuses a batch of more requests with 400.
MAX_REQUESTS = 20
_WHAT = "$batch"


class InnerResponse:
    """One answer of a batch, read like a whole HTTP response (``HttpResponse``)."""

    __slots__ = ("_body", "_headers", "_status")

    def __init__(self, status: int, headers: Mapping[str, str], body: Any) -> None:
        self._status = status
        self._headers = {k.lower(): v for k, v in headers.items()}
        self._body = body

    @property
    def status_code(self) -> int:
        """The inner request's HTTP status."""
        return self._status

    @property
    def headers(self) -> Mapping[str, str]:
        """Inner headers under lower-case names (how the providers look them up)."""
        return self._headers

    @property
    def content(self) -> bytes:
        """The body as JSON bytes (empty without a body)."""
        return b"" if self._body is None else json.dumps(self._body).encode()

    @property
    def text(self) -> str:
        """The body as JSON text."""
        return self.content.decode()

    def json(self) -> Any:
        """The body; ``ValueError`` when the answer has none."""
        if self._body is None:
            raise ValueError("batch answer without a body")
        return self._body


def encode(requests: Sequence[tuple[str, str, Mapping[str, str]]]) -> bytes:
    """A batch body of GET requests ``(id, url relative to the version root, headers)``."""
    if not 0 < len(requests) <= MAX_REQUESTS:
        raise ValueError(f"a batch holds 1 to {MAX_REQUESTS} requests, not {len(requests)}")
    body = {
        "requests": [
            {"id": rid, "method": "GET", "url": url, "headers": dict(headers)}
            for rid, url, headers in requests
        ]
    }
    return json.dumps(body, separators=(",", ":")).encode()


def relative(url: str, base: str) -> str | None:
    """``url`` relative to ``base`` (the version root) as a batch wants it; None when the
    URL is elsewhere (it cannot go in a batch to ``base``)."""
    prefix = base.rstrip("/") + "/"
    return url[len(prefix) - 1 :] if url.startswith(prefix) else None


def _headers(raw: Any, rid: str) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in raw.items()
    ):
        raise BadResponse(f"{_WHAT}: headers of answer {rid!r} are not strings", provider="graph")
    return raw


def decode(resp: HttpResponse, ids: Sequence[str]) -> dict[str, InnerResponse]:
    """The answers of a 200 batch response by request id; ``BadResponse`` naming what is
    wrong when the body is not a batch answer to exactly the requests ``ids``."""
    try:
        body = resp.json()
    except ValueError as exc:
        raise BadResponse(
            f"{_WHAT}: response body is not JSON", provider="graph", status=resp.status_code
        ) from exc
    answers = body.get("responses") if isinstance(body, dict) else None
    if not isinstance(answers, list):
        raise BadResponse(f"{_WHAT}: no 'responses' list", provider="graph")
    wanted = set(ids)
    out: dict[str, InnerResponse] = {}
    for item in answers:
        if not isinstance(item, dict):
            raise BadResponse(f"{_WHAT}: an answer is not an object", provider="graph")
        rid, status = item.get("id"), item.get("status")
        if not isinstance(rid, str) or rid not in wanted:
            raise BadResponse(f"{_WHAT}: answer to unknown id {rid!r}", provider="graph")
        if rid in out:
            raise BadResponse(f"{_WHAT}: two answers to id {rid!r}", provider="graph")
        if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
            raise BadResponse(f"{_WHAT}: answer {rid!r} has no HTTP status", provider="graph")
        out[rid] = InnerResponse(status, _headers(item.get("headers"), rid), item.get("body"))
    missing = [rid for rid in ids if rid not in out]
    if missing:
        raise BadResponse(f"{_WHAT}: no answer to ids {missing}", provider="graph")
    return out


__all__ = ["MAX_REQUESTS", "InnerResponse", "decode", "encode", "relative"]
