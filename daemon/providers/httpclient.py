"""The providers' HTTP client: aiohttp underneath, httpx's errors at the boundary.

Gmail, Graph and their token endpoints are called through ``HttpClient``: ``request`` and
``post`` as httpx's ``AsyncClient`` spells them, answers as a ``Response`` with httpx's
``status_code``, ``headers``, ``content``, ``text`` and ``json()``. Underneath is aiohttp,
whose HTTP parser is in C: a request cost about a sixth of the CPU httpx's pure-Python
stack (client, httpcore, h11) spent on it (docs/daemon.md, "Where the CPU goes").

Callers catch ``httpx.HTTPError`` as before: every aiohttp failure is re-raised as the
httpx error httpx itself raises for the same failure (refused or unverifiable connection:
``ConnectError``; silent server: ``ReadTimeout``; connection closed mid-answer:
``RemoteProtocolError``), chained to aiohttp's with ``raise ... from``.

Anything ``HttpClientLike`` will do for a provider: tests hand providers an httpx client
over the in-process mock.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import urllib.request
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Protocol

import aiohttp
import httpx
from multidict import CIMultiDictProxy
from yarl import URL


class HttpResponse(Protocol):
    """What providers read of an answer (httpx's ``Response`` has it too)."""

    @property
    def status_code(self) -> int:
        """The HTTP status."""
        ...

    @property
    def headers(self) -> Mapping[str, str]:
        """Response headers, looked up case-insensitively."""
        ...

    @property
    def content(self) -> bytes:
        """The body."""
        ...

    @property
    def text(self) -> str:
        """The body decoded."""
        ...

    def json(self) -> Any:
        """The body parsed as JSON; ``ValueError`` when it is not."""
        ...


class HttpClientLike(Protocol):
    """What providers and the OAuth client call (httpx's ``AsyncClient`` has it too)."""

    async def request(
        self,
        method: str,
        url: str,
        *,
        params: Any = None,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
    ) -> HttpResponse:
        """Send one request and read the whole answer."""
        ...

    async def post(self, url: str, *, data: Mapping[str, str] | None = None) -> HttpResponse:
        """POST a form."""
        ...


class Response:
    """A whole answer, read before the connection went back to the pool."""

    __slots__ = ("_charset", "content", "headers", "status_code")

    def __init__(
        self, status: int, headers: CIMultiDictProxy[str], body: bytes, charset: str | None
    ) -> None:
        self.status_code = status
        self.headers = headers
        self.content = body
        self._charset = charset

    @property
    def text(self) -> str:
        """The body decoded with its declared charset (UTF-8 when none), as httpx does."""
        return self.content.decode(self._charset or "utf-8", errors="replace")

    def json(self) -> Any:
        """The body as JSON (``ValueError`` when it is not)."""
        return json.loads(self.content)


def _url(raw: str) -> URL:
    # Sent as given, like httpx does with a valid URL: deltaLinks and nextLinks come encoded
    # from the provider, and requoting them could change a token. Anything else is quoted.
    if raw.isascii() and raw.isprintable() and " " not in raw:
        return URL(raw, encoded=True)
    return URL(raw)


def _as_httpx(exc: Exception) -> httpx.HTTPError:
    """The httpx error httpx raises for the same failure (see the module's docstring)."""
    msg = str(exc) or type(exc).__name__
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return httpx.ConnectTimeout(msg)
    if isinstance(exc, (aiohttp.ServerTimeoutError, asyncio.TimeoutError)):
        return httpx.ReadTimeout(msg)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return httpx.ConnectError(msg)
    if isinstance(exc, (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError)):
        return httpx.RemoteProtocolError(msg)
    if isinstance(exc, aiohttp.ClientResponseError):
        # A malformed status line or headers.
        return httpx.RemoteProtocolError(msg)
    if isinstance(exc, (aiohttp.ClientOSError, OSError)):
        return httpx.ReadError(msg)
    if isinstance(exc, (aiohttp.InvalidURL, ValueError)):
        return httpx.UnsupportedProtocol(msg)
    return httpx.TransportError(msg)


class HttpClient:
    """One provider's client, shared by all its mailboxes and tenants.

    It carries nothing of one mailbox into another's requests: the Authorization header is
    set per request and cookies are refused (a cookie the provider or its token endpoint set
    for one mailbox would otherwise go out with every other mailbox's requests). Connections
    are pooled by aiohttp per scheme, host, port and TLS context; at most
    ``max_connections`` at once. ``verify`` is httpx's: True checks servers against httpx's
    CA bundle, an ``ssl.SSLContext`` is used as given. Redirects are not followed (httpx's
    default). The aiohttp session is made on first use, inside the event loop.
    """

    def __init__(
        self,
        max_connections: int,
        timeout_s: float,
        verify: ssl.SSLContext | bool = True,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self._max = max_connections
        # Connect (pool wait included), each read, and the TCP connect: httpx's Timeout(t).
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=timeout_s, sock_connect=timeout_s, sock_read=timeout_s
        )
        # One context for every connection: each costs about a megabyte.
        tls = verify if isinstance(verify, ssl.SSLContext) else httpx.create_ssl_context(verify)
        self._tls = tls
        self._headers = dict(headers or {})
        self._session: aiohttp.ClientSession | None = None
        self._env_proxies = urllib.request.getproxies_environment()
        # (scheme, host) -> its proxy, or None to connect directly.
        self._proxies: dict[tuple[str, str], URL | None] = {}

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(limit=self._max, limit_per_host=0, ssl=self._tls)
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=self._timeout,
            headers=self._headers,
            cookie_jar=aiohttp.DummyCookieJar(),
            # aiohttp's trust_env reads netrc and the proxy variables in a thread on every
            # request (a quarter of the daemon's CPU); the proxies are looked up once per
            # host instead (``_proxy``), and no netrc: httpx reads none either.
            trust_env=False,
        )
        return self._session

    def _proxy(self, url: URL) -> URL | None:
        """The proxy of ``url``'s scheme and host from the environment (``HTTPS_PROXY``,
        ``NO_PROXY``...), read when the client was made, as httpx does."""
        key = (url.scheme, url.host or "")
        if key not in self._proxies:
            proxy = self._env_proxies.get(url.scheme)
            bypass = proxy is None or bool(urllib.request.proxy_bypass(key[1]))
            self._proxies[key] = None if bypass or proxy is None else URL(proxy)
        return self._proxies[key]

    @property
    def cookies(self) -> int:
        """Cookies kept: always none (see the class docstring)."""
        return 0 if self._session is None else len(self._session.cookie_jar)

    async def request(
        self,
        method: str,
        url: str,
        *,
        params: Any = None,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
        data: Mapping[str, str] | None = None,
    ) -> Response:
        """Send one request and read the whole answer; httpx errors on failure."""
        session = self._session or self._open()
        try:
            target = _url(url)
            async with session.request(
                method,
                target,
                proxy=self._proxy(target),
                params=params,
                headers=headers,
                data=content if content is not None else data,
                allow_redirects=False,
            ) as resp:
                body = await resp.read()
                return Response(resp.status, resp.headers, body, resp.charset)
        except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as exc:
            raise _as_httpx(exc) from exc

    async def get(self, url: str, *, headers: Mapping[str, str] | None = None) -> Response:
        """GET ``url``."""
        return await self.request("GET", url, headers=headers)

    async def post(self, url: str, *, data: Mapping[str, str] | None = None) -> Response:
        """POST a form (urlencoded, as httpx's ``data=``)."""
        return await self.request("POST", url, data=data)

    async def aclose(self) -> None:
        """Close every pooled connection."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> HttpClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
