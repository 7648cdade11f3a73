"""An incremental Graph sync sends its folders' delta pages in JSON batches (``$batch``):
the same result as one request per page, every inner request charged as a call, and each
inner answer (429 with Retry-After, 410, 5xx) handled as the same answer on its own."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from daemon.errors import BadResponse, RateLimited
from daemon.oauth import MailboxTokens, OAuthClient, TokenCache
from daemon.policy import DEFAULT_FETCH, FetchShape, SyncKind, sync_calls
from daemon.provider_settings import GraphSettings
from daemon.providers import graph_batch
from daemon.providers.base import Credentials, MailboxContext, SyncResult
from daemon.providers.graph import GraphProvider
from daemon.providers.httpclient import HttpClient, HttpClientLike
from daemon.ratelimit import CountingGate
from loadtest.mock_providers.config import MockConfig
from loadtest.mock_providers.testing import MockHarness
from tests.daemon.providers.http_servers import Server

BASE = "http://mock.test"
UNBATCHED = FetchShape(graph_batch=0)


@pytest.fixture
async def mock() -> AsyncIterator[MockHarness]:
    """An in-process mock without quotas or faults unless a test sets them."""
    async with MockHarness.start(MockConfig(seed=11, quotas={"enabled": False})) as m:  # type: ignore[arg-type]
        yield m


def _settings(base: str) -> GraphSettings:
    return GraphSettings(
        base_url=base,
        token_url=f"{BASE}/common/oauth2/v2.0/token",
        client_id="mock-graph-client",
        client_secret="mock-graph-secret",
    )  # type: ignore[arg-type]


@dataclass
class Synced:
    """The gate a sync went through and what it returned."""

    gate: CountingGate
    result: SyncResult


async def _sync(
    mock: MockHarness,
    creds: dict[str, Any],
    kind: SyncKind,
    cursor: dict[str, Any] | None,
    shape: FetchShape = DEFAULT_FETCH,
    *,
    http: HttpClientLike | None = None,
    base: str = f"{BASE}/v1.0",
    config: dict[str, Any] | None = None,
) -> Synced:
    settings = _settings(base)
    provider = GraphProvider(
        settings, http or mock.client, random.Random(1), mock.clock, mock.sleep, shape
    )
    secrets = Credentials({"refresh_token": creds["refresh_token"]})

    async def save(c: Credentials) -> None:
        pass

    gate = CountingGate()
    tokens = MailboxTokens(
        OAuthClient("graph", mock.client, settings, mock.clock), TokenCache(), 1, secrets, save,
        mock.clock,
    )  # fmt: skip
    ctx = MailboxContext(1, creds["address"], secrets, config or {}, gate, save, tokens)
    return Synced(gate, await provider.sync(ctx, kind, cursor))


def _same(a: SyncResult, b: SyncResult) -> None:
    assert (a.kind, a.cursor, a.upserts, a.removals, a.full_scopes, a.skipped) == (
        b.kind,
        b.cursor,
        b.upserts,
        b.removals,
        b.full_scopes,
        b.skipped,
    )
    assert a.fell_back_to_full == b.fell_back_to_full


async def _changed_mailbox(mock: MockHarness) -> tuple[dict[str, Any], dict[str, Any]]:
    """A Graph mailbox after its full sync, then changes in several folders; its cursor."""
    creds = await mock.create("graph", messages=60, seed=3)
    full = await _sync(mock, creds, SyncKind.FULL, None)
    address = creds["address"]
    await mock.control(address, "deliver", {"count": 12})
    await mock.control(address, "deliver", {"count": 2, "folder": "sentitems"})
    await mock.control(address, "flags", {"count": 4, "read": True})
    await mock.control(address, "move", {"count": 3, "folder": "archive"})
    await mock.control(address, "delete", {"count": 2})
    return creds, full.result.cursor


async def test_batched_sync_matches_unbatched(mock: MockHarness) -> None:
    creds, cursor = await _changed_mailbox(mock)
    # Five items per page: the changed folders take several pages, followed in batches.
    small = FetchShape(graph_page=5)
    plain = await _sync(
        mock, creds, SyncKind.INCREMENTAL, cursor, FetchShape(graph_page=5, graph_batch=0)
    )
    before = mock.svc.stats.requests["graph.$batch"]
    batched = await _sync(mock, creds, SyncKind.INCREMENTAL, cursor, small)
    _same(batched.result, plain.result)
    assert len(batched.result.upserts) >= 14 and batched.result.removals
    # The same calls charged; the pages of six folders in far fewer HTTP requests.
    assert batched.gate.by_method == plain.gate.by_method
    pages = plain.gate.by_method["messages.delta"]
    assert plain.gate.requests["messages.delta"] == pages > 6
    sent = mock.svc.stats.requests["graph.$batch"] - before
    assert batched.gate.requests["messages.delta"] == sent < pages
    # The mock charged each inner request as a call of its own.
    assert mock.svc.stats.calls["graph.messages.delta"] >= 2 * pages


async def test_quiet_sync_is_one_batch_as_the_call_model_says(mock: MockHarness) -> None:
    creds = await mock.create("graph", messages=30, seed=4)
    full = await _sync(mock, creds, SyncKind.FULL, None)
    await mock.control(creds["address"], "deliver", {"count": 3})
    inc = await _sync(mock, creds, SyncKind.INCREMENTAL, full.result.cursor)
    # The root folder list rides in the delta batch: one HTTP request in all.
    assert inc.gate.requests == {"messages.delta": 1}
    assert inc.gate.by_method == {"mailFolders.list": 1, "messages.delta": 6}
    model = sync_calls(
        "graph",
        SyncKind.INCREMENTAL,
        33,
        3,
        shape=FetchShape(graph_folders=6, graph_parent_folders=0),
    )
    assert {c.method: c.count for c in model} == inc.gate.by_method
    assert {c.method: c.requests for c in model if c.requests} == inc.gate.requests
    assert [r.provider_id for r in inc.result.upserts] and inc.result.kind is SyncKind.INCREMENTAL


async def test_inner_429_waits_its_retry_after_and_resends_only_it(mock: MockHarness) -> None:
    creds, cursor = await _changed_mailbox(mock)
    plain = await _sync(mock, creds, SyncKind.INCREMENTAL, cursor, UNBATCHED)
    # Five calls per 10 s per mailbox: the folder list and four delta pages pass; the other
    # two folders' pages are refused inside the 200 batch with Retry-After: 10.
    mock.clock.advance(600)
    mock.svc.update_config(
        {"quotas": {"enabled": True, "custom": {"graph.mailbox": {"limit": 5, "period_s": 10}}}}
    )
    mock.sleep.delays.clear()
    batched = await _sync(mock, creds, SyncKind.INCREMENTAL, cursor)
    _same(batched.result, plain.result)
    assert mock.svc.stats.throttled["graph.mailbox"] == 2
    assert mock.sleep.delays == [10.0]
    assert batched.gate.throttle_events == 2
    # Each resent request is charged again, as a retried call is.
    assert batched.gate.by_method["messages.delta"] == 6 + 2
    assert batched.gate.requests["messages.delta"] == 2


async def test_inner_429_beyond_the_inline_wait_fails_the_sync_as_rate_limited(
    mock: MockHarness,
) -> None:
    creds, cursor = await _changed_mailbox(mock)
    mock.clock.advance(600)
    mock.svc.update_config(
        {"quotas": {"enabled": True, "custom": {"graph.mailbox": {"limit": 3, "period_s": 300}}}}
    )
    with pytest.raises(RateLimited) as err:
        await _sync(mock, creds, SyncKind.INCREMENTAL, cursor)
    assert err.value.retry_after == 300.0


async def test_inner_5xx_is_retried_like_a_call(mock: MockHarness) -> None:
    creds, cursor = await _changed_mailbox(mock)
    plain = await _sync(mock, creds, SyncKind.INCREMENTAL, cursor, UNBATCHED)
    mock.svc.update_config({"faults": {"error_rate": 0.3}})
    batched = await _sync(mock, creds, SyncKind.INCREMENTAL, cursor)
    _same(batched.result, plain.result)
    assert sum(mock.svc.stats.injected_5xx.values()) > 0
    assert batched.gate.requests["messages.delta"] > 1


async def test_inner_410_restarts_those_folders(mock: MockHarness) -> None:
    creds, cursor = await _changed_mailbox(mock)
    await mock.control(creds["address"], "expire-cursor")
    plain = await _sync(mock, creds, SyncKind.INCREMENTAL, cursor, UNBATCHED)
    batched = await _sync(mock, creds, SyncKind.INCREMENTAL, cursor)
    _same(batched.result, plain.result)
    assert batched.result.fell_back_to_full and batched.result.kind is SyncKind.FULL
    # One batch of six 410s, then each folder's fresh round on its own.
    assert batched.gate.requests["messages.delta"] == 1 + 6
    assert plain.gate.requests["messages.delta"] == 6 + 6


async def test_more_folders_than_a_batch_go_in_several(mock: MockHarness) -> None:
    creds = await mock.create("graph", messages=40, seed=8)
    address = creds["address"]
    for i in range(19):
        await mock.create_folder(address, f"Project {i:02d}")
    await mock.control(address, "deliver", {"count": 3, "folder": "Project 07"})
    full = await _sync(mock, creds, SyncKind.FULL, None)
    folders = len(full.result.cursor["folders"])
    assert folders == 6 + 19
    await mock.control(address, "deliver", {"count": 2, "folder": "Project 18"})
    plain = await _sync(mock, creds, SyncKind.INCREMENTAL, full.result.cursor, UNBATCHED)
    before = mock.svc.stats.requests["graph.$batch"]
    batched = await _sync(mock, creds, SyncKind.INCREMENTAL, full.result.cursor)
    _same(batched.result, plain.result)
    assert mock.svc.stats.requests["graph.$batch"] - before == 2
    assert batched.gate.requests["messages.delta"] == 2
    assert batched.gate.by_method["messages.delta"] == folders


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"<html>gateway</html>", "not JSON"),
        (b'{"value": []}', "no 'responses' list"),
        (b'{"responses": [{"id": "0", "status": 200, "body": {}}]}', "no answer to ids ['1']"),
        (b'{"responses": [{"id": "7", "status": 200}]}', "unknown id '7'"),
        (
            b'{"responses": [{"id": "0", "status": "OK"}, {"id": "1", "status": 200}]}',
            "no HTTP status",
        ),
        (b'{"responses": [{"id": "0", "status": 200}, {"id": "0", "status": 200}]}', "two answers"),
        (
            b'{"responses": [{"id": "0", "status": 429, "headers": {"Retry-After": 5}}, {"id": "1", "status": 200}]}',
            "not strings",
        ),
    ],
)
def test_garbage_batch_bodies_are_bad_responses(body: bytes, problem: str) -> None:
    resp = httpx.Response(200, content=body)
    with pytest.raises(BadResponse, match="\\$batch") as err:
        graph_batch.decode(resp, ["0", "1"])
    assert problem in str(err.value)


def test_answers_match_requests_by_id_in_any_order() -> None:
    body = (
        b'{"responses": [{"id": "1", "status": 429, "headers": {"Retry-After": "7"}},'
        b' {"id": "0", "status": 200, "body": {"value": []}}]}'
    )
    got = graph_batch.decode(httpx.Response(200, content=body), ["0", "1"])
    assert got["0"].status_code == 200 and got["0"].json() == {"value": []}
    assert got["1"].status_code == 429 and got["1"].headers["retry-after"] == "7"
    with pytest.raises(ValueError):
        got["1"].json()
    with pytest.raises(ValueError):
        graph_batch.encode([(str(i), "/me", {}) for i in range(21)])


async def test_garbage_batch_over_real_http_fails_the_sync_storing_nothing(
    mock: MockHarness,
) -> None:
    creds = await mock.create("graph", messages=10, seed=9)
    # A server that answers every request 200 with its path as text: not a batch answer.
    async with Server("answer") as server, HttpClient(4, 5.0) as http:
        base = server.url("/v1.0").rstrip("/")
        cursor = {
            "folders": {
                name: f"{base}/me/mailFolders/{name}/messages/delta?$deltatoken=t{name}"
                for name in ("inbox", "archive")
            }
        }
        config = {"folders": ["inbox", "archive"]}
        with pytest.raises(BadResponse, match="\\$batch: response body is not JSON"):
            await _sync(
                mock, creds, SyncKind.INCREMENTAL, cursor, http=http, base=base, config=config
            )


class _ListRefused:
    """Graph as the mock serves it, except that the root folder list's first ``times``
    sends (inside a batch or alone) are answered ``status`` with ``headers``; Graph judges
    inner requests one by one, so the batch's other answers stand. Records the access
    token each send of the list carried."""

    def __init__(
        self, inner: HttpClientLike, status: int, headers: dict[str, str], times: int
    ) -> None:
        self._inner = inner
        self._status, self._headers, self._times = status, headers, times
        self.tokens: list[str] = []

    def _refuse(self, headers: Mapping[str, str]) -> bool:
        self.tokens.append(headers["Authorization"])
        return len(self.tokens) <= self._times

    async def request(
        self,
        method: str,
        url: str,
        *,
        params: Any = None,
        headers: Any = None,
        content: bytes | None = None,
    ) -> Any:
        resp = await self._inner.request(
            method, url, params=params, headers=headers, content=content
        )
        if "/me/mailFolders?$top=" in url:
            if self._refuse(headers):
                return httpx.Response(self._status, headers=self._headers, json={})
            return resp
        if not url.endswith("/$batch"):
            return resp
        body = resp.json()
        for answer in body["responses"]:
            if answer["id"] == "folders" and self._refuse(headers):
                answer.update(status=self._status, headers=self._headers, body=None)
        return httpx.Response(200, json=body)

    async def post(self, url: str, *, data: Any = None) -> Any:
        return await self._inner.post(url, data=data)


async def test_root_list_rides_in_the_first_batch_and_goes_alone_when_throttled(
    mock: MockHarness,
) -> None:
    creds, cursor = await _changed_mailbox(mock)
    plain = await _sync(mock, creds, SyncKind.INCREMENTAL, cursor, UNBATCHED)
    assert plain.gate.requests["mailFolders.list"] == 1
    before = mock.svc.stats.requests["graph.$batch"]
    batched = await _sync(mock, creds, SyncKind.INCREMENTAL, cursor)
    _same(batched.result, plain.result)
    assert "mailFolders.list" not in batched.gate.requests
    assert batched.gate.by_method["mailFolders.list"] == 1
    assert (
        mock.svc.stats.requests["graph.$batch"] - before == batched.gate.requests["messages.delta"]
    )

    mock.sleep.delays.clear()
    throttling = _ListRefused(mock.client, 429, {"Retry-After": "2"}, times=1)
    again = await _sync(mock, creds, SyncKind.INCREMENTAL, cursor, http=throttling)
    _same(again.result, plain.result)
    assert len(throttling.tokens) == 2 and again.gate.throttle_events == 1
    # The list waited its Retry-After, then went on its own, charged again.
    assert mock.sleep.delays[:1] == [2.0]
    assert again.gate.requests["mailFolders.list"] == 1
    assert again.gate.by_method["mailFolders.list"] == 2


async def test_root_list_sent_in_the_lead_batch_counts_towards_its_retries(
    mock: MockHarness,
) -> None:
    creds, cursor = await _changed_mailbox(mock)
    retries = _settings(f"{BASE}/v1.0").max_call_retries
    always = _ListRefused(mock.client, 429, {"Retry-After": "1"}, times=100)
    with pytest.raises(RateLimited):
        await _sync(mock, creds, SyncKind.INCREMENTAL, cursor, http=always)
    # The send in the batch and max_call_retries more alone, as for a list sent alone.
    assert len(always.tokens) == 1 + retries


async def test_root_list_refused_token_in_the_lead_batch_goes_again_with_a_fresh_one(
    mock: MockHarness,
) -> None:
    creds, cursor = await _changed_mailbox(mock)
    plain = await _sync(mock, creds, SyncKind.INCREMENTAL, cursor, UNBATCHED)
    refused = _ListRefused(mock.client, 401, {}, times=1)
    again = await _sync(mock, creds, SyncKind.INCREMENTAL, cursor, http=refused)
    _same(again.result, plain.result)
    assert len(refused.tokens) == 2 and refused.tokens[0] != refused.tokens[1]


async def test_folder_deleted_since_the_last_sync_drops_its_early_page(
    mock: MockHarness,
) -> None:
    creds, cursor = await _changed_mailbox(mock)
    address = creds["address"]
    await mock.create_folder(address, "Receipts")
    await mock.control(address, "deliver", {"count": 2, "folder": "Receipts"})
    full = await _sync(mock, creds, SyncKind.FULL, None)
    cursor = full.result.cursor
    folders = await mock.folders(address)
    receipts = next(f["id"] for f in folders if f["displayName"] == "Receipts")
    await mock.delete_folder(address, "Receipts")
    await mock.control(address, "deliver", {"count": 3})
    plain = await _sync(mock, creds, SyncKind.INCREMENTAL, cursor, UNBATCHED)
    batched = await _sync(mock, creds, SyncKind.INCREMENTAL, cursor)
    _same(batched.result, plain.result)
    assert (
        receipts in batched.result.full_scopes and receipts not in batched.result.cursor["folders"]
    )
    # Its first page went in the lead batch with the others' and was charged, then dropped.
    assert batched.gate.requests == {"messages.delta": 1}
    assert batched.gate.by_method["messages.delta"] == len(cursor["folders"])
    assert plain.gate.by_method["messages.delta"] == len(cursor["folders"]) - 1
