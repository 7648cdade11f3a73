"""The daemon's own Gmail and Graph providers against the mock, end to end in-process.

Checks that the mock speaks what the real clients expect: a full sync upserts exactly the
mock's messages, an incremental one exactly the changes, and an expired cursor falls back.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from daemon.oauth import MailboxTokens, OAuthClient, TokenCache
from daemon.policy import SyncKind
from daemon.provider_settings import GmailSettings, GraphSettings, OAuthProviderSettings
from daemon.providers.base import Credentials, MailboxContext, Provider
from daemon.providers.gmail import GmailProvider
from daemon.providers.graph import GraphProvider
from daemon.ratelimit import CountingGate
from loadtest.mock_providers.testing import MockHarness as Mock

BASE = "http://mock.test"


def _provider(
    mock: Mock, kind: str, creds: dict[str, Any]
) -> tuple[Provider, OAuthProviderSettings]:
    settings: OAuthProviderSettings
    if kind == "gmail":
        settings = GmailSettings(
            base_url=BASE,
            token_url=f"{BASE}/token",
            client_id=creds["client_id"],
            client_secret=creds["client_secret"],
        )
        return GmailProvider(
            settings, mock.client, random.Random(1), mock.clock, mock.sleep
        ), settings
    settings = GraphSettings(
        base_url=f"{BASE}/v1.0",
        token_url=f"{BASE}/common/oauth2/v2.0/token",
        client_id=creds["client_id"],
        client_secret=creds["client_secret"],
    )
    return GraphProvider(settings, mock.client, random.Random(1), mock.clock, mock.sleep), settings


@pytest.mark.parametrize("kind", ["gmail", "graph"])
async def test_full_incremental_and_expired_cursor_syncs(mock: Mock, kind: str) -> None:
    creds = await mock.create(kind, messages=120, seed=5)
    provider, settings = _provider(mock, kind, creds)
    secrets = Credentials({"refresh_token": creds["refresh_token"]})
    cache = TokenCache()

    async def save(c: Credentials) -> None:
        nonlocal secrets
        secrets = c

    def context() -> MailboxContext:
        tokens = MailboxTokens(
            OAuthClient(kind, mock.client, settings, mock.clock),
            cache,
            1,
            secrets,
            save,
            mock.clock,
        )
        return MailboxContext(1, creds["address"], secrets, {}, CountingGate(), save, tokens)

    # Both sync the whole mailbox by default.
    want = {m["id"] for m in await mock.listing(creds["address"])}
    full = await provider.sync(context(), SyncKind.FULL, None)
    assert {r.provider_id for r in full.upserts} == want
    assert not full.skipped

    added = (await mock.control(creds["address"], "deliver", {"count": 3}))["ids"]
    unread = [m["id"] for m in await mock.listing(creds["address"]) if not m["isRead"]]
    read = (await mock.control(creds["address"], "flags", {"ids": unread[3:5], "read": True}))[
        "ids"
    ]
    existing = sorted(want)[0]
    await mock.control(creds["address"], "delete", {"ids": [added[0], existing]})
    incr = await provider.sync(context(), SyncKind.INCREMENTAL, full.cursor)
    assert not incr.fell_back_to_full
    changed = {r.provider_id for r in incr.upserts} | {mid for mid, _ in incr.flag_updates}
    assert changed == set(added[1:]) | set(read)
    # Gmail's history shows the short-lived message's deletion too; Graph's delta skips a
    # message created and deleted within one round, and reports a removal from a folder.
    if kind == "gmail":
        assert set(incr.deletes) == {added[0], existing}
    else:
        folder = next(r.folder for r in full.upserts if r.provider_id == existing)
        assert (incr.deletes, incr.removals) == ([], [(existing, folder)])

    await mock.control(creds["address"], "expire-cursor")
    again = await provider.sync(context(), SyncKind.INCREMENTAL, incr.cursor)
    assert again.fell_back_to_full
    now = {m["id"] for m in await mock.listing(creds["address"])}
    assert {r.provider_id for r in again.upserts} == now
