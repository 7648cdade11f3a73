"""The call model the simulator counts with (``policy.sync_calls``) matches what the Gmail
and Graph providers really send, for full and incremental syncs of several sizes."""

from __future__ import annotations

import math
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest

from daemon.oauth import MailboxTokens, OAuthClient, TokenCache
from daemon.policy import DEFAULT_FETCH, FetchShape, SyncKind, graph_listing_calls, sync_calls
from daemon.provider_settings import GmailSettings, GraphSettings, OAuthProviderSettings
from daemon.providers.base import Credentials, MailboxContext, Provider
from daemon.providers.gmail import GmailProvider
from daemon.providers.graph import GraphProvider
from daemon.ratelimit import CountingGate
from loadtest.mock_providers.config import MockConfig
from loadtest.mock_providers.testing import MockHarness

BASE = "http://mock.test"


@pytest.fixture
async def mock() -> AsyncIterator[MockHarness]:
    """An in-process mock without quotas (this test counts calls, not waits)."""
    async with MockHarness.start(MockConfig(seed=9, quotas={"enabled": False})) as m:  # type: ignore[arg-type]
        yield m


def _provider(
    mock: MockHarness, kind: str, shape: FetchShape = DEFAULT_FETCH
) -> tuple[Provider, OAuthProviderSettings]:
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
    provider = GraphProvider(ms, mock.client, random.Random(1), mock.clock, mock.sleep, shape)
    return provider, ms


async def _sync(
    mock: MockHarness,
    kind: str,
    creds: dict[str, Any],
    sync: SyncKind,
    cursor: dict[str, Any] | None,
    shape: FetchShape = DEFAULT_FETCH,
) -> tuple[CountingGate, Any]:
    provider, settings = _provider(mock, kind, shape)
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
    kind: str,
    sync: SyncKind,
    messages: int,
    added: int = 0,
    changed: int = 0,
    deleted: int = 0,
    shape: FetchShape = DEFAULT_FETCH,
) -> tuple[dict[str, int], dict[str, int]]:
    calls = sync_calls(kind, sync, messages, added, changed, deleted, shape)
    # Calls riding in another method's batch take no request of their own.
    return (
        {c.method: c.count for c in calls},
        {c.method: c.requests for c in calls if c.requests},
    )


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


# Delta rounds of one folder on their own: no folder list, one folder.
ONE_FOLDER = FetchShape(graph_folders=1, graph_list_folders=False)


def _delta_requests(per_folder: dict[str, int]) -> int:
    """The model's delta requests of a full sync, folder by folder (the real split is uneven;
    the model spreads messages evenly)."""
    return sum(
        sync_calls("graph", SyncKind.FULL, n, shape=ONE_FOLDER)[0].requests
        for n in per_folder.values()
    )


@pytest.mark.parametrize("size", [0, 37, 450, 1234])
async def test_graph_full_and_incremental(mock: MockHarness, size: int) -> None:
    creds = await mock.create("graph", messages=size, seed=size + 2)
    listing = await mock.listing(creds["address"])
    # A new mailbox of the mock: the six well-known folders, none with child folders.
    shape = FetchShape(graph_folders=6, graph_parent_folders=0)
    per_folder = {f["id"]: 0 for f in await mock.folders(creds["address"])}
    for m in listing:
        per_folder[m["parentFolderId"]] += 1
    gate, result = await _sync(mock, "graph", creds, SyncKind.FULL, None)
    assert gate.requests == {"mailFolders.list": 1, "messages.delta": _delta_requests(per_folder)}
    listed = {c.method: c.requests for c in graph_listing_calls(shape)}
    assert {m: n for m, n in gate.requests.items() if m.startswith("mailFolders")} == listed
    assert len(result.upserts) == len(listing)
    await mock.control(creds["address"], "deliver", {"count": 3})
    gate, _ = await _sync(mock, "graph", creds, SyncKind.INCREMENTAL, result.cursor)
    assert (gate.by_method, gate.requests) == _model(
        "graph", SyncKind.INCREMENTAL, size + 3, 3, shape=shape
    )


async def test_graph_folder_tree_listing(mock: MockHarness) -> None:
    creds = await mock.create("graph", messages=40, seed=5)
    address = creds["address"]
    for name, parent, flags in [
        ("Projects", None, {}),
        ("2026", "Projects", {}),
        ("Q1", "Projects/2026", {}),
        ("Hidden", "Projects", {"hidden": True}),
        ("Clients", None, {}),
        *((c, "Clients", {}) for c in "ABCD"),
        ("Digest", "inbox", {"search": True}),
        ("Clutter", None, {"hidden": True}),
    ]:
        await mock.create_folder(address, name, parent, **flags)
    await mock.control(address, "deliver", {"count": 2, "folder": "Projects/2026/Q1"})
    await mock.control(address, "move", {"count": 3, "folder": "Clients/C"})
    folders = await mock.folders(address)
    synced = {f["id"] for f in folders if not f["isHidden"] and not f["search"]}
    # Folders with child folders, whose children are listed: Inbox (only a search folder),
    # Projects (one visible child, one hidden), Projects/2026, Clients.
    parents = 4
    assert len(synced) == 6 + 8
    per_folder = dict.fromkeys(synced, 0)
    for m in await mock.listing(address):
        per_folder[m["parentFolderId"]] += 1

    # Every level fits one page of 100: exactly the model's listing calls.
    gate, result = await _sync(mock, "graph", creds, SyncKind.FULL, None)
    shape = FetchShape(graph_folders=len(synced), graph_parent_folders=parents)
    listed = {c.method: c.requests for c in graph_listing_calls(shape)}
    assert listed == {"mailFolders.list": 1, "mailFolders.childFolders": parents}
    assert gate.requests == {**listed, "messages.delta": _delta_requests(per_folder)}
    assert {r.folder for r in result.upserts} == {f for f, n in per_folder.items() if n}
    assert set(result.cursor["folders"]) == synced

    # Three folders per page: the root's 8 visible folders take 3 pages, Clients' 4
    # children 2, the other parents 1 each. The 14 delta pages go in one JSON batch, each
    # charged.
    # The root's first page rides in that batch.
    small = FetchShape(graph_folder_page=3)
    gate, _ = await _sync(mock, "graph", creds, SyncKind.INCREMENTAL, result.cursor, small)
    assert gate.requests == {
        "mailFolders.list": math.ceil(8 / 3) - 1,
        "mailFolders.childFolders": 1 + 1 + 1 + math.ceil(4 / 3),
        "messages.delta": 1,
    }
    assert gate.by_method["messages.delta"] == len(synced)
    assert gate.by_method["mailFolders.list"] == math.ceil(8 / 3)
