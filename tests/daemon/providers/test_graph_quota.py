"""A Graph incremental sync passes the quota gates (real Redis) once for the calls it
expects, the root list and one delta page per folder of its last sync; calls past that
(a new folder) are admitted one by one."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from typing import Any

import pytest

from daemon.oauth import MailboxTokens, OAuthClient, TokenCache
from daemon.policy import SyncKind, get_quota_preset
from daemon.provider_settings import GraphSettings
from daemon.providers.base import Credentials, MailboxContext
from daemon.providers.graph import GraphProvider
from daemon.ratelimit import QuotaLimiters, account_key
from loadtest.mock_providers.config import MockConfig
from loadtest.mock_providers.testing import MockHarness

BASE = "http://mock.test"


@pytest.fixture
async def mock() -> AsyncIterator[MockHarness]:
    """An in-process mock; the daemon's own gates do the quota accounting here."""
    async with MockHarness.start(MockConfig(seed=5, quotas={"enabled": False})) as m:
        yield m


@pytest.fixture
async def limiters(redis_url: str, redis_prefix: str) -> AsyncIterator[QuotaLimiters]:
    limiters = QuotaLimiters(redis_url, redis_prefix, get_quota_preset("documented-2026"))
    yield limiters
    await limiters.aclose()


async def _sync(
    mock: MockHarness,
    limiters: QuotaLimiters,
    creds: dict[str, Any],
    kind: SyncKind,
    cursor: dict[str, Any] | None,
) -> tuple[int, int, dict[str, Any]]:
    """(admissions, calls, cursor) of one sync."""
    settings = GraphSettings(
        base_url=f"{BASE}/v1.0",
        token_url=f"{BASE}/common/oauth2/v2.0/token",
        client_id="mock-graph-client",
        client_secret="mock-graph-secret",
    )
    provider = GraphProvider(settings, mock.client, random.Random(1), mock.clock, mock.sleep)
    secrets = Credentials({"refresh_token": creds["refresh_token"]})

    async def save(c: Credentials) -> None:
        pass

    tokens = MailboxTokens(
        OAuthClient("graph", mock.client, settings, mock.clock),
        TokenCache(),
        1,
        secrets,
        save,
        mock.clock,
    )
    gate = limiters.gate("graph", account_key("graph", creds["address"]))
    ctx = MailboxContext(1, creds["address"], secrets, {}, gate, save, tokens)
    before = limiters.stats.admissions.get("graph", 0)
    result = await provider.sync(ctx, kind, cursor)
    return limiters.stats.admissions["graph"] - before, gate.calls, result.cursor


async def test_incremental_sync_admits_its_expected_calls_at_once(
    mock: MockHarness, limiters: QuotaLimiters
) -> None:
    creds = await mock.create("graph", messages=30, seed=5)
    full = await _sync(mock, limiters, creds, SyncKind.FULL, None)
    # Six well-known folders: one list, six delta rounds, each admitted alone.
    assert full[:2] == (7, 7)
    assert len(full[2]["folders"]) == 6
    admissions, calls, cursor = await _sync(mock, limiters, creds, SyncKind.INCREMENTAL, full[2])
    assert (admissions, calls) == (1, 7)
    # A folder made since: its first delta round is past the reservation.
    await mock.create_folder(creds["address"], "Projects")
    admissions, calls, cursor = await _sync(mock, limiters, creds, SyncKind.INCREMENTAL, cursor)
    assert (admissions, calls) == (2, 8)
    assert len(cursor["folders"]) == 7
