"""Gmail HTTP batch (``multipart/mixed``) encoding and decoding, as pure functions."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from daemon.errors import BadResponse

_BOUNDARY_RE = re.compile(r'boundary="?([^";]+)"?', re.I)
_STATUS_RE = re.compile(r"^HTTP/\d(?:\.\d)?\s+(\d{3})")


@dataclass(frozen=True, slots=True)
class InnerResponse:
    """One part of a batch response."""

    content_id: str
    status: int
    headers: dict[str, str]
    body: Any


def encode(paths: Sequence[str], boundary: str, authorization: str) -> bytes:
    """A batch body of GET requests; part ``i`` carries ``Content-ID: <item-i>``."""
    lines: list[str] = []
    for i, path in enumerate(paths):
        lines += [
            f"--{boundary}",
            "Content-Type: application/http",
            f"Content-ID: <item-{i}>",
            "",
            f"GET {path} HTTP/1.1",
            f"Authorization: {authorization}",
            "",
            "",
        ]
    lines.append(f"--{boundary}--")
    return "\r\n".join(lines).encode()


def _split_head(block: str) -> tuple[str, str]:
    for sep in ("\r\n\r\n", "\n\n"):
        if sep in block:
            head, body = block.split(sep, 1)
            return head, body
    return block, ""


def _headers(head: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in head.splitlines():
        name, sep, value = line.partition(":")
        if sep:
            out[name.strip().lower()] = value.strip()
    return out


def decode(content_type: str, payload: bytes) -> list[InnerResponse]:
    """Parts of a batch response; ``BadResponse`` naming what is malformed."""
    m = _BOUNDARY_RE.search(content_type)
    if not m or not content_type.lower().startswith("multipart/"):
        raise BadResponse(f"batch: response is not multipart ({content_type!r})", provider="gmail")
    boundary = m.group(1)
    text = payload.decode("utf-8", errors="replace")
    out: list[InnerResponse] = []
    for raw in text.split(f"--{boundary}"):
        part = raw.strip("\r\n")
        if not part or part == "--" or part.startswith("--"):
            continue
        part_head, http_block = _split_head(part)
        content_id = _headers(part_head).get("content-id", "").strip("<>")
        status_head, body_text = _split_head(http_block.lstrip("\r\n"))
        status_line, _, header_lines = status_head.partition("\n")
        sm = _STATUS_RE.match(status_line.strip())
        if sm is None:
            raise BadResponse(
                f"batch: part {content_id or '?'} has no HTTP status line", provider="gmail"
            )
        body_text = body_text.strip()
        try:
            body = json.loads(body_text) if body_text else None
        except ValueError:
            body = body_text
        out.append(InnerResponse(content_id, int(sm.group(1)), _headers(header_lines), body))
    return out


def item_index(content_id: str) -> int | None:
    """The request index of a response part (``response-item-3`` → 3)."""
    m = re.search(r"item-(\d+)$", content_id)
    return int(m.group(1)) if m else None
