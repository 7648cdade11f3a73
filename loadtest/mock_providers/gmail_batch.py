"""Gmail's HTTP batch endpoint: ``multipart/mixed`` in, ``multipart/mixed`` out.

Every inner request is authenticated, charged and throttled on its own, as Google does;
the batch as a whole only adds its latency. Answers carry ``Content-ID:
<response-{id}>`` for a request part with ``Content-ID: <{id}>``.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from loadtest.mock_providers import gmail
from loadtest.mock_providers.gmail_state import GmailMailbox
from loadtest.mock_providers.replies import (
    gmail_error,
    gmail_error_body,
    gmail_unauthenticated_body,
)
from loadtest.mock_providers.service import MockService, bearer

MAX_PARTS = 100
JSON_TYPE = "application/json; charset=UTF-8"


class BatchFormatError(ValueError):
    """The batch body is not a multipart/mixed of application/http parts."""


@dataclass(frozen=True, slots=True)
class InnerRequest:
    """One part of a batch: its Content-ID, request line and headers."""

    content_id: str
    method: str
    target: str
    headers: dict[str, str]


@dataclass(frozen=True, slots=True)
class InnerResponse:
    """One answer part."""

    content_id: str
    status: int
    body: bytes
    content_type: str = JSON_TYPE
    headers: tuple[tuple[str, str], ...] = ()


def boundary_of(content_type: str) -> str | None:
    """The boundary parameter of a multipart/mixed content type."""
    kind, _, params = content_type.partition(";")
    if kind.strip().lower() != "multipart/mixed":
        return None
    for param in params.split(";"):
        name, _, value = param.strip().partition("=")
        if name.lower() == "boundary" and value:
            return value.strip('"')
    return None


def _header_block(text: str) -> dict[str, str]:
    out = {}
    for line in text.split("\n"):
        if ":" in line:
            name, _, value = line.partition(":")
            out[name.strip().lower()] = value.strip()
    return out


def parse_batch(body: bytes, boundary: str) -> list[InnerRequest]:
    """The inner requests of a batch body; raises ``BatchFormatError`` saying what is wrong
    (with the part number)."""
    try:
        text = body.decode("utf-8").replace("\r\n", "\n")
    except UnicodeDecodeError as exc:
        raise BatchFormatError("batch body is not UTF-8") from exc
    chunks = text.split("--" + boundary)
    if len(chunks) < 2:
        raise BatchFormatError("no part starts with the boundary from Content-Type")
    out = []
    for n, chunk in enumerate(chunks[1:], start=1):
        if chunk.startswith("--"):
            break
        part_headers_text, sep, inner = chunk.lstrip("\n").partition("\n\n")
        if not sep:
            raise BatchFormatError(f"part {n}: no blank line after the part headers")
        part_headers = _header_block(part_headers_text)
        ctype = part_headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != "application/http":
            raise BatchFormatError(f"part {n}: Content-Type must be application/http")
        request_text, _, _ = inner.lstrip("\n").partition("\n\n")
        first, _, header_text = request_text.partition("\n")
        words = first.split()
        if len(words) < 2:
            raise BatchFormatError(f"part {n}: bad request line {first!r}")
        cid = part_headers.get("content-id", "").strip().strip("<>") or str(n)
        out.append(InnerRequest(cid, words[0].upper(), words[1], _header_block(header_text)))
    return out


def render_batch(parts: list[InnerResponse], boundary: str) -> bytes:
    """The multipart/mixed answer body."""
    chunks = []
    for p in parts:
        extra = "".join(f"{k}: {v}\r\n" for k, v in p.headers)
        phrase = HTTPStatus(p.status).phrase
        head = (
            f"--{boundary}\r\nContent-Type: application/http\r\n"
            f"Content-ID: <response-{p.content_id}>\r\n\r\n"
            f"HTTP/1.1 {p.status} {phrase}\r\nContent-Type: {p.content_type}\r\n{extra}"
            f"Content-Length: {len(p.body)}\r\n\r\n"
        )
        chunks.append(head.encode() + p.body + b"\r\n")
    chunks.append(f"--{boundary}--\r\n".encode())
    return b"".join(chunks)


def _json_part(
    cid: str, status: int, body: object, headers: dict[str, str] | None = None
) -> InnerResponse:
    payload = json.dumps(body).encode()
    return InnerResponse(cid, status, payload, JSON_TYPE, tuple((headers or {}).items()))


def answer_inner(svc: MockService, part: InnerRequest, outer_token: str) -> InnerResponse:
    """Authenticate, charge, fault and run one inner request."""
    cid = part.content_id
    url = urlsplit(part.target)
    found = gmail.match(url.path)
    endpoint = found[0] if found else "gmail.batch.unknown"
    auth = part.headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    token = token.strip() if auth and scheme.lower() == "bearer" else outer_token
    mbx = svc.registry.mailbox_for_access(token, svc.clock())
    if not isinstance(mbx, GmailMailbox):
        svc.stats.unauthorized[endpoint] += 1
        return _json_part(cid, 401, gmail_unauthenticated_body())
    if found is None or part.method != "GET":
        body = gmail_error_body(404, f"Not found: {part.method} {url.path}", "notFound")
        return _json_part(cid, 404, body)
    endpoint, method, handler, args = found
    refusal = svc.admit("gmail", endpoint, method, mbx)
    if refusal is not None:
        status, body, headers = svc.refuse("gmail", refusal)
        return _json_part(cid, status, body, headers)
    fault = svc.injected_reply("gmail", endpoint, svc.draw())
    if fault is not None:
        return InnerResponse(cid, *fault)
    q = parse_qs(url.query, keep_blank_values=True)
    status, body = gmail.run(svc, mbx, handler, args, q)
    return _json_part(cid, status, body)


def routes(svc: MockService) -> list[Route]:
    """The batch endpoint."""
    counter = itertools.count(1)

    async def batch(request: Request) -> Response:
        svc.stats.requests["gmail.batch"] += 1
        boundary = boundary_of(request.headers.get("content-type", ""))
        if boundary is None:
            return gmail_error(
                400, "Content-Type must be multipart/mixed with a boundary", "badContent"
            )
        try:
            parts = parse_batch(await request.body(), boundary)
        except BatchFormatError as exc:
            return gmail_error(400, str(exc), "badContent")
        if not parts:
            return gmail_error(400, "The batch holds no request", "badContent")
        if len(parts) > MAX_PARTS:
            return gmail_error(
                400,
                f"A batch request cannot contain more than {MAX_PARTS} requests; got {len(parts)}",
                "batchSizeTooLarge",
            )
        methods = {
            found[1] if (found := gmail.match(urlsplit(p.target).path)) else "" for p in parts
        }
        d = svc.draw("gmail", methods.pop() if len(methods) == 1 else None, inner=len(parts))
        await svc.delay(d)
        outer = bearer(request)
        answers = [answer_inner(svc, part, outer) for part in parts]
        out_boundary = f"batch_mock{next(counter):012d}"
        return Response(
            render_batch(answers, out_boundary),
            media_type=f"multipart/mixed; boundary={out_boundary}",
        )

    return [
        Route("/batch/gmail/v1", batch, methods=["POST"]),
        Route("/batch", batch, methods=["POST"]),
    ]
