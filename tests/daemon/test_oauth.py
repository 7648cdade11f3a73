"""The access-token cache: an entry only ever serves the refresh token it was obtained with."""

from __future__ import annotations

import time

import httpx

from daemon.oauth import Grant, MailboxTokens, OAuthClient, TokenCache
from daemon.providers.base import Credentials
from daemon.settings import GmailSettings
from tests.daemon.harness import MockServer


def test_cache_entry_belongs_to_its_refresh_token() -> None:
    cache = TokenCache(digest_key=bytes(32))
    grant = Grant("access-a", expires_at=1_000.0, refresh_token=None)
    cache.put(7, "refresh-a", grant)
    assert cache.get(7, "refresh-a", now=500.0) is grant
    assert cache.get(8, "refresh-a", now=500.0) is None  # another mailbox, same grant: no
    # Expiring soon (within the margin): refreshed, but the entry stays for its owner.
    assert cache.get(7, "refresh-a", now=900.0) is None
    assert cache.get(7, "refresh-a", now=500.0) is grant
    # The mailbox's credentials changed: the old access token is gone for good.
    assert cache.get(7, "refresh-b", now=500.0) is None
    assert cache.get(7, "refresh-a", now=500.0) is None
    assert "refresh-a" not in repr(cache._entries)  # only a keyed digest is kept


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

        async def owner_of(refresh_token: str) -> tuple[str, int]:
            tokens = MailboxTokens(
                client, cache, 1, Credentials({"refresh_token": refresh_token}), _save, time.time
            )
            token = await tokens.get()
            r = await http.get(
                f"{mock_server.url}/gmail/v1/users/me/profile",
                headers={"Authorization": f"Bearer {token}"},
            )
            assert r.status_code == 200, r.text
            return str(r.json()["emailAddress"]), tokens.refreshes

        first, second = creds[0], creds[1]
        assert await owner_of(first["refresh_token"]) == (first["address"], 1)
        assert await owner_of(first["refresh_token"]) == (first["address"], 0)  # cached
        # The user reconnected mailbox 1 to another account: its token, not the cached one.
        assert await owner_of(second["refresh_token"]) == (second["address"], 1)
