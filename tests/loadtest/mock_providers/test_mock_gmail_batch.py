"""Gmail HTTP batch: multipart parsing both ways, per-part charging and errors."""

from __future__ import annotations

from typing import Any

import pytest

from daemon.providers import gmail_batch as client_batch
from loadtest.mock_providers.gmail_batch import (
    BatchFormatError,
    InnerResponse,
    boundary_of,
    parse_batch,
    render_batch,
)
from loadtest.mock_providers.testing import MockHarness as Mock

QUERY = "format=metadata&metadataHeaders=From&metadataHeaders=Subject"


async def _post(mock: Mock, body: bytes, boundary: str, headers: dict[str, str]) -> Any:
    return await mock.client.post(
        "/batch/gmail/v1",
        content=body,
        headers={**headers, "Content-Type": f"multipart/mixed; boundary={boundary}"},
    )


def test_parse_accepts_crlf_lf_absolute_urls_and_missing_content_ids() -> None:
    body = (
        b"--b1\nContent-Type: application/http\nContent-ID: <a>\n\n"
        b"GET /gmail/v1/users/me/messages/x?format=minimal HTTP/1.1\n\n"
        b"--b1\r\nContent-Type: application/http\r\n\r\n"
        b"GET https://gmail.googleapis.com/gmail/v1/users/me/messages/y\r\n"
        b"Authorization: Bearer t2\r\n\r\n"
        b"--b1--\r\n"
    )
    parts = parse_batch(body, "b1")
    assert [(p.content_id, p.method) for p in parts] == [("a", "GET"), ("2", "GET")]
    assert parts[1].target.startswith("https://")
    assert parts[1].headers["authorization"] == "Bearer t2"


def test_parse_rejects_parts_that_are_not_http() -> None:
    body = b"--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b--"
    with pytest.raises(BatchFormatError, match="part 1: Content-Type"):
        parse_batch(body, "b")


def test_boundary_parsing() -> None:
    assert boundary_of('multipart/mixed; boundary="batch_x"') == "batch_x"
    assert boundary_of("multipart/mixed;boundary=abc") == "abc"
    assert boundary_of("application/json") is None


def test_rendered_batch_is_read_back_by_the_daemon_decoder() -> None:
    parts = [
        InnerResponse("item-0", 200, b'{"id": "a"}'),
        InnerResponse("item-1", 429, b'{"error": {}}', headers=(("Retry-After", "3"),)),
    ]
    decoded = client_batch.decode("multipart/mixed; boundary=zz", render_batch(parts, "zz"))
    assert [(p.content_id, p.status, p.body) for p in decoded] == [
        ("response-item-0", 200, {"id": "a"}),
        ("response-item-1", 429, {"error": {}}),
    ]
    assert decoded[1].headers["retry-after"] == "3"


async def test_batch_get_answers_every_part_with_its_content_id(mock: Mock) -> None:
    creds = await mock.create("gmail", messages=30, seed=4)
    headers = await mock.login(creds)
    ids = [m["id"] for m in await mock.listing(creds["address"])][:5]
    paths = [f"/gmail/v1/users/me/messages/{mid}?{QUERY}" for mid in ids]
    paths.append(f"/gmail/v1/users/me/messages/ffffffffffffffff?{QUERY}")
    body = client_batch.encode(paths, "batch_t", headers["Authorization"])
    r = await _post(mock, body, "batch_t", {})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("multipart/mixed; boundary=")
    parts = client_batch.decode(r.headers["content-type"], r.content)
    assert [p.content_id for p in parts] == [f"response-item-{i}" for i in range(6)]
    assert [p.status for p in parts] == [200] * 5 + [404]
    assert [p.body["id"] for p in parts[:5]] == ids
    assert {h["name"] for h in parts[0].body["payload"]["headers"]} == {"From", "Subject"}
    stats = await mock.stats()
    # Each inner get is one charged call; the batch itself is one HTTP request.
    assert stats["calls"]["gmail.messages.get"] == 6
    assert stats["requests"]["gmail.batch"] == 1
    assert stats["quota_peaks"]["gmail.user"]["peak_units"] == 6 * 20


async def test_inner_calls_with_a_bad_token_are_inner_401(mock: Mock) -> None:
    creds = await mock.create("gmail", messages=3)
    headers = await mock.login(creds)
    mid = (await mock.listing(creds["address"]))[0]["id"]
    body = client_batch.encode([f"/gmail/v1/users/me/messages/{mid}"], "b", "Bearer nope")
    r = await _post(mock, body, "b", headers)
    (part,) = client_batch.decode(r.headers["content-type"], r.content)
    assert part.status == 401 and part.body["error"]["status"] == "UNAUTHENTICATED"


async def test_more_than_100_parts_is_a_400(mock: Mock) -> None:
    creds = await mock.create("gmail", messages=3)
    headers = await mock.login(creds)
    paths = [f"/gmail/v1/users/me/messages/{i:016x}" for i in range(101)]
    r = await _post(mock, client_batch.encode(paths, "b", headers["Authorization"]), "b", {})
    assert r.status_code == 400
    assert "100" in r.json()["error"]["message"]
    assert (await mock.stats())["calls"] == {}


async def test_malformed_batches_are_400(mock: Mock) -> None:
    r = await mock.client.post(
        "/batch/gmail/v1", content=b"x", headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 400
    r = await _post(mock, b"--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b--", "b", {})
    assert r.status_code == 400 and "part 1" in r.json()["error"]["message"]


async def test_inner_calls_are_throttled_one_by_one(mock: Mock) -> None:
    await mock.config({"quotas": {"custom": {"gmail.user": {"limit": 60, "period_s": 60}}}})
    creds = await mock.create("gmail", messages=10)
    headers = await mock.login(creds)
    ids = [m["id"] for m in await mock.listing(creds["address"])][:5]
    paths = [f"/gmail/v1/users/me/messages/{mid}?format=minimal" for mid in ids]
    r = await _post(mock, client_batch.encode(paths, "b", headers["Authorization"]), "b", {})
    parts = client_batch.decode(r.headers["content-type"], r.content)
    # messages.get costs 20 units under the documented preset: three fit in 60.
    assert [p.status for p in parts] == [200, 200, 200, 429, 429]
    assert parts[3].headers["retry-after"] == "60"
    assert parts[3].body["error"]["errors"][0]["reason"] == "rateLimitExceeded"
    assert (await mock.stats())["throttled"] == {"gmail.user": 2}
