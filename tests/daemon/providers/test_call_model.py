"""The call model the simulator counts with (``policy.sync_calls``) matches what the Gmail
and Graph providers really send, for full and incremental syncs of several sizes."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from typing import Any

import pytest

from daemon.oauth import MailboxTokens, OAuthClient, TokenCache
from daemon.policy import FetchShape, SyncKind, sync_calls
from daemon.providers.base import Credentials, MailboxContext, Provider
from daemon.providers.gmail import GmailProvider
from daemon.providers.graph import GraphProvider
from daemon.ratelimit import CountingGate
from daemon.settings import GmailSettings, GraphSettings, OAuthProviderSettings
from loadtest.mock_providers.config import MockConfig
from loadtest.mock_providers.testing import MockHarness

BASE = "http://mock.test"


@pytest.fixture
async def mock() -> AsyncIterator[MockHarness]:
    """An in-process mock without quotas (this test counts calls, not waits)."""
    async with MockHarness.start(MockConfig(seed=9, quotas={"enabled": False})) as m:  # type: ignore[arg-type]
        yield m


def _provider(mock: MockHarness, kind: str) -> tuple[Provider, OAuthProviderSettings]:
    if kind == "gmail":
        gs = GmailSettings(
            base_url=BASE,
            token_url=f"{BASE}/token",
            client_id="mock-gmail-client",
            client_secret="mock-gmail-secret",
        )  # type: ignore[arg-type]
        return GmailProvider(gs, mock.client, random.Random(1), mock.clock, mock.sleep), gs
    ms = GraphSettings(
        base_url=f"{BASE}/v1.0",
        token_url=f"{BASE}/common/oauth2/v2.0/token",
        client_id="mock-graph-client",
        client_secret="mock-graph-secret",
    )  # type: ignore[arg-type]
    return GraphProvider(ms, mock.client, random.Random(1), mock.clock, mock.sleep), ms


async def _sync(
    mock: MockHarness,
    kind: str,
    creds: dict[str, Any],
    sync: SyncKind,
    cursor: dict[str, Any] | None,
) -> tuple[CountingGate, Any]:
    provider, settings = _provider(mock, kind)
    secrets = Credentials({"refresh_token": creds["refresh_token"]})

    async def save(c: Credentials) -> None:
        pass

    gate = CountingGate()
    tokens = MailboxTokens(
        OAuthClient(kind, mock.client, settings, mock.clock),
        TokenCache(),
        1,
        secrets,
        save,
        mock.clock,
    )
    ctx = MailboxContext(1, creds["address"], secrets, {}, gate, save, tokens)
    result = await provider.sync(ctx, sync, cursor)
    return gate, result


def _model(
    kind: str, sync: SyncKind, messages: int, added: int = 0, changed: int = 0, deleted: int = 0
) -> tuple[dict[str, int], dict[str, int]]:
    calls = sync_calls(kind, sync, messages, added, changed, deleted)
    return ({c.method: c.count for c in calls}, {c.method: c.requests for c in calls})


@pytest.mark.parametrize("size", [0, 37, 500, 1234])
async def test_gmail_full_and_incremental(mock: MockHarness, size: int) -> None:
    creds = await mock.create("gmail", messages=size, seed=size + 1)
    gate, result = await _sync(mock, "gmail", creds, SyncKind.FULL, None)
    assert (gate.by_method, gate.requests) == _model("gmail", SyncKind.FULL, size)
    assert len(result.upserts) == size
    if size:
        await mock.control(creds["address"], "deliver", {"count": 7})
        await mock.control(creds["address"], "flags", {"count": 2, "read": True})
    gate, result = await _sync(mock, "gmail", creds, SyncKind.INCREMENTAL, result.cursor)
    added = 7 if size else 0
    changed = 2 if size else 0
    assert (gate.by_method, gate.requests) == _model(
        "gmail", SyncKind.INCREMENTAL, size + added, added, changed
    )


@pytest.mark.parametrize("size", [0, 37, 450, 1234])
async def test_graph_full_and_incremental(mock: MockHarness, size: int) -> None:
    creds = await mock.create("graph", messages=size, seed=size + 2)
    listing = await mock.listing(creds["address"])
    synced = [m for m in listing if m["folder"] in ("inbox", "sentitems")]
    per_folder = {f: sum(1 for m in synced if m["folder"] == f) for f in ("inbox", "sentitems")}
    gate, result = await _sync(mock, "graph", creds, SyncKind.FULL, None)
    # The model spreads messages evenly over folders; the real split is uneven, so
    # compare with the model applied to each folder on its own.
    one_folder = FetchShape(graph_folders=("inbox",))
    expected = sum(
        sync_calls("graph", SyncKind.FULL, n, shape=one_folder)[0].requests
        for n in per_folder.values()
    )
    assert gate.requests == {"messages.delta": expected}
    assert len(result.upserts) == len(synced)
    await mock.control(creds["address"], "deliver", {"count": 3})
    gate, _ = await _sync(mock, "graph", creds, SyncKind.INCREMENTAL, result.cursor)
    assert (gate.by_method, gate.requests) == _model("graph", SyncKind.INCREMENTAL, size + 3, 3)
