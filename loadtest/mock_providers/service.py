"""The mock's state and the path every provider API call takes.

``MockService`` owns the mailboxes, tokens, quotas, fault source and counters. Route
handlers authenticate, then hand a plain function that builds the answer to ``serve``,
which applies (in order) the Graph concurrency limit, latency, quotas and injected faults.
Time comes from the ``clock`` and waiting from the ``sleep`` given at construction.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from loadtest.mock_providers import faults, synth
from loadtest.mock_providers.config import MockConfig, PopulateSpec, merge_config
from loadtest.mock_providers.quotas import QuotaBook, Refusal
from loadtest.mock_providers.registry import DuplicateMailbox, Registry
from loadtest.mock_providers.replies import (
    GMAIL_5XX_MESSAGE,
    GRAPH_5XX,
    gmail_error_body,
    graph_error,
    graph_error_body,
    plain,
)
from loadtest.mock_providers.state import Mailbox, Retention
from loadtest.mock_providers.stats import Stats

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

GMAIL_429_MESSAGE = (
    "Quota exceeded for quota metric 'Queries' and limit 'Queries per minute per user' of "
    "service 'gmail.googleapis.com' for consumer 'project_number:000000000000'."
)
GRAPH_CONCURRENCY_MESSAGE = "Application is over its MailboxConcurrency limit."


def bearer(request: Request) -> str:
    """The bearer token of a request, or an empty string."""
    auth = request.headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


class MockService:
    """Everything the mock knows, and the call pipeline."""

    def __init__(
        self,
        config: MockConfig | None = None,
        clock: Clock = time.time,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.initial_config = config or MockConfig()
        self.clock = clock
        self.sleep = sleep
        self._setup(self.initial_config)

    def _setup(self, config: MockConfig) -> None:
        self.config = config
        self.registry = Registry(random.Random(synth.stable_seed(config.seed, "tokens")))
        self.quotas = QuotaBook(config.quotas)
        self.stats = Stats()
        self._reseed(config.seed)
        self.retention = Retention(config.history.max_records, config.history.max_age_s)

    def _reseed(self, seed: int) -> None:
        self.fault_rng = random.Random(synth.stable_seed(seed, "faults"))
        self.change_rng = random.Random(synth.stable_seed(seed, "changes"))

    # --- configuration -------------------------------------------------------------------

    def reset(self) -> None:
        """Back to the state at start: no mailboxes, initial config, zero counters."""
        self._setup(self.initial_config)

    def reset_stats(self) -> None:
        """Zero the counters and quota peaks (quota usage itself is kept)."""
        self.stats = Stats()
        self.quotas.reset_peaks()

    def update_config(self, patch: Mapping[str, Any]) -> MockConfig:
        """Apply a partial config; raises ``ConfigError`` naming the bad field."""
        new = merge_config(self.config, patch)
        self.config = new
        self.quotas.reconfigure(new.quotas)
        self.retention = Retention(new.history.max_records, new.history.max_age_s)
        if "seed" in patch:
            self._reseed(new.seed)
        return new

    def now_ms(self) -> int:
        """The clock in epoch milliseconds."""
        return int(self.clock() * 1000)

    def client(self, provider: str) -> tuple[str, str]:
        """Client id and secret of the provider's OAuth app."""
        t = self.config.tokens
        if provider == "gmail":
            return t.gmail_client_id, t.gmail_client_secret
        return t.graph_client_id, t.graph_client_secret

    # --- mailboxes -----------------------------------------------------------------------

    def create_mailbox(
        self, provider: str, address: str, messages: int | None = None, seed: int | None = None
    ) -> Mailbox:
        """Register one mailbox; size and seed default to draws from the config's seed."""
        if seed is None:
            seed = synth.stable_seed(self.config.seed, address.lower())
        if messages is None:
            messages = synth.draw_size(self.config.size, random.Random(seed))
        mbx = self.registry.add(provider, address, messages, seed)
        mbx.client_id = self.client(provider)[0]
        return mbx

    def populate(
        self, spec: PopulateSpec, progress: Callable[[int], object] | None = None
    ) -> list[Mailbox]:
        """Create ``spec.gmail`` + ``spec.graph`` seeded mailboxes, numbered after the
        existing ones of each provider; ``progress(n)`` is told of each one made."""
        dist = spec.size or self.config.size
        rng = random.Random(synth.stable_seed(spec.seed, "sizes"))
        planned = []
        for provider, count in (("gmail", spec.gmail), ("graph", spec.graph)):
            start = 1 + sum(1 for m in self.registry.mailboxes if m.provider == provider)
            planned += [
                (provider, f"{provider}-{i:05d}@{spec.domain}") for i in range(start, start + count)
            ]
        # Checked up front so a clash leaves the registry untouched.
        for _, address in planned:
            if self.registry.get(address) is not None:
                raise DuplicateMailbox(address)
        out = []
        for provider, address in planned:
            seed = synth.stable_seed(spec.seed, address)
            out.append(self.create_mailbox(provider, address, synth.draw_size(dist, rng), seed))
            if progress is not None:
                progress(1)
        return out

    def credentials(self, mbx: Mailbox) -> dict[str, str]:
        """What a client needs to reach the mailbox."""
        client_id, secret = self.client(mbx.provider)
        return {
            "provider": mbx.provider,
            "address": mbx.address,
            "refresh_token": self.registry.first_refresh_token(mbx),
            "client_id": client_id,
            "client_secret": secret,
        }

    def after_change(self, mbx: Mailbox) -> None:
        """Apply log retention after a change."""
        mbx.trim(self.now_ms(), self.retention)

    # --- call pipeline -------------------------------------------------------------------

    def authenticate(self, request: Request) -> Mailbox | None:
        """The mailbox whose valid access token the request carries."""
        return self.registry.mailbox_for_access(bearer(request), self.clock())

    def refuse(self, provider: str, refusal: Refusal) -> tuple[int, dict[str, Any], dict[str, str]]:
        """Status, body and headers of a throttle answer in the provider's style."""
        self.stats.throttled[refusal.quota.name] += 1
        retry = {"Retry-After": str(refusal.retry_after_s)}
        if provider == "graph":
            return 429, graph_error_body("TooManyRequests", "Please retry again later."), retry
        if self.config.quotas.gmail_style == "403":
            user = refusal.quota.scope == "mailbox"
            reason = "userRateLimitExceeded" if user else "rateLimitExceeded"
            message = "User-rate limit exceeded." if user else "Rate Limit Exceeded"
            return 403, gmail_error_body(403, message, reason, domain="usageLimits"), {}
        body = gmail_error_body(429, GMAIL_429_MESSAGE, "rateLimitExceeded", domain="usageLimits")
        return 429, body, retry

    def admit(self, provider: str, endpoint: str, method: str, mbx: Mailbox) -> Refusal | None:
        """Count one call and charge it to the quotas; a refusal says why not."""
        self.stats.call(endpoint, provider, mbx.address)
        refusal = self.quotas.admit(
            provider, method, mbx.address, self.client(provider)[0], self.clock()
        )
        return refusal

    def draw(
        self, provider: str | None = None, method: str | None = None, inner: int = 0
    ) -> faults.Draw:
        """Latency and fault outcome of one call of ``provider``/``method`` (a batch of
        ``inner`` calls adds ``batch_inner_ms`` per inner call)."""
        lat = self.config.latency
        extra = lat.batch_inner_ms * inner / 1000.0
        return faults.draw(
            lat.for_call(provider, method), self.config.faults, self.fault_rng, extra
        )

    def injected_reply(
        self, provider: str, endpoint: str, d: faults.Draw
    ) -> tuple[int, bytes, str] | None:
        """Status, body and content type of the injected 5xx or garbage answer, if any."""
        if d.error_status is not None:
            self.stats.injected_5xx[endpoint] += 1
            if provider == "gmail":
                msg = GMAIL_5XX_MESSAGE[d.error_status]
                reason = "backendError" if d.error_status == 500 else "serviceUnavailable"
                body = gmail_error_body(d.error_status, msg, reason)
            else:
                body = graph_error_body(*GRAPH_5XX[d.error_status])
            return d.error_status, json.dumps(body).encode(), "application/json; charset=UTF-8"
        if d.garbage is not None:
            self.stats.injected_garbage[endpoint] += 1
            payload, ctype = faults.garbage_body(d.garbage)
            return 200, payload, ctype
        return None

    def injected(self, provider: str, endpoint: str, d: faults.Draw) -> Response | None:
        """The injected 5xx or garbage response for this draw, if any."""
        reply = self.injected_reply(provider, endpoint, d)
        return None if reply is None else plain(*reply)

    async def delay(self, d: faults.Draw) -> None:
        """Wait out the call's latency."""
        if d.slow:
            self.stats.slow += 1
        if d.delay_s > 0:
            await self.sleep(d.delay_s)

    async def serve(
        self,
        provider: str,
        endpoint: str,
        method: str,
        mbx: Mailbox,
        handler: Callable[[], Response],
        charge: bool = True,
        inner: bool = False,
    ) -> Response:
        """Run one authenticated API call through concurrency, latency, quota and faults.

        ``inner``: a request inside a JSON batch; the batch is the HTTP request and its
        latency covers the requests it carries.
        """
        if not inner:
            self.stats.requests[endpoint] += 1
        limit = self.quotas.max_concurrent(provider) if provider == "graph" else 0
        if limit and mbx.in_flight >= limit:
            self.stats.call(endpoint, provider, mbx.address)
            self.stats.throttled["graph.concurrency"] += 1
            return graph_error(
                429, "ApplicationThrottled", GRAPH_CONCURRENCY_MESSAGE, {"Retry-After": "1"}
            )
        mbx.in_flight += 1
        self.stats.in_flight(mbx.in_flight, mbx.address)
        try:
            d = self.draw(provider, method)
            if not inner:
                await self.delay(d)
            if charge:
                refusal = self.admit(provider, endpoint, method, mbx)
                if refusal is not None:
                    status, body, headers = self.refuse(provider, refusal)
                    return JSONResponse(body, status_code=status, headers=headers)
            fault = self.injected(provider, endpoint, d)
            if fault is not None:
                return fault
            return handler()
        finally:
            mbx.in_flight -= 1
