"""Graph folders against the mock, results applied to the real PostgreSQL store as the worker
applies them: a message moved while a sync runs ends up stored in its new folder whatever
order the folders are read in; narrowing and widening re-file the store; garbage folder
lists are named."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import httpx
import pytest

from daemon.errors import BadResponse
from daemon.oauth import MailboxTokens, OAuthClient, TokenCache
from daemon.policy import SyncKind
from daemon.provider_settings import GraphSettings
from daemon.providers.base import Credentials, MailboxContext, SyncResult
from daemon.providers.graph import GraphProvider
from daemon.providers.graph_folders import SEARCH_FOLDER, parse_folder
from daemon.ratelimit import CountingGate
from daemon.store.mailboxes import MailboxStore
from daemon.store.messages import apply_result
from loadtest.mock_providers.config import MockConfig
from loadtest.mock_providers.testing import MockHarness

BASE = "http://mock.test"


@pytest.fixture
async def mock() -> AsyncIterator[MockHarness]:
    """An in-process mock without quotas."""
    async with MockHarness.start(MockConfig(seed=3, quotas={"enabled": False})) as m:  # type: ignore[arg-type]
        yield m


class Syncer:
    """Runs the Graph provider for one mailbox and commits each result to PostgreSQL."""

    def __init__(self, mock: MockHarness, db: asyncpg.Pool, creds: dict[str, Any]) -> None:
        settings = GraphSettings(
            base_url=f"{BASE}/v1.0",
            token_url=f"{BASE}/common/oauth2/v2.0/token",
            client_id=creds["client_id"],
            client_secret=creds["client_secret"],
        )  # type: ignore[call-arg]
        self.settings = settings
        self.provider = GraphProvider(
            settings, mock.client, random.Random(1), mock.clock, mock.sleep
        )
        self.mock = mock
        self.db = db
        self.creds = creds
        self.secrets = Credentials({"refresh_token": creds["refresh_token"]})
        self.cache = TokenCache()
        self.cursor: dict[str, Any] | None = None
        self.mailbox_id = 0

    async def save(self, c: Credentials) -> None:
        self.secrets = c

    async def sync(self, config: dict[str, Any]) -> SyncResult:
        tokens = MailboxTokens(
            OAuthClient("graph", self.mock.client, self.settings, self.mock.clock),
            self.cache,
            1,
            self.secrets,
            self.save,
            self.mock.clock,
        )
        ctx = MailboxContext(
            1, self.creds["address"], self.secrets, config, CountingGate(), self.save, tokens
        )
        kind = SyncKind.FULL if self.cursor is None else SyncKind.INCREMENTAL
        result = await self.provider.sync(ctx, kind, self.cursor)
        async with self.db.acquire() as conn, conn.transaction():
            await apply_result(conn, self.mailbox_id, result)
        self.cursor = result.cursor
        return result

    async def stored(self) -> dict[str, str]:
        rows = await self.db.fetch(
            "SELECT provider_id, folder FROM messages WHERE mailbox_id = $1", self.mailbox_id
        )
        return {r["provider_id"]: r["folder"] for r in rows}


def after_round_of(
    mock: MockHarness, folder_ref: str, action: Callable[[], Awaitable[None]]
) -> None:
    """Run ``action`` once, right after the first delta page of ``folder_ref`` is answered
    (the folder's whole round: it fits one page)."""
    done = False

    async def hook(response: httpx.Response) -> None:
        nonlocal done
        path = response.request.url.path
        if not done and f"/mailFolders/{folder_ref}/messages/delta" in path:
            done = True
            await action()

    mock.client.event_hooks["response"].append(hook)


async def _setup(mock: MockHarness, db: asyncpg.Pool) -> tuple[Syncer, str, dict[str, str]]:
    creds = await mock.create("graph", messages=60, seed=8)
    address = creds["address"]
    store = MailboxStore(db)
    tenant = await store.create_tenant("moves")
    row = await store.create_mailbox(tenant["id"], "graph", address, b"x")
    syncer = Syncer(mock, db, creds)
    syncer.mailbox_id = int(row["id"])
    folders = {f["wellKnownName"]: f["id"] for f in await mock.folders(address)}
    return syncer, address, folders


# Narrowed to Archive then Inbox, or the whole mailbox (listed by name: Archive before Inbox).
CONFIGS = [{"folders": ["archive", "inbox"]}, {}]


@pytest.mark.parametrize("config", CONFIGS, ids=["narrowed", "whole"])
async def test_move_to_a_folder_read_later_in_the_same_sync(
    mock: MockHarness, db: asyncpg.Pool, config: dict[str, Any]
) -> None:
    syncer, address, folders = await _setup(mock, db)
    archived = [m["id"] for m in await mock.listing(address) if m["folder"] == "archive"]
    assert archived, "the seed puts some mail in Archive"
    moved = archived[0]

    async def move() -> None:
        await mock.control(address, "move", {"ids": [moved], "folder": "inbox"})

    # Archive is read before the move, Inbox after it: the first sync stores the message
    # under Inbox; the next one hears Archive's removal of it.
    ref = "archive" if config else folders["archive"]
    after_round_of(mock, ref, move)
    await syncer.sync(config)
    inbox = "inbox" if config else folders["inbox"]
    assert (await syncer.stored())[moved] == inbox
    second = await syncer.sync(config)
    assert second.kind is SyncKind.INCREMENTAL
    assert (await syncer.stored()).get(moved) == inbox, "Archive's removal kept the Inbox row"


@pytest.mark.parametrize("config", CONFIGS, ids=["narrowed", "whole"])
async def test_move_to_a_folder_read_earlier_in_the_same_sync(
    mock: MockHarness, db: asyncpg.Pool, config: dict[str, Any]
) -> None:
    syncer, address, folders = await _setup(mock, db)
    inboxed = [m["id"] for m in await mock.listing(address) if m["folder"] == "inbox"]
    moved = inboxed[0]

    async def move() -> None:
        await mock.control(address, "move", {"ids": [moved], "folder": "archive"})

    # Moved out of Inbox after Archive was read and before Inbox was: this sync sees it in
    # neither folder; the next one finds it in Archive.
    ref = "archive" if config else folders["archive"]
    after_round_of(mock, ref, move)
    await syncer.sync(config)
    assert moved not in await syncer.stored()
    await syncer.sync(config)
    archive = "archive" if config else folders["archive"]
    assert (await syncer.stored()).get(moved) == archive


async def test_narrowing_and_widening_refile_the_store(mock: MockHarness, db: asyncpg.Pool) -> None:
    syncer, address, folders = await _setup(mock, db)
    listing = await mock.listing(address)
    # A cursor of the old default (Inbox and Sent Items by name), then the whole mailbox:
    # every folder starts over, which makes it a full sync that re-files the rows by id.
    await syncer.sync({"folders": ["inbox", "sentitems"]})
    assert set((await syncer.stored()).values()) == {"inbox", "sentitems"}
    widened = await syncer.sync({})
    assert widened.kind is SyncKind.FULL and not widened.fell_back_to_full
    assert await syncer.stored() == {m["id"]: m["parentFolderId"] for m in listing}
    # Narrowed to Inbox: the other folders' messages leave the store.
    narrowed = await syncer.sync({"folders": ["inbox"]})
    assert narrowed.kind is SyncKind.FULL
    assert await syncer.stored() == {m["id"]: "inbox" for m in listing if m["folder"] == "inbox"}
    # Unchanged selection: incremental again, nothing to fetch.
    again = await syncer.sync({"folders": ["inbox"]})
    assert again.kind is SyncKind.INCREMENTAL and not again.upserts
    assert set(folders) >= {"inbox", "sentitems", "archive"}


async def test_a_garbage_folder_list_fails_the_sync_naming_the_call(
    mock: MockHarness, db: asyncpg.Pool
) -> None:
    syncer, _, _ = await _setup(mock, db)
    # Every provider call answers garbage (truncated JSON, HTML or JSON without its fields);
    # token calls stay sound.
    await mock.config({"faults": {"garbage_rate": 1.0}})
    messages = set()
    for _ in range(6):
        with pytest.raises(BadResponse) as err:
            await syncer.sync({})
        assert str(err.value).startswith("graph: mailFolders.list: ")
        messages.add(str(err.value))
    assert any("not JSON" in m for m in messages)
    assert any("field 'value' is missing" in m for m in messages)


@pytest.mark.parametrize(
    ("item", "problem"),
    [
        ("Inbox", "a folder is not an object"),
        ({"displayName": "Inbox", "childFolderCount": 0}, "field 'id' is missing"),
        ({"id": "A", "displayName": "Inbox"}, "field 'childFolderCount' is missing"),
        ({"id": "A", "childFolderCount": "2"}, "field 'childFolderCount' has type str"),
        ({"id": "A", "childFolderCount": -1}, "folder 'A' has a bad childFolderCount"),
        ({"id": "A", "childFolderCount": True}, "folder 'A' has a bad childFolderCount"),
    ],
)
def test_malformed_folders_are_named(item: object, problem: str) -> None:
    with pytest.raises(BadResponse, match=problem):
        parse_folder(item, "mailFolders.list")


def test_search_and_hidden_folders_are_not_synced() -> None:
    assert parse_folder({"id": "A", "displayName": "x", "childFolderCount": 2}, "w") == (
        "A",
        "x",
        2,
        True,
    )
    search = {"@odata.type": SEARCH_FOLDER, "id": "S", "childFolderCount": 0}
    assert parse_folder(search, "w")[3] is False
    assert parse_folder({"id": "H", "childFolderCount": 0, "isHidden": True}, "w")[3] is False
