"""The access-token cache: an entry only serves the credentials revision it came from, and a
refresh-token rotation by another process does not invalidate it."""

from __future__ import annotations

import time

import httpx

from daemon.oauth import Grant, MailboxTokens, OAuthClient, TokenCache
from daemon.provider_settings import GmailSettings, GraphSettings
from daemon.providers.base import Credentials
from tests.daemon.harness import MockServer


def test_cache_entry_belongs_to_its_credentials_revision() -> None:
    cache = TokenCache()
    grant = Grant("access-a", expires_at=1_000.0, refresh_token=None)
    cache.put(7, 0, grant)
    assert cache.get(7, 0, now=500.0) is grant
    assert cache.get(8, 0, now=500.0) is None  # another mailbox never gets it
    # Expiring soon (within the margin): refreshed, but the entry stays for its owner.
    assert cache.get(7, 0, now=900.0) is None
    assert cache.get(7, 0, now=500.0) is grant
    # The user replaced the mailbox's credentials: the old access token is gone for good.
    assert cache.get(7, 1, now=500.0) is None
    assert cache.get(7, 0, now=500.0) is None


async def _save(_c: Credentials) -> None:
    return None


async def test_credentials_update_never_reuses_the_old_access_token(
    mock_server: MockServer,
) -> None:
    await mock_server.reset()
    creds = await mock_server.populate(gmail=2, graph=0, seed=17)
    settings = GmailSettings(
        base_url=mock_server.url,
        token_url=f"{mock_server.url}/token",
        client_id="mock-gmail-client",
        client_secret="mock-gmail-secret",
    )
    cache = TokenCache()
    async with httpx.AsyncClient(timeout=10) as http:
        client = OAuthClient("gmail", http, settings, time.time)

        async def owner_of(refresh_token: str, rev: int) -> tuple[str, int]:
            secrets = Credentials({"refresh_token": refresh_token})
            tokens = MailboxTokens(client, cache, 1, secrets, _save, time.time, rev)
            token = await tokens.get()
            r = await http.get(
                f"{mock_server.url}/gmail/v1/users/me/profile",
                headers={"Authorization": f"Bearer {token}"},
            )
            assert r.status_code == 200, r.text
            return str(r.json()["emailAddress"]), tokens.refreshes

        first, second = creds[0], creds[1]
        assert await owner_of(first["refresh_token"], 0) == (first["address"], 1)
        assert await owner_of(first["refresh_token"], 0) == (first["address"], 0)  # cached
        # The user reconnected mailbox 1 to another account (revision 1): its token.
        assert await owner_of(second["refresh_token"], 1) == (second["address"], 1)


async def test_rotation_in_another_process_keeps_this_processs_token(
    mock_server: MockServer,
) -> None:
    await mock_server.reset()
    [creds] = await mock_server.populate(gmail=0, graph=1, seed=18)
    settings = GraphSettings(
        base_url=f"{mock_server.url}/v1.0",
        token_url=f"{mock_server.url}/common/oauth2/v2.0/token",
        client_id="mock-graph-client",
        client_secret="mock-graph-secret",
    )
    stored = Credentials({"refresh_token": creds["refresh_token"]})

    async def save(c: Credentials) -> None:
        nonlocal stored
        stored = c

    one, two = TokenCache(), TokenCache()  # two daemon processes
    async with httpx.AsyncClient(timeout=10) as http:
        client = OAuthClient("graph", http, settings, time.time)

        async def sync_on(cache: TokenCache) -> int:
            tokens = MailboxTokens(client, cache, 1, stored, save, time.time, 0)
            await tokens.get()
            return tokens.refreshes

        assert await sync_on(one) == 1
        rotated = stored["refresh_token"]
        assert rotated != creds["refresh_token"]  # Microsoft rotates on every refresh
        assert await sync_on(two) == 1 and stored["refresh_token"] != rotated
        # Back on the first process: its token is still valid and still this grant's.
        assert await sync_on(one) == 0
