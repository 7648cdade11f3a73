"""One provider API call with the rules every HTTP provider shares.

Each attempt passes the mailbox's quota gate, carries a fresh-enough access token, and is
retried in-sync for transport errors, 5xx and throttling (honouring Retry-After) a bounded
number of times. Library errors become ``daemon.errors`` here, at the boundary.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from types import MappingProxyType
from typing import Any, ClassVar

import httpx

from daemon.errors import AuthRevoked, BadResponse, PermanentError, RateLimited, TransientError
from daemon.policy import DEFAULT_FETCH, FetchShape
from daemon.provider_settings import OAuthProviderSettings
from daemon.providers.base import MailboxContext, RequestObserver, ignore_request
from daemon.providers.httpclient import HttpClientLike, HttpResponse

Sleep = Callable[[float], Awaitable[None]]
# Decides whether a response is a throttle answer; returns True for "rate limited".
ThrottleTest = Callable[[HttpResponse], bool]


def retry_after_s(resp: HttpResponse, now: float) -> float | None:
    """Seconds the provider asks us to wait (Retry-After as seconds or HTTP date), if any."""
    return parse_retry_after(resp.headers.get("retry-after"), now)


def parse_retry_after(raw: str | None, now: float) -> float | None:
    """Seconds of a Retry-After value (seconds or an HTTP date); None when absent or garbage."""
    if raw is None:
        return None
    raw = raw.strip()
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        return max(0.0, float(parsedate_to_datetime(raw).timestamp()) - now)
    except (TypeError, ValueError):
        return None


def throttle_gives_up(attempt: int, wait: float | None, settings: OAuthProviderSettings) -> bool:
    """Whether a throttled call stops retrying in-sync: after ``max_call_retries`` retries,
    or at once when the provider asks for a wait beyond ``max_inline_wait_s`` (a worker is
    not held that long; the sync fails as rate-limited and is rescheduled after the wait).
    The same rule for a whole call and for the parts of a Gmail batch."""
    return attempt > settings.max_call_retries or (
        wait is not None and wait > settings.max_inline_wait_s
    )


def backoff_s(attempt: int, rng: random.Random, base: float = 0.5, cap: float = 8.0) -> float:
    """In-sync retry delay: exponential from ``base``, capped, half jittered."""
    ceiling = min(cap, base * 2.0 ** (attempt - 1))
    return ceiling / 2 + rng.random() * ceiling / 2


def json_object(resp: HttpResponse, provider: str, what: str) -> dict[str, Any]:
    """The response body as a JSON object; ``BadResponse`` naming ``what`` otherwise."""
    try:
        body = resp.json()
    except ValueError as exc:
        raise BadResponse(
            f"{what}: response body is not JSON", provider=provider, status=resp.status_code
        ) from exc
    if not isinstance(body, dict):
        raise BadResponse(
            f"{what}: response body is not a JSON object",
            provider=provider,
            status=resp.status_code,
        )
    return body


def field(
    obj: Mapping[str, Any],
    name: str,
    kind: type | tuple[type, ...],
    provider: str,
    what: str,
    default: Any = ...,
) -> Any:
    """``obj[name]`` checked against ``kind``; ``BadResponse`` naming the field otherwise."""
    if name not in obj or obj[name] is None:
        if default is not ...:
            return default
        raise BadResponse(f"{what}: field {name!r} is missing", provider=provider)
    value = obj[name]
    if not isinstance(value, kind):
        raise BadResponse(
            f"{what}: field {name!r} has type {type(value).__name__}", provider=provider
        )
    return value


@dataclass(frozen=True, slots=True)
class Again:
    """Send a request again: after ``wait_s``, or at once with a fresh token (``refresh``)."""

    wait_s: float
    refresh: bool = False


class HttpProvider:
    """What the REST providers share: one ``ApiClient`` over the process's HTTP client."""

    name: str = ""
    # Headers every call of this provider carries.
    headers: ClassVar[Mapping[str, str]] = MappingProxyType({})

    def __init__(
        self,
        settings: OAuthProviderSettings,
        http: HttpClientLike,
        rng: random.Random,
        clock: Callable[[], float],
        sleep: Sleep = asyncio.sleep,
        shape: FetchShape = DEFAULT_FETCH,
        observe: RequestObserver = ignore_request,
    ) -> None:
        self._base = settings.base_url.rstrip("/")
        self._shape = shape
        self._sleep = sleep
        self._rng = rng
        self._clock = clock
        self._api = ApiClient(
            self.name,
            http,
            settings,
            self.is_throttle,
            sleep,
            rng,
            clock,
            extra_headers=self.headers,
            observe=observe,
        )

    @staticmethod
    def is_throttle(resp: HttpResponse) -> bool:
        """Whether a response is the provider's "slow down"."""
        return resp.status_code == 429

    async def aclose(self) -> None:
        """The shared HTTP client is closed by its owner."""


class ApiClient:
    """Sends calls of one provider through gate, token and retry rules."""

    def __init__(
        self,
        provider: str,
        http: HttpClientLike,
        settings: OAuthProviderSettings,
        is_throttle: ThrottleTest,
        sleep: Sleep,
        rng: random.Random,
        clock: Callable[[], float],
        extra_headers: Mapping[str, str] | None = None,
        observe: RequestObserver = ignore_request,
    ) -> None:
        self.provider = provider
        self.http = http
        self.settings = settings
        self._is_throttle = is_throttle
        self._sleep = sleep
        self._rng = rng
        self._clock = clock
        self._headers = dict(extra_headers or {})
        self._observe = observe

    async def call(
        self,
        mailbox: MailboxContext,
        method: str,
        verb: str,
        url: str,
        *,
        count: int = 1,
        params: Any = None,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
        ok: tuple[int, ...] = (200,),
        pass_through: tuple[int, ...] = (),
        riders: Mapping[str, int] | None = None,
        resumed: Again | None = None,
    ) -> HttpResponse:
        """One logical call; returns a response whose status is in ``ok`` or ``pass_through``.

        ``method`` names the quota method (``history.list``); ``count`` the quota calls it
        carries (inner calls of a batch); ``riders`` inner calls of other methods in the
        same batch (``{method: count}``), charged with it at every send. ``resumed``: the
        request was already sent once inside a batch and judged to go again (its wait
        already taken), so that send counts towards the retries and a refused token is
        refreshed before this one.
        """
        refreshed = force = resumed is not None and resumed.refresh
        attempt = 0 if resumed is None else 1
        while True:
            attempt += 1
            await mailbox.gate.acquire(method, count)
            for rider, n in (riders or {}).items():
                await mailbox.gate.acquire(rider, n, requests=0)
            token = await mailbox.tokens.get(force_refresh=force)
            force = False
            hdrs = {**self._headers, **(headers or {}), "Authorization": f"Bearer {token}"}
            sent = time.perf_counter()
            try:
                resp = await self.http.request(
                    verb, url, params=params, headers=hdrs, content=content
                )
            except httpx.HTTPError as exc:
                if attempt > self.settings.max_call_retries:
                    raise TransientError(
                        f"{method}: {type(exc).__name__}: {exc}", provider=self.provider
                    ) from exc
                await self._sleep(backoff_s(attempt, self._rng))
                continue
            self._observe(self.provider, method, time.perf_counter() - sent)
            again = self.judge(mailbox, method, resp, attempt, refreshed, ok, pass_through)
            if again is None:
                return resp
            if again.refresh:
                refreshed = force = True
                continue
            await self._sleep(again.wait_s)

    def judge(
        self,
        mailbox: MailboxContext,
        method: str,
        resp: HttpResponse,
        attempt: int,
        refreshed: bool,
        ok: tuple[int, ...] = (200,),
        pass_through: tuple[int, ...] = (),
    ) -> Again | None:
        """What one answer means: None to use it, ``Again`` to send the request again, or
        the error it is (raised). The rule for a whole call and for each request inside a
        Graph JSON batch, so an inner status is handled as the same status of a call.

        ``attempt`` counts this request's sends so far; ``refreshed``: the token was already
        refreshed once for it.
        """
        status = resp.status_code
        if status in ok or status in pass_through:
            return None
        if status == 401 and not refreshed:
            return Again(0.0, refresh=True)
        if self._is_throttle(resp):
            wait = retry_after_s(resp, self._clock())
            mailbox.gate.throttled(wait)
            if throttle_gives_up(attempt, wait, self.settings):
                raise RateLimited(
                    f"{method}: throttled",
                    provider=self.provider,
                    status=status,
                    retry_after=wait,
                )
            return Again(wait if wait is not None else backoff_s(attempt, self._rng))
        if status >= 500:
            if attempt > self.settings.max_call_retries:
                raise TransientError(
                    f"{method}: server error", provider=self.provider, status=status
                )
            return Again(retry_after_s(resp, self._clock()) or backoff_s(attempt, self._rng))
        raise classify_client_error(self.provider, method, resp)


def classify_client_error(provider: str, method: str, resp: HttpResponse) -> Exception:
    """The error for an unexpected 4xx: auth problems need the user, others are permanent."""
    status = resp.status_code
    snippet = resp.text[:200].replace("\n", " ")
    if status == 401:
        return AuthRevoked(
            f"{method}: access token rejected after refresh", provider=provider, status=status
        )
    if status == 403:
        return PermanentError(
            f"{method}: access denied: {snippet}", provider=provider, status=status
        )
    if status in (404, 410):
        return PermanentError(f"{method}: not found: {snippet}", provider=provider, status=status)
    return BadResponse(
        f"{method}: unexpected HTTP {status}: {snippet}", provider=provider, status=status
    )
