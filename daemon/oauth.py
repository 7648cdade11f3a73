"""OAuth2 refresh-token flow (Google and Microsoft identity platform) and a token cache."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from daemon.errors import AuthRevoked, BadResponse, TransientError
from daemon.provider_settings import OAuthProviderSettings
from daemon.providers.base import Credentials, RequestObserver, ignore_request
from daemon.providers.httpclient import HttpClientLike, HttpResponse

# Errors of the token endpoint that only the user can fix (RFC 6749 §5.2 and Microsoft's).
_USER_MUST_RECONNECT = {"invalid_grant", "interaction_required", "consent_required"}
# Refresh this long before expiry so a token never lapses mid-call.
EXPIRY_MARGIN_S = 120.0


@dataclass(frozen=True, slots=True)
class Grant:
    """An access token, when it expires (epoch seconds) and a rotated refresh token if any."""

    access_token: str
    expires_at: float
    refresh_token: str | None

    def __repr__(self) -> str:
        return f"Grant(access_token='***', expires_at={self.expires_at})"


class OAuthClient:
    """Talks to one provider's token endpoint."""

    def __init__(
        self,
        provider: str,
        http: HttpClientLike,
        settings: OAuthProviderSettings,
        clock: Callable[[], float],
        observe: RequestObserver = ignore_request,
    ) -> None:
        self.provider = provider
        self._http = http
        self._settings = settings
        self._clock = clock
        self._observe = observe

    async def refresh(self, refresh_token: str) -> Grant:
        """Trade a refresh token for an access token; ``AuthRevoked`` when it is dead."""
        form = {
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": self._settings.client_id,
            "client_secret": self._settings.client_secret.get_secret_value(),
        }
        if self._settings.scope:
            form["scope"] = self._settings.scope
        sent = time.perf_counter()
        try:
            resp = await self._http.post(self._settings.token_url, data=form)
            # Timed under the call model's name for it ("token"), as provider requests are.
            self._observe(self.provider, "token", time.perf_counter() - sent)
        except httpx.HTTPError as exc:
            raise TransientError(
                f"token endpoint unreachable: {type(exc).__name__}", provider=self.provider
            ) from exc
        body = _json_object(resp, self.provider)
        if resp.status_code >= 500:
            raise TransientError(
                "token endpoint error", provider=self.provider, status=resp.status_code
            )
        if resp.status_code != 200:
            error = str(body.get("error", "unknown"))
            detail = str(body.get("error_description", ""))[:200]
            if error in _USER_MUST_RECONNECT:
                raise AuthRevoked(
                    f"refresh token rejected: {error} {detail}".strip(),
                    provider=self.provider,
                    status=resp.status_code,
                )
            # invalid_client and friends: our app registration is wrong, not the user's grant.
            raise TransientError(
                f"token endpoint refused the app: {error} {detail}".strip(),
                provider=self.provider,
                status=resp.status_code,
            )
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            raise BadResponse("token response lacks access_token", provider=self.provider)
        try:
            expires_in = float(body.get("expires_in", 3600))
        except (TypeError, ValueError) as exc:
            raise BadResponse(
                "token response has a non-numeric expires_in", provider=self.provider
            ) from exc
        rotated = body.get("refresh_token")
        return Grant(
            token,
            self._clock() + expires_in,
            rotated if isinstance(rotated, str) and rotated else None,
        )


def _json_object(resp: HttpResponse, provider: str) -> dict[str, Any]:
    try:
        body = resp.json()
    except ValueError as exc:
        if resp.status_code >= 500:
            return {}
        raise BadResponse(
            f"token endpoint answered HTTP {resp.status_code} with non-JSON body",
            provider=provider,
            status=resp.status_code,
        ) from exc
    if not isinstance(body, dict):
        raise BadResponse(
            "token endpoint answered with a JSON value that is not an object",
            provider=provider,
            status=resp.status_code,
        )
    return body


class TokenCache:
    """Access tokens per mailbox in this process, least recently used evicted.

    An entry belongs to the credentials revision it was obtained under
    (``mailboxes.credentials_rev``, raised by every user update of the credentials, not by a
    provider's refresh-token rotation): after the user reconnected, maybe to another
    account, the old access token is never handed out for the mailbox again, while a token
    rotated by another process does not force a refresh here.
    """

    def __init__(self, max_entries: int = 100_000) -> None:
        self._entries: OrderedDict[int, tuple[int, Grant]] = OrderedDict()
        self._max = max_entries

    def get(self, mailbox_id: int, credentials_rev: int, now: float) -> Grant | None:
        """A grant of this credentials revision still valid for a while, or ``None``."""
        entry = self._entries.get(mailbox_id)
        if entry is None:
            return None
        rev, grant = entry
        if rev != credentials_rev:
            del self._entries[mailbox_id]  # made from credentials the user has replaced
            return None
        if grant.expires_at - EXPIRY_MARGIN_S <= now:
            return None
        self._entries.move_to_end(mailbox_id)
        return grant

    def put(self, mailbox_id: int, credentials_rev: int, grant: Grant) -> None:
        """Remember a grant obtained under credentials revision ``credentials_rev``."""
        self._entries[mailbox_id] = (credentials_rev, grant)
        self._entries.move_to_end(mailbox_id)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def drop(self, mailbox_id: int) -> None:
        """Forget a mailbox's token (it was rejected)."""
        self._entries.pop(mailbox_id, None)


class MailboxTokens:
    """The ``TokenSource`` of one mailbox during one sync."""

    def __init__(
        self,
        client: OAuthClient,
        cache: TokenCache,
        mailbox_id: int,
        credentials: Credentials,
        save: Callable[[Credentials], Awaitable[None]],
        clock: Callable[[], float],
        credentials_rev: int = 0,
    ) -> None:
        self._client = client
        self._cache = cache
        self._mailbox_id = mailbox_id
        self._rev = credentials_rev
        self._credentials = credentials
        self._save = save
        self._clock = clock
        self.refreshes = 0

    async def get(self, force_refresh: bool = False) -> str:
        """A valid access token, refreshed when expired or when ``force_refresh``."""
        refresh_token = self._credentials.get("refresh_token")
        if not refresh_token:
            raise AuthRevoked("mailbox has no refresh_token", provider=self._client.provider)
        if not force_refresh:
            cached = self._cache.get(self._mailbox_id, self._rev, self._clock())
            if cached is not None:
                return cached.access_token
        self._cache.drop(self._mailbox_id)
        grant = await self._client.refresh(refresh_token)
        self.refreshes += 1
        if grant.refresh_token and grant.refresh_token != refresh_token:
            # Microsoft rotates refresh tokens on every use: keep the newest at once.
            self._credentials = self._credentials.updated(refresh_token=grant.refresh_token)
            await self._save(self._credentials)
        self._cache.put(self._mailbox_id, self._rev, grant)
        return grant.access_token
