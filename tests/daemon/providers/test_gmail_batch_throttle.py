"""Throttled parts of a Gmail batch follow the rule of a throttled call (in-process mock on
a manual clock: the provider's sleeps advance it, so waits cost no real time)."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from typing import Any

import pytest

from daemon.errors import RateLimited
from daemon.oauth import MailboxTokens, OAuthClient, TokenCache
from daemon.policy import SyncKind
from daemon.provider_settings import GmailSettings
from daemon.providers.base import Credentials, MailboxContext
from daemon.providers.gmail import GmailProvider
from daemon.ratelimit import CountingGate
from loadtest.mock_providers.config import MockConfig
from loadtest.mock_providers.testing import MockHarness

BASE = "http://mock.test"
MESSAGES = 25


@pytest.fixture
async def mock() -> AsyncIterator[MockHarness]:
    async with MockHarness.start(MockConfig(seed=7)) as harness:
        yield harness


async def _sync(mock: MockHarness, quota: dict[str, Any]) -> tuple[Any, CountingGate]:
    """A full sync of a 25-message mailbox under a legacy preset with ``quota`` per user."""
    await mock.config({"quotas": {"preset": "documented-legacy", "custom": {"gmail.user": quota}}})
    creds = await mock.create("gmail", messages=MESSAGES, seed=5)
    settings = GmailSettings(
        base_url=BASE,
        token_url=f"{BASE}/token",
        client_id=creds["client_id"],
        client_secret=creds["client_secret"],
    )
    provider = GmailProvider(settings, mock.client, random.Random(1), mock.clock, mock.sleep)
    secrets = Credentials({"refresh_token": creds["refresh_token"]})

    async def save(c: Credentials) -> None:
        return None

    tokens = MailboxTokens(
        OAuthClient("gmail", mock.client, settings, mock.clock),
        TokenCache(),
        1,
        secrets,
        save,
        mock.clock,
    )
    gate = CountingGate()
    ctx = MailboxContext(1, creds["address"], secrets, {}, gate, save, tokens)
    return await provider.sync(ctx, SyncKind.FULL, None), gate


async def test_a_retry_after_within_the_inline_limit_is_waited_out(mock: MockHarness) -> None:
    # 56 units per 30 s: profile, list and 10 gets fit; the other 15 are refused and
    # wait 30 s, then 11 fit and the last 4 wait another 30 s.
    result, gate = await _sync(mock, {"limit": 56, "period_s": 30})
    assert len(result.upserts) == MESSAGES
    assert gate.throttle_events == 15 + 4
    assert [d for d in mock.sleep.delays if d] == [30.0, 30.0]


async def test_a_retry_after_beyond_the_inline_limit_fails_without_waiting(
    mock: MockHarness,
) -> None:
    with pytest.raises(RateLimited) as info:
        await _sync(mock, {"limit": 56, "period_s": 90})
    assert info.value.retry_after == 90.0
    # Nothing slept: the worker is free at once.
    assert max(mock.sleep.delays, default=0.0) == 0.0
    assert (await mock.stats())["requests"]["gmail.batch"] == 1


async def test_throttled_parts_without_retry_after_end_rate_limited(mock: MockHarness) -> None:
    # Google's 403 usageLimits carries no Retry-After: short backoffs, then rate-limited
    # (not a transient error), as a throttled call ends.
    await mock.config({"quotas": {"gmail_style": "403"}})
    with pytest.raises(RateLimited) as info:
        await _sync(mock, {"limit": 56, "period_s": 3600})
    assert info.value.retry_after is None
    # One batch and max_call_retries (3) more, with backoffs of at most 8 s between them.
    assert (await mock.stats())["requests"]["gmail.batch"] == 4
    assert 0 < max(mock.sleep.delays) <= 8
